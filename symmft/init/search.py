"""Critical initialization: hyperparameters under which a cell is trainable on sequences of length T, and the
initializations people use, converted to the same hyperparameters (docs/theory.md §3-§4).

Stage: ``Cell`` -> :func:`symmft.theory.dynamics.analyze` + :func:`symmft.theory.jacobian.jacobian_moments` on batches of points
-> :class:`CriticalResult` (an *init rule*, JSON) and baseline tables; :mod:`symmft.init.phase` reuses
:func:`evaluate_points`.

**Search** (:func:`find_critical`). Minimize the spectral variance m2 - m1^2 subject to m1 = m1*, xi >= safety*T and
safety*Q_min <= Q_s <= Q_max/safety (safety 2, so the rule sits inside the criteria and margins are positive),
inside a box. The target m1* = exp(-1/(2 safety T)) (half the allowed |T log m1| <= 1 over the safety; 0.99975 at T = 1000,
0.975 at T = 10) sits just on the ordered
side of the critical line: gradients shrink by at most e^(-1/4) over T steps, xi ~ 2 safety T where lambda ~ m1,
and the search stays out of the chaotic side, where each fixed point costs 10-100x more (the 2-D cross map) and
right next to the line is not always solved at all.

1. coarse design over the free parameters, evaluated as vectorized batches: a grid for one or two free parameters,
   a scrambled Sobol sample (fixed seed: reproducible) for more, plus the start point;
2. SLSQP from the best ``starts`` (2) candidates (ranked by constraint violation, then variance; while no result
   meets the criteria, from up to two more) in unit-box coordinates, at most ``max_iterations`` (15) iterations
   each, every gradient one batch of d points (forward differences). The variance is flat along several directions (which recurrent matrix makes up the forget gate's
   deficit), so the result is a near-minimal feasible point, not a certified optimum: the rule reports its spread;
3. polish m1 = m1* by a 1-D secant along the free parameter m1 is most sensitive to; check every criterion;
4. margins: per free parameter and direction, steps 1e-3, 4e-3, ... (x4) up to 16 until a criterion fails, then 4
   bisections in log distance (~9% accurate, and a margin below 2.5e-4 reads 0); all parameters and directions of
   one step form one batch.

The spectral variance keeps falling as gates saturate (f -> 1 makes J -> I), so "minimal" is attained at the
edge of the allowed range; the box is part of the problem. Default box: the memory gate's bias mean (the gate that
multiplies the old state: LSTM f, GRU z, minimalRNN u) in [0, log T + 3] (its own time scale 1/(1 - E f) ~ e^mu up to
~20 T), other bias means [-6, 6], variances [0, 3]. A result on a box edge says so (``at_bounds``).

Default free parameters: the memory gate's bias mean, the write gate's (LSTM i: the sigmoid gate multiplying the
new content) and every recurrent variance nu2_*. A cell without a memory gate (the vanilla RNN) also frees its input
variances sigma2_*: its Jacobian D U is isometric only where the state's second moment q* is small (the spread
T (E[phi'^4]/E[phi'^2]^2 - 1) grows with q*), and with the input variance held at 1 no point meets the spread
criterion beyond T ~ 10 (at T = 20 the best nu2_h gives spread 26). Bias variances and the means of the tanh maps
(zero keeps the state mean at zero) stay at their defaults or ``fixed`` values. Input statistics q_x, c_x
describe the data and are never searched.

The criteria and their batched evaluation live in :mod:`symmft.init.criteria`, the init rule in :mod:`symmft.init.rule`, the
baselines in :mod:`symmft.init.baselines`; this module re-exports their public names, so ``symmft.init.search`` is the one
import for a user.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from symmft.cell import params as params_mod
from symmft.init.baselines import BASELINES, baseline_hyperparameters, evaluate_baselines, loguniform_moments, rows_json
from symmft.cell.trace import Cell, load_cell
from symmft.init.criteria import Criteria
from symmft.init.evaluate import CHUNK, evaluate_points, fixed_point, gate_roles
from symmft.errors import HyperparameterError, Status, SymmftError
from symmft.theory.jacobian import WEIGHTS
from symmft.init.rule import CriticalResult, read_rule
from symmft.progress import progress as show_progress

#: Newton iterations per analyze call during the search. Converging points need ~5-20 (Newton from the plain
#: iterates); points that will end NOT_CONVERGED (the chaotic cross map right next to the critical line) used all
#: 200 of analyze's default, 3-4 s per 7-point batch on the 2-core CPU. The chosen point is re-solved with 200.
SEARCH_ITERATIONS = 50
#: The m1 polish and the margins retry a point NOT_CONVERGED after 50 iterations with analyze's 200 (ordinary
#: ordered LSTM points near a rule can need 50-200: 0.6 below one rule's mu_i took more than 100); the final check
#: retries with 1000: next to the critical line the chaotic cross map can need several hundred (0.3 above that
#: rule's mu_i: 1000). A margin move still NOT_CONVERGED at 200 is reported as limited by that status.
THOROUGH_ITERATIONS, RETRY_ITERATIONS = 200, 1000


class InfeasibleError(SymmftError):
    """No point in the search box meets every criterion; the message names the best point and what to free."""


def default_free(cell: Cell, fixed: dict | None = None) -> tuple[str, ...]:
    """Memory- and write-gate bias means, every recurrent variance nu2_* and, for a cell without a memory gate,
    every input variance sigma2_*; minus the ``fixed`` names (see the module docstring)."""
    roles = gate_roles(cell)
    names = [f"mu_{k}" for k in {**roles["memory"], **roles["write"]}]
    names += [n for n in cell.hyperparameter_names() if n.startswith("nu2_")]
    if not roles["memory"]:
        names += [n for n in cell.hyperparameter_names() if n.startswith("sigma2_")]
    return tuple(n for n in names if n not in (fixed or {}))


def default_bounds(cell: Cell, length: int, names) -> dict:
    """Search box per free parameter (see the module docstring)."""
    memory = gate_roles(cell)["memory"]
    top = math.log(length) + 3
    out = {}
    for n in names:
        if n.startswith("mu_") and n[3:] in memory:
            out[n] = (0.0, top) if memory[n[3:]] > 0 else (-top, 0.0)
        elif n.startswith("mu_") or n.startswith("beta_"):
            out[n] = (-6.0, 6.0)
        elif n.startswith("rho2_"):
            out[n] = (0.0, 1.0)
        else:
            out[n] = (0.0, 3.0)
    return out


def _is_variance(name: str) -> bool:
    return name.startswith(("sigma2_", "nu2_", "rho2_"))


# ---------------------------------------------------------------- the search


@dataclass
class _Problem:
    """The search in unit-box coordinates z in [0, 1]^d, x = lo + z (hi - lo); counts evaluated points."""

    cell: Cell
    base: dict
    free: tuple[str, ...]
    lo: np.ndarray
    hi: np.ndarray
    criteria: Criteria
    weights: str
    safety: float
    target: float | None = None
    bar: object = None
    evaluated: int = 0

    def x(self, z):
        return self.lo + np.asarray(z) * (self.hi - self.lo)

    @property
    def m1_target(self) -> float:
        if self.target is not None:
            return self.target
        return math.exp(-self.criteria.m1_tolerance / (2 * self.safety))

    def evaluate_x(self, X, iterations: int | None = None, retry: int | None = None, start: dict | None = None) -> dict:
        """Every criterion's quantities at the points X (rows); ``start`` a nearby fixed point to warm-start from
        (:func:`symmft.init.evaluate.evaluate_points`)."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        iterations = iterations or SEARCH_ITERATIONS
        self.evaluated += len(X)
        h = {**self.base, **{n: X[:, i] for i, n in enumerate(self.free)}}
        return evaluate_points(self.cell, h, weights=self.weights, length=self.criteria.length, bar=self.bar,
                               max_iterations=iterations, retry=retry, start=start)

    def targets(self, ev) -> np.ndarray:
        """[objective, m1 equality, xi and Q inequalities...] per point, rows = points; failed points penalized."""
        T, s = self.criteria.length, self.safety
        with np.errstate(all="ignore"):
            rate = -np.log(np.abs(ev["lambda"]))
            g_xi = np.where(rate > 0, np.minimum(-np.log(rate * s * T), 10.0), 10.0)
            q_keys = [k for k in ev if k.startswith("Q_")]
            g_q = [np.log(self.criteria.max_second_moment / s) - np.log(ev[k]) for k in q_keys]
            if self.criteria.min_second_moment > 0:
                g_q += [np.log(ev[k]) - np.log(self.criteria.min_second_moment * s) for k in q_keys]
            f = np.log(np.maximum(ev["variance"], 1e-30))
            h_m1 = (np.log(ev["m1"]) - math.log(self.m1_target)) / self.criteria.m1_tolerance
        out = np.column_stack([f, h_m1, g_xi, *g_q])
        bad = (ev["status"] != Status.OK) | ~np.all(np.isfinite(out), axis=1)
        penalty = np.array([50.0, 1e3] + [-10.0] * (out.shape[1] - 2))
        return np.where(bad[:, None], penalty, out)

    def merit(self, ev) -> np.ndarray:
        """Ranking of candidates: squared violation of the design targets, then log10 variance."""
        t = self.targets(ev)
        viol = t[:, 1] ** 2 + np.sum(np.minimum(t[:, 2:], 0) ** 2, axis=1) / 0.01
        return np.where(ev["status"] == Status.OK, viol + t[:, 0] / math.log(10), np.inf)


