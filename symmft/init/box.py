"""The critical search's box: which hyperparameters are free by default, their ranges, and the search problem in
unit-box coordinates (design targets and candidate ranking) that :mod:`symmft.init.optimize` and
:mod:`symmft.init.margins` work on. :func:`symmft.init.search.find_critical` builds it.

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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from symmft.cell import params as params_mod
from symmft.cell.graph import Cell
from symmft.errors import HyperparameterError, Status
from symmft.init.criteria import Criteria
from symmft.init.evaluate import evaluate_points, gate_roles

#: Newton iterations per analyze call during the search. Converging points need ~5-20 (Newton from the plain
#: iterates); points that will end NOT_CONVERGED (the chaotic cross map right next to the critical line) used all
#: 200 of analyze's default, 3-4 s per 7-point batch on the 2-core CPU. The chosen point is re-solved with 200.
SEARCH_ITERATIONS = 50
#: The m1 polish and the margins retry a point NOT_CONVERGED after 50 iterations with analyze's 200 (ordinary
#: ordered LSTM points near a rule can need 50-200: 0.6 below one rule's mu_i took more than 100); the final check
#: retries with 1000: next to the critical line the chaotic cross map can need several hundred (0.3 above that
#: rule's mu_i: 1000). A margin move still NOT_CONVERGED at 200 is reported as limited by that status.
THOROUGH_ITERATIONS, RETRY_ITERATIONS = 200, 1000


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


def is_variance(name: str) -> bool:
    """Whether hyperparameter ``name`` is a variance (its range ends at 0 from below)."""
    return name.startswith(("sigma2_", "nu2_", "rho2_"))


def check_free(cell: Cell, free: tuple[str, ...], fixed: dict) -> None:
    """Refuse free names that are unknown, describe the data, or are also ``fixed``."""
    if not free:
        raise HyperparameterError(f"no free hyperparameter to search for cell {cell.name}: name some with free=[...] (--free)")
    for n in free:
        params_mod.resolve(cell, {n: params_mod.default(n)})  # unknown names: the usual message with a suggestion
        if n in ("q_x", "c_x") or n == "chrono_length":
            raise HyperparameterError(f"{n} describes the data (or the chrono length), not the initialization; fix it instead of freeing it")
        if n in fixed:
            raise HyperparameterError(f"hyperparameter {n} is both fixed and free; give it one role")


@dataclass
class SearchProblem:
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

    def at_bounds(self, x) -> list[str]:
        """The free parameters that sit on an edge of the box at the point ``x`` (within 1e-6 of its width)."""
        return [n for n, v, a, b in zip(self.free, x, self.lo, self.hi) if min(v - a, b - v) <= 1e-6 * (b - a)]

    def box_text(self) -> str:
        """The box in words, for messages: "box mu_f in [0, 9.9], ..."."""
        return "box " + ", ".join(f"{n} in [{a:g}, {b:g}]" for n, a, b in zip(self.free, self.lo, self.hi))
