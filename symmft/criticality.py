"""Critical initialization: hyperparameters under which a cell is trainable on sequences of length T, and the
initializations people use, converted to the same hyperparameters (theory.md §3-§4).

Stage: ``Cell`` -> :func:`symmft.dynamics.analyze` + :func:`symmft.jacobian.jacobian_moments` on batches of points
-> :class:`CriticalResult` (an *init rule*, JSON) and baseline tables; :mod:`symmft.phase` reuses
:func:`evaluate_points`.

**Criteria** (:class:`Criteria`), all at the mean-field fixed point with identical inputs (c_x = 1):

    status OK                       the fixed point and c* were found
    xi >= T                         forward time scale: a difference injected at one step survives T steps
    |m1 - 1| <= 1e-3                mean squared singular value of the state-to-state Jacobian (gradients neither
                                    explode nor vanish: m1^T stays within e^(+-1) at T = 1000)
    Q_s <= 10 for every state       bounded second moments (no exploding state)
    Q_s >= min_second_moment        optional (default 0: off), a state that carries signal. A GRU or minimalRNN
                                    with long memory is a leaky average h' = z h + (1 - z) n: its Q_h ~ <n^2>/(2 xi)
                                    (1e-4 at xi ~ 4000), isometric but small; the rule notes any Q_s < 1e-3
    T (m2/m1^2 - 1) <= 1            the *spread*: relative variance of the T-step product's spectrum. Dynamical
                                    isometry is m2 - m1^2 << 1/T (theory.md §3); without this criterion a vanilla
                                    RNN would pass at any input variance, since on its critical line
                                    nu2 E[tanh'^2] = 1 the time scale xi is infinite (lambda = chi_1 = m1 = 1).

**Search** (:func:`find_critical`). Minimize the spectral variance m2 - m1^2 subject to m1 = m1*, xi >= safety*T and
safety*Q_min <= Q_s <= Q_max/safety (safety 2, so the rule sits inside the criteria and margins are positive),
inside a box. The target m1* = max(exp(-1/(2 safety T)), 1 - tol/2) (0.99975 at T = 1000) sits just on the ordered
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
new content) and every recurrent variance nu2_*. Input variances, bias variances and the means of the tanh maps
(zero keeps the state mean at zero) stay at their defaults or ``fixed`` values. Input statistics q_x, c_x describe
the data and are never searched.

**Baselines** (:func:`evaluate_baselines`) for width H and input dimension m (default m = H), in the project's
convention W_k,ij ~ (sigma2_k/m), U_k,ij ~ (nu2_k/H) (frameworks.md for each framework's layout):

| baseline | framework facts (frameworks.md) | hyperparameters |
|---|---|---|
| ``pytorch`` | every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), variance 1/(3H); one bias per matmul (b_ih + b_hh) | sigma2 = m/(3H); nu2 = 1/3; mu = 0; rho2 = (matrices of the map)/(3H): 2/(3H) for LSTM gates |
| ``keras`` | glorot_uniform on the fused (m, G H) kernel, G gates fed by x (LSTM 4): var 2/(m + G H); orthogonal on the fused (H, G H) recurrent kernel: orthonormal rows, entry var 1/(G H); zero biases, unit_forget_bias +1 | sigma2 = 2m/(m + G H); nu2 = 1/G (a gate's block is NOT orthogonal: a truncated Haar matrix whose scaled squared singular values have m2 = 2 - 1/G, 7/4 for the LSTM by sampling, against 2 Gaussian and 1 orthogonal); mu = 0 except the LSTM forget gate mu_f = 1; rho2 = 0 |
| ``forget1`` | Jozefowicz et al. 2015: forget-gate bias 1 | PyTorch weights and biases, memory-gate mean +1 |
| ``chrono`` | Tallec & Ollivier 2018: b_f ~ log U[1, T-1], b_i = -b_f | PyTorch weights; the memory gate's whole bias log U, the write gate's -log U (exact with the ``beta_k``/``chrono_length`` hyperparameters when symmft has them, else a moment-matched Gaussian, flagged) |

Uniform i.i.d. weights have the large-width spectral moments of Gaussian ones with the same variance, so the
PyTorch-family baselines are evaluated with ``weights="gaussian"``; so is Keras when G > 1 (its blocks' m2 = 7/4 is
closer to the Gaussian 2 than to the orthogonal 1), and with ``"orthogonal"`` when G = 1 (one block: truly
orthogonal). ``weights=`` forces one distribution for all.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import params as params_mod
from .cell import Cell, load_cell
from .dynamics import analyze
from .errors import ClosureError, HyperparameterError, Status, SymmftError
from .jacobian import WEIGHTS, jacobian_moments, primary_states

#: Points per vectorized ``analyze`` call. The Newton loops run until the slowest point of a call is done, and a
#: single chaotic point (chi_1 > 1) makes the whole call solve the 2-D cross map: on the 2-core CPU a 16-point LSTM
#: chunk with one chaotic point took ~0.5 s against ~0.02 s without, so small chunks confine the cost.
CHUNK = 16
#: Input statistics the search assumes unless fixed otherwise; the sentence is part of every rule.
INPUT_ASSUMPTION = (
    "q_x = {q_x:g}: inputs standardized to per-coordinate second moment x.x/m = {q_x:g}; c_x = {c_x:g}: the two "
    "input sequences are identical at every step after the one where they differ, so xi is how long a difference "
    "injected at one step stays visible (the slope of the cross map at c = 1). Fix q_x (and c_x) to match your data."
)


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


# ---------------------------------------------------------------- criteria


@dataclass(frozen=True)
class Criteria:
    """Thresholds of trainability for sequences of ``length`` T (see the module docstring)."""

    length: int
    m1_tolerance: float = 1e-3
    max_second_moment: float = 10.0
    max_spread: float = 1.0
    min_second_moment: float = 0.0

    def slacks(self, ev: dict) -> dict:
        """Per criterion, a log-scale slack (> 0: passes) for every evaluated point; NaN where status failed."""
        with np.errstate(all="ignore"):
            q = np.array([ev[k] for k in ev if k.startswith("Q_")])
            out = {
                "xi": np.log(ev["xi"] / self.length),
                "m1": np.log(self.m1_tolerance) - np.log(np.abs(ev["m1"] - 1)),
                "second_moment": np.log(self.max_second_moment) - np.log(np.max(q, axis=0)),
                "spread": np.log(self.max_spread) - np.log(np.maximum(ev["spread"], 1e-300)),
            }
            if self.min_second_moment > 0:
                out["signal"] = np.log(np.min(q, axis=0)) - np.log(self.min_second_moment)
            return out

    def failures(self, ev: dict) -> list[list[str]]:
        """Per point, the names of the criteria it fails ("status:NAME" when the fixed point failed)."""
        slack = self.slacks(ev)
        out = []
        for i, s in enumerate(np.asarray(ev["status"]).ravel()):
            if s != Status.OK:
                out.append([f"status:{Status(int(s)).name}"])
            else:
                out.append([k for k, v in slack.items() if not np.ravel(v)[i] >= 0])
        return out

    def thresholds(self) -> dict:
        return {"xi_min": self.length, "m1_tolerance": self.m1_tolerance, "max_second_moment": self.max_second_moment,
                "min_second_moment": self.min_second_moment, "max_spread": self.max_spread}


# ---------------------------------------------------------------- evaluation on batches of points


def evaluate_points(cell: Cell, hyperparameters: dict, *, weights: str = "orthogonal", length: int | None = None,
                    chunk: int = CHUNK, bar=None, max_iterations: int = 200, retry: int | None = None) -> dict:
    """Fixed point, xi, lambda and Jacobian moments at N points: ``hyperparameters`` values are numbers or 1-D
    arrays of one length N (evaluated ``chunk`` points per call; ``bar`` a tqdm bar to advance). Returns 1-D arrays
    ``xi, lambda, chi_1, m1, m2, variance, status`` and every fixed-point key (``M_s, Q_s``); with ``length``, also
    ``spread`` = T (m2/m1^2 - 1). Failed points hold NaN and their status. ``max_iterations`` bounds analyze's
    Newton loops; ``retry``, if given, is the budget NOT_CONVERGED points get in a second, pointwise try."""
    h = params_mod.resolve(cell, hyperparameters)
    n = max([np.size(v) for v in h.values() if np.ndim(v)] or [1])
    flat = {k: (np.ravel(v) if np.ndim(v) else v) for k, v in h.items()}
    parts = []
    for lo in range(0, n, chunk):
        point = {k: (v[lo: lo + chunk] if np.ndim(v) else v) for k, v in flat.items()}
        a = analyze(cell, point, max_iterations=max_iterations)
        try:
            j = jacobian_moments(a, kind="memory", weights=weights, length=length)
        except ClosureError as e:
            raise ClosureError(f"cell {cell.name}: the Jacobian moments m1, m2 the criteria need cannot be derived: {e}") from e
        size = min(chunk, n - lo)
        part = {"xi": a.xi, "lambda": a.lambda_, "chi_1": a.extras["chi_1"], "status": a.status,
                **{k: j[k] for k in ("m1", "m2", "variance")}, **a.fixed_point}
        if length is not None:
            part["spread"] = j["relative_spectral_variance"]
        parts.append({k: np.broadcast_to(np.asarray(v, dtype=int if k == "status" else float), (size,)) for k, v in part.items()})
        if bar is not None:
            bar.update(size)
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if retry and retry > max_iterations:
        for i in np.flatnonzero(out["status"] == Status.NOT_CONVERGED):
            point = {k: (v[i] if np.ndim(v) else v) for k, v in flat.items()}
            again = evaluate_points(cell, point, weights=weights, length=length, max_iterations=retry)
            for k in out:
                out[k][i] = again[k][0]
    return out


# ---------------------------------------------------------------- which gate is which


def gate_roles(cell: Cell) -> dict:
    """``{"memory": {map: sign}, "write": {map: sign}}``: sigmoid gates multiplying the previous primary state
    (memory; sign +1 when a larger bias keeps more, as LSTM f, GRU z) and sigmoid gates multiplying the new content
    in the terms free of the old state (write; LSTM i). Read from the cell's own update expressions (cached per
    cell-file hash)."""
    if cell.file_hash not in _ROLES:
        _ROLES[cell.file_hash] = _gate_roles(cell)
    return {k: dict(v) for k, v in _ROLES[cell.file_hash].items()}


_ROLES: dict = {}


def _gate_roles(cell: Cell) -> dict:
    import sympy as sp

    from .expectation import sigmoid
    from .meanfield import _Derivation

    D = _Derivation(cell)
    memory, write = {}, {}
    for s in primary_states(cell):
        atom = D.atoms[s]
        update = sp.expand(D.new_state[s])
        keep, rest = update.coeff(atom), update.subs(atom, 0)
        for a in cell.affines:
            gate = sigmoid(D.atoms[f"u_{a.name}"])
            if keep.has(gate):
                g = sp.Dummy("g")
                slope = keep.subs(gate, g).diff(g).subs(g, sp.Rational(1, 2))
                memory[a.name] = 1 if slope.is_positive else -1
        for term in sp.Add.make_args(rest):
            coeff, factors = term.as_coeff_mul()
            for a in cell.affines:
                if a.name not in memory and sigmoid(D.atoms[f"u_{a.name}"]) in factors:
                    write[a.name] = 1 if coeff > 0 else -1
    return {"memory": memory, "write": write}


def default_free(cell: Cell, fixed: dict | None = None) -> tuple[str, ...]:
    """Memory- and write-gate bias means and every recurrent variance nu2_*, minus the ``fixed`` names."""
    roles = gate_roles(cell)
    names = [f"mu_{k}" for k in {**roles["memory"], **roles["write"]}]
    names += [n for n in cell.hyperparameter_names() if n.startswith("nu2_")]
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


# ---------------------------------------------------------------- the result


@dataclass(frozen=True)
class CriticalResult:
    """An init rule: every hyperparameter, the predicted quantities, the margins, and how it was found."""

    cell: Cell
    length: int
    weights: str
    hyperparameters: dict  # name -> float, every hyperparameter of the cell
    free: tuple[str, ...]
    predicted: dict  # xi, lambda, m1, m2, variance, spread, Q_s, M_s
    criteria: Criteria
    margins: dict  # free name -> {"down", "up", "down_limit", "up_limit"}
    search: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def input_statistics(self) -> dict:
        q, c = self.hyperparameters["q_x"], self.hyperparameters["c_x"]
        return {"q_x": q, "c_x": c, "assumption": INPUT_ASSUMPTION.format(q_x=q, c_x=c)}

    def to_json(self) -> dict:
        """The rule as JSON-ready data (non-finite numbers as "inf"/"-inf", NaN as null)."""
        return _jsonable({
            "cell": self.cell.name,
            "cell_file_hash": self.cell.file_hash,
            "length": self.length,
            "weights": self.weights,
            "hyperparameters": self.hyperparameters,
            "free": list(self.free),
            "criteria": {**self.predicted, "status": "OK"},
            "thresholds": self.criteria.thresholds(),
            "margins": self.margins,
            "input_statistics": self.input_statistics(),
            "notes": list(self.notes),
            "search": self.search,
        })

    def write_rule(self, path: str | Path) -> Path:
        """Write the rule as JSON to ``path``; returns the path."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        except OSError as e:
            raise SymmftError(f"cannot write the rule to {path}: {e.strerror or e}; choose another path") from None
        return path