#: How a rule's note that it is degenerate begins (the command line shows such notes as warnings).
DEGENERATE = "degenerate rule"

#: Longest T a rule is searched for: 1 - sigmoid(mu) must stay resolvable in float32 (2^-24 ~ 6e-8) for the
#: frameworks' layers to realize a gate within ~1/T of 1.
MAX_LENGTH = 10**7


def find_critical(
    cell: Cell | str,
    length: int,
    *,
    weights: str = "orthogonal",
    fixed: dict | None = None,
    free: list[str] | tuple[str, ...] | None = None,
    bounds: dict | None = None,
    max_log_gain: float = 1.0,
    max_second_moment: float = 10.0,
    min_second_moment: float = 0.0,
    max_spread: float = 1.0,
    safety: float = 2.0,
    m1_target: float | None = None,
    coarse: int = 32,
    starts: int = 2,
    max_iterations: int = 15,
    progress: bool = False,
) -> CriticalResult:
    """Search the hyperparameters ``free`` (default :func:`default_free`) of ``cell`` for a critical initialization
    for sequences of ``length`` T with ``weights`` "orthogonal" or "gaussian" recurrent matrices; the others take
    ``fixed`` values or defaults. ``bounds`` {name: (lo, hi)} overrides the search box; the thresholds are those of
    :class:`Criteria`; ``safety`` is how far inside the xi and Q thresholds the design targets sit; ``m1_target``
    overrides m1* (1.0: exactly on the critical line, where lambda = 1 for a vanilla RNN); ``coarse`` the
    size of the first design, ``starts`` how many of its best points SLSQP refines. Raises :class:`InfeasibleError`
    when no point meets every criterion."""
    start_time = time.perf_counter()
    cell = cell if isinstance(cell, Cell) else load_cell(cell)
    if int(length) != length or length < 2:
        raise HyperparameterError(f"the sequence length T must be an integer >= 2, got {length!r}")
    if length > MAX_LENGTH:
        raise HyperparameterError(
            f"T = {length:.3g}: a memory of T steps needs a gate within ~1/T of 1, and a float32 sigmoid is exactly "
            f"1 beyond 1 - 6e-8 (the rule would be a forget gate that never forgets, with variances at rounding "
            f"level); at most T = {MAX_LENGTH:.0e}")
    length = int(length)
    if weights not in WEIGHTS:
        raise HyperparameterError(f"unknown weight distribution {weights!r}; choose one of {', '.join(WEIGHTS)}")
    fixed = dict(fixed or {})
    base = params_mod.resolve(cell, fixed)
    if any(np.ndim(v) for v in base.values()):
        raise HyperparameterError("find_critical takes scalar fixed values; sweep with symmft.init.phase instead")
    free = tuple(dict.fromkeys(free)) if free is not None else default_free(cell, fixed)
    _check_free(cell, free, fixed)
    for n in bounds or {}:
        if n not in free:
            raise HyperparameterError(f"a search range is given for {n}, which is not free (free: {', '.join(free)})")
    box = {**default_bounds(cell, length, free), **(bounds or {})}
    for n, (lo, hi) in box.items():
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and (lo >= 0 or not _is_variance(n))):
            raise HyperparameterError(f"search bounds of {n} must be finite with lo < hi (and lo >= 0 for a variance), got ({lo}, {hi})")
    if not (max_log_gain > 0 and math.isfinite(max_log_gain)):
        raise HyperparameterError(f"max_log_gain (the bound on |T log m1|) must be positive and finite, got {max_log_gain!r}")
    if m1_target is not None and not (m1_target > 0 and abs(math.log(m1_target)) * length <= max_log_gain):
        raise HyperparameterError(f"m1_target must meet the m1 criterion |T log m1| <= {max_log_gain:g} at T = {length}, got {m1_target}")
    if not (safety >= 1 and coarse >= 1 and starts >= 1 and max_iterations >= 1):
        raise HyperparameterError(f"need safety >= 1 and coarse, starts, max_iterations >= 1; got {safety}, {coarse}, {starts}, {max_iterations}")
    criteria = Criteria(length, max_log_gain, max_second_moment, max_spread, min_second_moment)
    lo = np.array([box[n][0] for n in free], dtype=float)
    hi = np.array([box[n][1] for n in free], dtype=float)
    bar = show_progress(desc=f"critical {cell.name} T={length}", unit="point") if progress else None
    problem = _Problem(cell, dict(base), free, lo, hi, criteria, weights, safety, m1_target, bar)
    try:
        z, ev = _search(problem, coarse, starts, max_iterations)
        ev = problem.evaluate_x(problem.x(z), THOROUGH_ITERATIONS, RETRY_ITERATIONS)  # the reported prediction
        fails = criteria.failures(ev)[0]
        if fails:
            raise InfeasibleError(_infeasible_message(problem, z, ev, fails))
        margins = _margins(problem, problem.x(z))
    finally:
        if bar is not None:
            bar.close()
    x = problem.x(z)
    hyper = {k: float(v) for k, v in {**base, **dict(zip(free, x))}.items()}
    predicted = {k: float(ev[k][0]) for k in ("xi", "lambda", "m1", "m2", "variance", "spread")}
    predicted.update({k: float(v[0]) for k, v in ev.items() if k.startswith(("Q_", "M_"))})
    at_bounds = [n for n, v, a, b in zip(free, x, lo, hi) if min(v - a, b - v) <= 1e-6 * (b - a)]
    search = {
        "method": "coarse design + SLSQP (minimize m2 - m1^2 s.t. m1 = m1_target, xi >= safety T, "
                  "safety Q_min <= Q <= Q_max/safety) + secant polish of m1",
        "safety": safety,
        "m1_target": problem.m1_target,
        "bounds": {n: [float(a), float(b)] for n, a, b in zip(free, lo, hi)},
        "at_bounds": at_bounds,
        "fixed": {k: float(v) for k, v in fixed.items()},
        "points_evaluated": problem.evaluated,
        "seconds": round(time.perf_counter() - start_time, 2),
    }
    notes = [f"{n} = {hyper[n]:.4g} sits at the {'lower' if abs(hyper[n] - a) <= abs(hyper[n] - b) else 'upper'} "
             f"end of its search range [{a:g}, {b:g}]" for n, a, b in zip(free, lo, hi) if n in at_bounds]
    if any(n.startswith("mu_") and n[3:] in gate_roles(cell)["memory"] for n in at_bounds):
        notes.append("the spectral variance keeps falling as the memory gate saturates: its range (bounds=, --bound) "
                     "says how much saturation is acceptable")
    notes += [f"{k} = {v:.3g} < 1e-3: the state carries little signal (RMS {math.sqrt(max(v, 0)):.2g}); require more "
              "with min_second_moment (--min-second-moment)" for k, v in predicted.items() if k.startswith("Q_") and v < 1e-3]
    notes += [f"{n} = {hyper[n]:.3g}: the input barely enters at initialization (isometry needs a small state "
              "second moment in a cell without gates); training grows the input weights from there, as in an "
              "identity-initialized RNN (Le et al. 2015)" for n in free if n.startswith("sigma2_") and hyper[n] < 1e-2]
    recurrent = [i.hyperparameter for a in cell.affines for i in a.inputs if i.vector != "x"]
    # a free variance at the lower edge 0 of its range counts as 0 (SLSQP stops within ~1e-11 of an active bound)
    edge = {n: 1e-6 * (b - a) for n, a, b in zip(free, lo, hi) if a == 0}
    if recurrent and all(hyper[n] <= edge.get(n, 0.0) for n in recurrent):
        notes.insert(0, f"{DEGENERATE}: every recurrent variance ({', '.join(recurrent)}) is 0, so no state feeds back "
                        "through a matrix: the network is a leaky integrator of its input, and the criteria hold "
                        "for that trivial reason; fix a recurrent variance (--fix NAME=VALUE) to require recurrence")
    memory = gate_roles(cell)["memory"]
    if any(abs(hyper.get(f"mu_{k}", 0.0)) > 2 for k in memory):
        # measured: README "The untied approximation", tests/test_export_client.py
        notes.append("predictions assume weights redrawn every step (untied); a real network reuses them, and with "
                     "a saturated memory gate its second moments Q_s can be far above the prediction (a width-512 "
                     "PyTorch LSTM at the T = 1000 rule: Q_c 185x the prediction), while m1 holds; check with symmft simulate --tied")
    return CriticalResult(cell, length, weights, hyper, free, predicted, criteria, margins, search, tuple(notes))


