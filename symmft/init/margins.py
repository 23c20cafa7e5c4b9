"""A rule's margins: per free parameter and direction, how far it can move (the others held) before a criterion
fails. Steps 1e-3, 4e-3, ... (x4) up to 16 until a criterion fails, then 4 bisections in log distance (~9% accurate,
and a margin below 2.5e-4 reads 0); all parameters and directions of one step form one batch. A variance's down
move ends at 0 (limit "domain"). Used by :func:`symmft.init.search.find_critical` at the rule it found.
"""

from __future__ import annotations

import math

import numpy as np

from symmft.init.box import SEARCH_ITERATIONS, THOROUGH_ITERATIONS, SearchProblem, is_variance


def find_margins(problem: SearchProblem, x: np.ndarray, first: float = 1e-3, growth: float = 4.0, largest: float = 16.0,
                 bisections: int = 4) -> dict:
    """How far each free parameter can move down and up from ``x``, the others held, before a criterion fails:
    {name: {"down": distance, "down_limit": what stopped it, "up": ..., "up_limit": ...}}."""
    crit = problem.criteria
    d = len(x)
    dirs = [(i, s) for i in range(d) for s in (-1, 1)]
    passed = {k: 0.0 for k in dirs}
    failed: dict = {}
    limit: dict = {}
    for k in dirs:  # a variance cannot go below zero: its down move ends at the domain edge
        i, s = k
        if s < 0 and is_variance(problem.free[i]) and x[i] <= 0:
            limit[k] = "domain (a variance is >= 0)"

    def points(moves):
        P = np.repeat(x[None], len(moves), axis=0)
        for r, ((i, s), delta) in enumerate(moves):
            P[r, i] = max(x[i] + s * delta, 0.0) if is_variance(problem.free[i]) else x[i] + s * delta
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
            clipped = s < 0 and is_variance(problem.free[i]) and delta >= x[i]
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