RULE_KEYS = ("cell", "cell_file_hash", "length", "weights", "hyperparameters", "criteria", "margins", "input_statistics")


def read_rule(path: str | Path) -> dict:
    """Read an init rule written by :meth:`CriticalResult.write_rule`, checking its keys."""
    try:
        rule = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SymmftError(f"cannot read init rule {path}: {e}") from None
    missing = [k for k in RULE_KEYS if k not in rule]
    if missing:
        raise SymmftError(f"{path} is not an init rule: keys {missing} are missing (write one with symmft critical -o)")
    return rule


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)) or (isinstance(obj, np.ndarray) and obj.ndim == 0):
        x = float(obj)
        return x if math.isfinite(x) else (None if math.isnan(x) else ("inf" if x > 0 else "-inf"))
    return obj


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
        tol, T = self.criteria.m1_tolerance, self.criteria.length
        return max(math.exp(-1 / (2 * self.safety * T)), 1 - tol / 2)

    def evaluate_x(self, X, iterations: int | None = None, retry: int | None = None) -> dict:
        X = np.atleast_2d(np.asarray(X, dtype=float))
        iterations = iterations or SEARCH_ITERATIONS
        self.evaluated += len(X)
        h = {**self.base, **{n: X[:, i] for i, n in enumerate(self.free)}}
        return evaluate_points(self.cell, h, weights=self.weights, length=self.criteria.length, bar=self.bar,
                               max_iterations=iterations, retry=retry)

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