def _check_free(cell: Cell, free: tuple[str, ...], fixed: dict) -> None:
    if not free:
        raise HyperparameterError(f"no free hyperparameter to search for cell {cell.name}: name some with free=[...] (--free)")
    for n in free:
        params_mod.resolve(cell, {n: params_mod.default(n)})  # unknown names: the usual message with a suggestion
        if n in ("q_x", "c_x") or n == "chrono_length":
            raise HyperparameterError(f"{n} describes the data (or the chrono length), not the initialization; fix it instead of freeing it")
        if n in fixed:
            raise HyperparameterError(f"hyperparameter {n} is both fixed and free; give it one role")


def _search(problem: _Problem, coarse: int, starts: int, max_iterations: int):
    """Coarse design, SLSQP from the best candidates, m1 polish; returns (z, evaluation at z)."""
    d = len(problem.free)
    z0 = np.clip((_start(problem) - problem.lo) / (problem.hi - problem.lo), 0, 1)
    Z = np.vstack([z0, _design(d, coarse)])
    ev = problem.evaluate_x(problem.x(Z))
    merit = problem.merit(ev)
    if not np.any(np.isfinite(merit)):
        raise InfeasibleError(
            f"cell {problem.cell.name}: the fixed point failed at every one of {len(Z)} points of the search box "
            f"({_box_text(problem)}): {Status(int(np.bincount(ev['status']).argmax())).message}"
        )
    best_z, best_key = None, None
    # ``starts`` refinements; while none meets the criteria, up to two more from the next-ranked candidates
    for n, i in enumerate(_distinct_best(Z, merit, starts + 2)):
        if n >= starts and best_key[0] == 0:
            break
        z = _slsqp(problem, Z[i], max_iterations)
        z, ev_z = _polish_m1(problem, z)
        key = (len(problem.criteria.failures(ev_z)[0]), float(problem.merit(ev_z)[0]))
        if best_key is None or key < best_key:
            best_z, best_ev, best_key = z, ev_z, key
    return best_z, best_ev


