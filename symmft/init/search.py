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

1. the box and the default free parameters (:mod:`symmft.init.box`, whose docstring says why these);
2. coarse design, SLSQP from the best candidates, secant polish of m1 (:mod:`symmft.init.optimize`);
3. check every criterion at the point found, re-solved with a larger iteration budget; a failure raises
   :class:`InfeasibleError` naming the best point and what to free (:mod:`symmft.init.infeasible`);
4. margins per free parameter and direction (:mod:`symmft.init.margins`).

The criteria and their batched evaluation live in :mod:`symmft.init.criteria`, the init rule in :mod:`symmft.init.rule`, the
baselines in :mod:`symmft.init.baselines`; this module re-exports their public names, so ``symmft.init.search`` is the one
import for a user.
"""

from __future__ import annotations

import math
import time

import numpy as np

from symmft.cell import params as params_mod
from symmft.init.baselines import BASELINES, baseline_hyperparameters, evaluate_baselines, loguniform_moments, rows_json
from symmft.init.box import (RETRY_ITERATIONS, THOROUGH_ITERATIONS, SearchProblem, check_free, default_bounds,
                             default_free, is_variance)
from symmft.cell.graph import Cell
from symmft.cell.trace import load_cell
from symmft.init.criteria import Criteria
from symmft.init.evaluate import CHUNK, evaluate_points, gate_roles
from symmft.errors import HyperparameterError
from symmft.init.infeasible import InfeasibleError, infeasible_message
from symmft.init.margins import find_margins
from symmft.init.optimize import optimize
from symmft.theory.jacobian import WEIGHTS
from symmft.init.rule import CriticalResult, read_rule
from symmft.progress import progress as show_progress


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
    check_free(cell, free, fixed)
    for n in bounds or {}:
        if n not in free:
            raise HyperparameterError(f"a search range is given for {n}, which is not free (free: {', '.join(free)})")
    box = {**default_bounds(cell, length, free), **(bounds or {})}
    for n, (lo, hi) in box.items():
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi and (lo >= 0 or not is_variance(n))):
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
    problem = SearchProblem(cell, dict(base), free, lo, hi, criteria, weights, safety, m1_target, bar)
    try:
        z, ev = optimize(problem, coarse, starts, max_iterations)
        ev = problem.evaluate_x(problem.x(z), THOROUGH_ITERATIONS, RETRY_ITERATIONS)  # the reported prediction
        fails = criteria.failures(ev)[0]
        if fails:
            raise InfeasibleError(infeasible_message(problem, z, ev, fails))
        margins = find_margins(problem, problem.x(z))
    finally:
        if bar is not None:
            bar.close()
    x = problem.x(z)
    hyper = {k: float(v) for k, v in {**base, **dict(zip(free, x))}.items()}
    predicted = {k: float(ev[k][0]) for k in ("xi", "lambda", "m1", "m2", "variance", "spread")}
    predicted.update({k: float(v[0]) for k, v in ev.items() if k.startswith(("Q_", "M_"))})
    at_bounds = problem.at_bounds(x)
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


__all__ = [
    "BASELINES", "CHUNK", "DEGENERATE", "MAX_LENGTH", "Criteria", "CriticalResult", "InfeasibleError",
    "baseline_hyperparameters", "default_bounds", "default_free", "evaluate_baselines", "evaluate_points",
    "find_critical", "gate_roles", "loguniform_moments", "read_rule", "rows_json",
]
