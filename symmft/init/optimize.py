"""The critical search's optimizer: from the box (:class:`symmft.init.box.SearchProblem`) to the point that
:func:`symmft.init.search.find_critical` reports, in three steps:

1. coarse design over the free parameters, evaluated as vectorized batches: a grid for one or two free parameters,
   a scrambled Sobol sample (fixed seed: reproducible) for more, plus the start point;
2. SLSQP from the best ``starts`` (2) candidates (ranked by constraint violation, then variance; while no result
   meets the criteria, from up to two more) in unit-box coordinates, at most ``max_iterations`` (15) iterations
   each, every gradient one batch of d points (forward differences). The variance is flat along several
   directions (which recurrent matrix makes up the forget gate's deficit), so the result is a near-minimal
   feasible point, not a certified optimum: the rule reports its spread;
3. polish m1 = m1* by a 1-D secant along the free parameter m1 is most sensitive to.
"""

from __future__ import annotations

import math

import numpy as np

from symmft.errors import Status
from symmft.init.box import SEARCH_ITERATIONS, THOROUGH_ITERATIONS, SearchProblem
from symmft.init.evaluate import fixed_point, gate_roles
from symmft.init.infeasible import InfeasibleError


def optimize(problem: SearchProblem, coarse: int, starts: int, max_iterations: int):
    """Coarse design, SLSQP from the best candidates, m1 polish; returns (z, evaluation at z)."""
    d = len(problem.free)
    z0 = np.clip((_start(problem) - problem.lo) / (problem.hi - problem.lo), 0, 1)
    Z = np.vstack([z0, _design(d, coarse)])
    ev = problem.evaluate_x(problem.x(Z))
    merit = problem.merit(ev)
    if not np.any(np.isfinite(merit)):
        raise InfeasibleError(
            f"cell {problem.cell.name}: the fixed point failed at every one of {len(Z)} points of the search box "
            f"({problem.box_text()}): {Status(int(np.bincount(ev['status']).argmax())).message}"
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


def _start(problem: SearchProblem) -> np.ndarray:
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


def _slsqp(problem: SearchProblem, z0, max_iterations: int) -> np.ndarray:
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


def _polish_m1(problem: SearchProblem, z, iterations: int = 12):
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