def _start(problem: _Problem) -> np.ndarray:
    """Defaults (clipped into the box); a memory gate's mean starts at +-log T (chrono's largest bias); in a cell
    without gates a free input variance starts at 0, the quiet state where D U is isometric (otherwise SLSQP can
    settle on the branch with nu2 > 1 and a large state, m1 ~ 1 but spread ~ 50 at T = 1000)."""
    memory = gate_roles(problem.cell)["memory"]
    x = []
    for n in problem.free:
        if n.startswith("mu_") and n[3:] in memory:
            x.append(memory[n[3:]] * math.log(problem.criteria.length))
        elif n.startswith("sigma2_") and not memory:
            x.append(0.0)
        else:
            x.append(problem.base[n])
    return np.clip(np.array(x, dtype=float), problem.lo, problem.hi)


def _design(d: int, n: int) -> np.ndarray:
    """Coarse points in [0, 1]^d: a grid for d <= 2, else a scrambled Sobol sample (seeded)."""
    if d == 1:
        return np.linspace(0, 1, max(n, 3))[:, None]
    if d == 2:
        k = max(3, round(math.sqrt(n)))
        a, b = np.meshgrid(np.linspace(0, 1, k), np.linspace(0, 1, k), indexing="ij")
        return np.column_stack([a.ravel(), b.ravel()])
    from scipy.stats import qmc

    return qmc.Sobol(d, scramble=True, seed=0).random(2 ** max(2, math.ceil(math.log2(n))))


