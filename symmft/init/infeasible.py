"""Why the critical search found no rule: :class:`InfeasibleError`, whose message names the best point found, what it
reached against each criterion, which free parameters sit on the box's edge and which fixed hyperparameter, moved a
little, would help most. Raised by :mod:`symmft.init.optimize` and :func:`symmft.init.search.find_critical`.
"""

from __future__ import annotations

import math

import numpy as np

from symmft.errors import Status, SymmftError
from symmft.init.box import SearchProblem, is_variance
from symmft.init.evaluate import evaluate_points, gate_roles


class InfeasibleError(SymmftError):
    """No point in the search box meets every criterion; the message names the best point and what to free."""


def infeasible_message(problem: SearchProblem, z, ev, fails: list[str]) -> str:
    """The refusal for the best point ``z`` (unit-box coordinates) with evaluation ``ev``, failing ``fails``."""
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
            f"({problem.box_text()}): the best point found ({point}) fails {', '.join(fails)}: {reached}.")
    edges = problem.at_bounds(x)
    if edges:
        text += f" {', '.join(edges)} sit{'s' * (len(edges) == 1)} at the edge of the search box: widening bounds (--bound NAME=LO:HI) may help."
    hint = _most_helpful(problem, x, fails)
    if hint:
        text += " " + hint
    if "spread" in fails and not gate_roles(cell)["memory"] and not {"m1", "xi", "status"} & set(fails):
        text += (" The Jacobian is critical on average (m1 ~ 1) but not isometric: a cell without gates reaches "
                 "isometry only by starving its inputs (q* -> 0: sigma2 = 0 and tiny bias variance), docs/theory.md §3.")
    return text


def _most_helpful(problem: SearchProblem, x, fails: list[str]) -> str:
    """Which fixed hyperparameter, changed, would reduce the total violation most (finite differences)."""
    candidates = [n for n in problem.base if n not in problem.free and n not in ("q_x", "c_x", "chrono_length")
                  and not n.startswith("beta_")]
    if not candidates or fails[0].startswith("status:"):
        return ""
    moves = []  # means move by +-0.25, variances halve or double (0 -> 0.25)
    for n in candidates:
        v = problem.base[n]
        if is_variance(n):
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


def _fmt(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.4g}"