def find_critical(
    cell: Cell | str,
    length: int,
    *,
    weights: str = "orthogonal",
    fixed: dict | None = None,
    free: list[str] | tuple[str, ...] | None = None,
    bounds: dict | None = None,
    m1_tolerance: float = 1e-3,
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
    length = int(length)
    if weights not in WEIGHTS:
        raise HyperparameterError(f"unknown weight distribution {weights!r}; choose one of {', '.join(WEIGHTS)}")
    fixed = dict(fixed or {})
    base = params_mod.resolve(cell, fixed)
    if any(np.ndim(v) for v in base.values()):
        raise HyperparameterError("find_critical takes scalar fixed values; sweep with symmft.phase instead")
    free = tuple(dict.fromkeys(free)) if free is not None else default_free(cell, fixed)
    _check_free(cell, free, fixed)
    for n in bounds or {}:
        if n not in free:
            raise HyperparameterError(f"a search range is given for {n}, which is not free (free: {', '.join(free)})")
    box = {**default_bounds(cell, length, free), **(bounds or {})}
    for n, (lo, hi) in box.items():
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and (lo >= 0 or not _is_variance(n))):
            raise HyperparameterError(f"search bounds of {n} must be finite with lo < hi (and lo >= 0 for a variance), got ({lo}, {hi})")
    if m1_target is not None and not abs(m1_target - 1) <= m1_tolerance:
        raise HyperparameterError(f"m1_target must lie within the m1 tolerance of 1 (|m1 - 1| <= {m1_tolerance:g}), got {m1_target}")
    if not (safety >= 1 and coarse >= 1 and starts >= 1 and max_iterations >= 1):
        raise HyperparameterError(f"need safety >= 1 and coarse, starts, max_iterations >= 1; got {safety}, {coarse}, {starts}, {max_iterations}")
    criteria = Criteria(length, m1_tolerance, max_second_moment, max_spread, min_second_moment)
    lo = np.array([box[n][0] for n in free], dtype=float)
    hi = np.array([box[n][1] for n in free], dtype=float)
    bar = None
    if progress:
        import sys

        from tqdm import tqdm

        bar = tqdm(unit="point", desc=f"critical {cell.name} T={length}", file=sys.stderr, disable=None)
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
    """Defaults (clipped into the box); a memory gate's mean starts at +-log T (chrono's largest bias)."""
    memory = gate_roles(problem.cell)["memory"]
    x = []
    for n in problem.free:
        if n.startswith("mu_") and n[3:] in memory:
            x.append(memory[n[3:]] * math.log(problem.criteria.length))
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
    only) one batch of d more points (forward differences)."""
    from scipy.optimize import minimize

    d = len(z0)
    step = 1e-6
    values_cache: dict = {}
    grad_cache: dict = {}

    def values(z):
        key = np.asarray(z, dtype=float).tobytes()
        if key not in values_cache:
            values_cache[key] = problem.targets(problem.evaluate_x(problem.x(np.clip(z, 0, 1))))[0]
        return values_cache[key]

    def grads(z):
        key = np.asarray(z, dtype=float).tobytes()
        if key not in grad_cache:
            zc = np.clip(np.asarray(z, dtype=float), 0, 1)
            h = np.where(zc + step <= 1, step, -step)
            t = problem.targets(problem.evaluate_x(problem.x(zc + np.diag(h))))
            grad_cache[key] = ((t - values(z)) / h[:, None]).T  # row per target
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
    step = 1e-4
    h = np.where(z + step <= 1, step, -step)
    probe = problem.evaluate_x(problem.x(z + np.diag(h)), SEARCH_ITERATIONS, THOROUGH_ITERATIONS)
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
        ev2 = problem.evaluate_x(problem.x(z2), SEARCH_ITERATIONS, THOROUGH_ITERATIONS)
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
        reached = (f"xi = {_fmt(ev['xi'][0])} (needs >= {T}), m1 = {ev['m1'][0]:.6g} (needs |m1 - 1| <= "
                   f"{crit.m1_tolerance:g}), {qs} (need{f' {crit.min_second_moment:g} <=' if crit.min_second_moment > 0 else ''} Q <= {crit.max_second_moment:g}), "
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
                 "isometry only by starving its inputs (q* -> 0: sigma2 = 0 and tiny bias variance), theory.md §3.")
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


# ---------------------------------------------------------------- baselines


BASELINES = {
    "pytorch": "PyTorch default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))",
    "keras": "Keras default: glorot_uniform fused kernel, orthogonal fused recurrent kernel, zero biases, unit_forget_bias",
    "forget1": "forget-gate bias 1 (Jozefowicz et al. 2015) on PyTorch-default weights",
    "chrono": "chrono (Tallec & Ollivier 2018): b_f ~ log U[1, T-1], b_i = -b_f, PyTorch-default weights",
}


def baseline_hyperparameters(cell: Cell, name: str, length: int, width: int = 128, input_dim: int | None = None) -> tuple[dict, list[str]]:
    """(hyperparameters, notes) of baseline ``name`` for width H and input dimension m (default H); see the table
    in the module docstring. Raises :class:`HyperparameterError` where the baseline does not apply to the cell."""
    if name not in BASELINES:
        raise HyperparameterError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    H, m = int(width), int(input_dim or width)
    if H < 1 or m < 1:
        raise HyperparameterError(f"width and input dimension must be >= 1, got H={H}, m={m}")
    roles = gate_roles(cell)
    notes: list[str] = []
    h: dict = {}
    if name == "keras":
        G = _fused_gates(cell)
        for a in cell.affines:
            for i in a.inputs:
                h[i.hyperparameter] = 2 * m / (m + G * H) if i.vector == "x" else 1 / G
            h[a.mean], h[a.bias_variance] = 0.0, 0.0
        if roles["write"]:  # unit_forget_bias exists for the LSTM only
            for k, s in roles["memory"].items():
                h[f"mu_{k}"] = float(s)
        if G > 1:
            notes.append(f"recurrent kernel orthogonal as one (H, {G}H) matrix: each gate's block has entry variance "
                         f"1/({G}H) (nu2 = 1/{G}) and is NOT orthogonal (a truncated Haar matrix, spectral m2 = "
                         f"{2 - 1 / G:g} against 2 Gaussian, 1 orthogonal); evaluated with Gaussian weights")
        return h, notes
    for a in cell.affines:  # PyTorch family
        for i in a.inputs:
            h[i.hyperparameter] = m / (3 * H) if i.vector == "x" else 1 / 3
        h[a.mean], h[a.bias_variance] = 0.0, len(a.inputs) / (3 * H)
    if name in ("forget1", "chrono") and not roles["memory"]:
        raise HyperparameterError(f"baseline {name} sets a memory (forget) gate's bias; cell {cell.name} has none")
    if name == "forget1":
        for k, s in roles["memory"].items():
            h[f"mu_{k}"] = float(s)
    if name == "chrono":
        if length < 3:
            raise HyperparameterError("chrono needs T >= 3 (b_f ~ log U[1, T-1])")
        signs = {**roles["memory"], **{k: -s for k, s in roles["write"].items()}}
        if "chrono_length" in params_mod.names(cell):  # the theory integrates the log-uniform bias exactly
            for k, s in signs.items():
                h[f"mu_{k}"], h[f"rho2_{k}"], h[f"beta_{k}"] = 0.0, 0.0, float(s)
            h["chrono_length"] = float(length)
            notes.append("chrono bias integrated exactly: one L = log U per unit, b_f = L, b_i = -L")
        else:
            mean, var = loguniform_moments(length)
            for k, s in signs.items():
                h[f"mu_{k}"], h[f"rho2_{k}"] = s * mean, var
            notes.append(f"MOMENT-MATCHED APPROXIMATION: log U[1, T-1] replaced by a Gaussian N({mean:.4g}, {var:.4g}) "
                         "and b_i = -b_f treated as independent; symmft cannot integrate the log-uniform bias here")
    return h, notes


def _fused_gates(cell: Cell) -> int:
    """G: the number of maps fed by the input, the gate blocks of a Keras fused kernel."""
    return sum(any(i.vector == "x" for i in a.inputs) for a in cell.affines)


def _natural_weights(cell: Cell, name: str) -> str:
    """The weight distribution a baseline's recurrent blocks are closest to (see the module docstring)."""
    return "orthogonal" if name == "keras" and _fused_gates(cell) == 1 else "gaussian"