def _distinct_best(Z, merit, k) -> list[int]:
    order = [i for i in np.argsort(merit) if np.isfinite(merit[i])]
    chosen: list[int] = []
    for i in order:
        if all(np.max(np.abs(Z[i] - Z[j])) > 0.05 for j in chosen):
            chosen.append(i)
        if len(chosen) == k:
            break
    return chosen


def _slsqp(problem: _Problem, z0, max_iterations: int) -> np.ndarray:
    """SLSQP in the unit box. Values at a point cost one evaluation; a gradient (asked for at accepted iterates
    only) one batch of d more points (forward differences). SLSQP asks for one point after another, each near
    the last: every evaluation starts Newton from the last fixed point found (a gradient's from its centre's),
    where a cold start would spend ten plain iterations and several Newton steps per point. Warm-started values
    are solved to rounding level (``analyze``'s polish), cold ones only to Newton's tolerance: a difference
    between the two is an error smooth in z but up to 1e-7 relative, which a finite difference of step 1e-6 would
    read as slope, so no value here mixes the two (the first point is solved cold, then warm from itself)."""
    from scipy.optimize import minimize

    d = len(z0)
    step = 1e-6
    values_cache: dict = {}  # z -> (targets, fixed point)
    grad_cache: dict = {}
    last: list = [None]  # the fixed point of the latest evaluation that found one

    def evaluate(z):
        key = np.asarray(z, dtype=float).tobytes()
        if key not in values_cache:
            x = problem.x(np.clip(z, 0, 1))
            if last[0] is None:  # the first point: solved cold, then again from there, as every later point is
                last[0] = fixed_point(problem.evaluate_x(x))
            ev = problem.evaluate_x(x, start=last[0])
            values_cache[key] = (problem.targets(ev)[0], fixed_point(ev))
            last[0] = values_cache[key][1] or last[0]
        return values_cache[key]

    def values(z):
        return evaluate(z)[0]

    def grads(z):
        key = np.asarray(z, dtype=float).tobytes()
        if key not in grad_cache:
            centre, start = evaluate(z)
            zc = np.clip(np.asarray(z, dtype=float), 0, 1)
            h = np.where(zc + step <= 1, step, -step)
            t = problem.targets(problem.evaluate_x(problem.x(zc + np.diag(h)), start=start))
            grad_cache[key] = ((t - centre) / h[:, None]).T  # row per target
        return grad_cache[key]

    result = minimize(
        lambda z: values(z)[0], z0, jac=lambda z: grads(z)[0], method="SLSQP", bounds=[(0, 1)] * d,
        constraints=[
            {"type": "eq", "fun": lambda z: values(z)[1:2], "jac": lambda z: grads(z)[1:2]},
            {"type": "ineq", "fun": lambda z: values(z)[2:], "jac": lambda z: grads(z)[2:]},
        ],
        # ftol on the log variance: 1e-5 is a 0.001% change, far below anything the criteria resolve
        options={"maxiter": max_iterations, "ftol": 1e-5},
    )
    return np.clip(result.x, 0, 1)


def _polish_m1(problem: _Problem, z, iterations: int = 12):
    """Secant on log m1 = log m1* along the free parameter m1 is most sensitive to (within the box); returns
    (z, evaluation) of the best point seen."""
    target = math.log(problem.m1_target)
    ev = problem.evaluate_x(problem.x(z), SEARCH_ITERATIONS, THOROUGH_ITERATIONS)  # no false NOT_CONVERGED
    if ev["status"][0] != Status.OK or abs(math.log(ev["m1"][0]) - target) <= 1e-10:
        return z, ev
    start = fixed_point(ev)  # every secant point lies near z: warm starts (see _slsqp)
    step = 1e-4
    h = np.where(z + step <= 1, step, -step)
    probe = problem.evaluate_x(problem.x(z + np.diag(h)), SEARCH_ITERATIONS, THOROUGH_ITERATIONS, start)
    with np.errstate(all="ignore"):
        slopes = (np.log(probe["m1"]) - math.log(ev["m1"][0])) / h
    slopes = np.where(np.isfinite(slopes), slopes, 0)
    if not np.any(slopes):
        return z, ev
    i = int(np.argmax(np.abs(slopes)))
    t0, g0 = z[i], math.log(ev["m1"][0]) - target
    t1, g1 = z[i] + h[i], math.log(probe["m1"][i]) - target
    best = (abs(g0), z, ev)
    for _ in range(iterations):
        if g1 == g0:
            break
        t2 = float(np.clip(t1 - g1 * (t1 - t0) / (g1 - g0), 0, 1))
        z2 = z.copy()
        z2[i] = t2
        ev2 = problem.evaluate_x(problem.x(z2), SEARCH_ITERATIONS, THOROUGH_ITERATIONS, start)
        if ev2["status"][0] != Status.OK:
            break
        g2 = math.log(ev2["m1"][0]) - target
        if abs(g2) < best[0]:
            best = (abs(g2), z2, ev2)
        if abs(g2) <= 1e-10 or t2 == t1:
            break
        t0, g0, t1, g1 = t1, g1, t2, g2
    return best[1], best[2]