def loguniform_moments(length: int) -> tuple[float, float]:
    """Mean and variance of log U, U ~ Uniform[1, T-1] (closed forms of the integrals of log u and log^2 u)."""
    b = length - 1.0
    L = math.log(b)
    mean = (b * (L - 1) + 1) / (b - 1)
    second = (b * (L * L - 2 * L + 2) - 2) / (b - 1)
    return mean, second - mean * mean


def evaluate_baselines(cell: Cell | str, length: int, width: int = 128, input_dim: int | None = None,
                       weights: str | None = None, fixed: dict | None = None) -> list[dict]:
    """The baselines (``BASELINES``) for ``cell`` at width H = ``width``, input dimension m = ``input_dim``
    (default H): per baseline its hyperparameters, notes, the weight distribution used (each baseline's natural
    one unless ``weights`` forces one), the predicted xi, lambda, m1, m2, variance, spread, Q_s, status, and which
    criteria it fails for length T. ``fixed`` (e.g. q_x) applies to all. Baselines that do not apply are skipped
    with a note."""
    cell = cell if isinstance(cell, Cell) else load_cell(cell)
    criteria = Criteria(int(length))
    rows = []
    for name, description in BASELINES.items():
        try:
            h, notes = baseline_hyperparameters(cell, name, length, width, input_dim)
        except HyperparameterError as e:
            rows.append({"name": name, "description": description, "applicable": False, "notes": [str(e)]})
            continue
        w = weights or _natural_weights(cell, name)
        full = params_mod.resolve(cell, {**h, **(fixed or {})})
        ev = evaluate_points(cell, full, weights=w, length=criteria.length)
        row = {"name": name, "description": description, "applicable": True, "weights": w, "notes": notes,
               "hyperparameters": {k: float(v) for k, v in full.items()},
               **{k: float(v[0]) for k, v in ev.items() if k != "status"},
               "status": Status(int(ev["status"][0])).name}
        row["fails"] = criteria.failures(ev)[0]
        rows.append(row)
    return rows


def rows_json(rows: list[dict]) -> list[dict]:
    """Baseline rows as JSON-ready data."""
    return _jsonable(rows)


__all__ = [
    "BASELINES", "CHUNK", "Criteria", "CriticalResult", "InfeasibleError", "baseline_hyperparameters",
    "default_bounds", "default_free", "evaluate_baselines", "evaluate_points", "find_critical", "gate_roles",
    "loguniform_moments", "read_rule", "rows_json",
]