# ---------------------------------------------------------------- margins


def _margins(problem: _Problem, x: np.ndarray, first: float = 1e-3, growth: float = 4.0, largest: float = 16.0,
             bisections: int = 4) -> dict:
    """How far each free parameter can move down and up, the others held, before a criterion fails."""
    crit = problem.criteria
    d = len(x)
    dirs = [(i, s) for i in range(d) for s in (-1, 1)]
    passed = {k: 0.0 for k in dirs}
    failed: dict = {}
    limit: dict = {}
    for k in dirs:  # a variance cannot go below zero: its down move ends at the domain edge
        i, s = k
        if s < 0 and _is_variance(problem.free[i]) and x[i] <= 0:
            limit[k] = "domain (a variance is >= 0)"

    def points(moves):
        P = np.repeat(x[None], len(moves), axis=0)
        for r, ((i, s), delta) in enumerate(moves):
            P[r, i] = max(x[i] + s * delta, 0.0) if _is_variance(problem.free[i]) else x[i] + s * delta
        return P

    delta = first
    while delta <= largest:
        active = [k for k in dirs if k not in failed and k not in limit]
        if not active:
            break
        moves = [(k, delta) for k in active]
        fails = crit.failures(problem.evaluate_x(points(moves), SEARCH_ITERATIONS, THOROUGH_ITERATIONS))
        for (k, _), f in zip(moves, fails):
            i, s = k
            clipped = s < 0 and _is_variance(problem.free[i]) and delta >= x[i]
            if f:
                failed[k] = (delta, f)
            elif clipped:
                passed[k], limit[k] = x[i], "domain (a variance is >= 0)"
            else:
                passed[k] = delta
        delta = largest if delta < largest < delta * growth else delta * growth
    for _ in range(bisections):  # geometric bisection between the last passing and the first failing distance
        pending = [k for k in failed if k not in limit]
        if not pending:
            break
        moves = [(k, math.sqrt(max(passed[k], first / growth) * failed[k][0])) for k in pending]
        fails = crit.failures(problem.evaluate_x(points(moves), SEARCH_ITERATIONS, THOROUGH_ITERATIONS))
        for (k, mid), f in zip(moves, fails):
            if f:
                failed[k] = (mid, f)
            else:
                passed[k] = mid
    out = {}
    for i, name in enumerate(problem.free):
        entry = {}
        for s, side in ((-1, "down"), (1, "up")):
            k = (i, s)
            entry[side] = float(passed[k])
            if k in limit:
                entry[f"{side}_limit"] = limit[k]
            elif k in failed:
                entry[f"{side}_limit"] = ", ".join(failed[k][1])
            else:
                entry[f"{side}_limit"] = f"none within {largest:g}"
        out[name] = entry
    return out


# ---------------------------------------------------------------- infeasibility


def _infeasible_message(problem: _Problem, z, ev, fails: list[str]) -> str:
    crit, cell, x = problem.criteria, problem.cell, problem.x(z)
    T = crit.length
    point = ", ".join(f"{n}={v:.4g}" for n, v in zip(problem.free, x))
    if fails[0].startswith("status:"):
        reached = f"the fixed point failed there ({Status[fails[0][7:]].message})"
    else:
        qs = ", ".join(f"{k} = {ev[k][0]:.4g}" for k in ev if k.startswith("Q_"))
        m_lo, m_hi = crit.m1_range()
        reached = (f"xi = {_fmt(ev['xi'][0])} (needs >= {T}), m1 = {ev['m1'][0]:.6g} (needs |T log m1| <= "
                   f"{crit.max_log_gain:g}: m1 in [{m_lo:.6g}, {m_hi:.6g}]), {qs} (need{f' {crit.min_second_moment:g} <=' if crit.min_second_moment > 0 else ''} Q <= {crit.max_second_moment:g}), "
                   f"spread T(m2/m1^2 - 1) = {ev['spread'][0]:.4g} (needs <= {crit.max_spread:g})")
    text = (f"cell {cell.name} cannot be made trainable for T = {T} by searching {', '.join(problem.free)} "
            f"({_box_text(problem)}): the best point found ({point}) fails {', '.join(fails)}: {reached}.")
    edges = [n for n, v, a, b in zip(problem.free, x, problem.lo, problem.hi) if min(v - a, b - v) <= 1e-6 * (b - a)]
    if edges:
        text += f" {', '.join(edges)} sit{'s' * (len(edges) == 1)} at the edge of the search box: widening bounds (--bound NAME=LO:HI) may help."
    hint = _most_helpful(problem, x, fails)
    if hint:
        text += " " + hint
    if "spread" in fails and not gate_roles(cell)["memory"] and not {"m1", "xi", "status"} & set(fails):
        text += (" The Jacobian is critical on average (m1 ~ 1) but not isometric: a cell without gates reaches "
                 "isometry only by starving its inputs (q* -> 0: sigma2 = 0 and tiny bias variance), docs/theory.md §3.")
    return text


def _most_helpful(problem: _Problem, x, fails: list[str]) -> str:
    """Which fixed hyperparameter, changed, would reduce the total violation most (finite differences)."""
    candidates = [n for n in problem.base if n not in problem.free and n not in ("q_x", "c_x", "chrono_length")
                  and not n.startswith("beta_")]
    if not candidates or fails[0].startswith("status:"):
        return ""
    moves = []  # means move by +-0.25, variances halve or double (0 -> 0.25)
    for n in candidates:
        v = problem.base[n]
        if _is_variance(n):
            moves += [(n, 1, 2 * v if v > 0 else 0.25)] + ([(n, -1, v / 2)] if v > 0 else [])
        else:
            moves += [(n, -1, v - 0.25), (n, 1, v + 0.25)]
    h0 = {**problem.base, **dict(zip(problem.free, x))}
    batch = {k: np.array([v if k == n else h0[k] for n, _, v in moves], dtype=float) for k in h0}
    ev = evaluate_points(problem.cell, batch, weights=problem.weights, length=problem.criteria.length)
    problem.evaluated += len(moves) + 1
    centre = evaluate_points(problem.cell, h0, weights=problem.weights, length=problem.criteria.length)

    def violation(e):
        sl = problem.criteria.slacks(e)
        total = sum(np.minimum(np.nan_to_num(v, nan=-50.0), 0) for v in sl.values())
        return np.where(e["status"] == Status.OK, -total, np.inf)

    gain = violation(centre)[0] - violation(ev)
    if not np.any(np.isfinite(gain)) or np.nanmax(gain) <= 1e-9:
        return "No single fixed hyperparameter, moved a little (means by 0.25, variances by a factor 2), reduces the violation."
    j = int(np.nanargmax(np.where(np.isfinite(gain), gain, -np.inf)))
    n, s, _ = moves[j]
    return (f"Of the fixed hyperparameters, {'raising' if s > 0 else 'lowering'} {n} (now {problem.base[n]:g}) "
            f"helps most: free it (--free {n}) or fix it {'higher' if s > 0 else 'lower'}.")


def _box_text(problem: _Problem) -> str:
    return "box " + ", ".join(f"{n} in [{a:g}, {b:g}]" for n, a, b in zip(problem.free, problem.lo, problem.hi))


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.4g}"


__all__ = [
    "BASELINES", "CHUNK", "Criteria", "CriticalResult", "InfeasibleError", "baseline_hyperparameters",
    "default_bounds", "default_free", "evaluate_baselines", "evaluate_points", "find_critical", "gate_roles",
    "loguniform_moments", "read_rule", "rows_json",
]
