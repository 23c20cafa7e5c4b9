"""The result of the mean-field theory at a grid of points (a leaf module: the solvers import it, never the reverse).

:class:`Analysis` is what :func:`symmft.theory.dynamics.analyze` and the population closure
(:mod:`symmft.theory.population`) return, and what the Jacobian moments, the criteria and the command line consume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symmft.cell.graph import Cell
from symmft.errors import Status
from symmft.serialize import jsonable

#: A second moment above this is treated as divergence. Bounded gates keep moments O(1) except where a memory
#: gate saturates: the LSTM's Q_c grows like e^mu_f (5.7e3 at mu_f = 12, 3.7e11 at mu_f = 30); past mu_f ~ 31 the
#: float64 forget gate is too close to 1 for the fixed point to mean anything.
DIVERGENCE = 1e12
#: A second moment at most this is zero within the solver's tolerance (TOLERANCE x 10): the correlation
#: c* = C*/Q* of such a state is 0/0, undefined, and reported as NaN (the fixed point itself is fine: status OK).
ZERO_SECOND_MOMENT = 1e-12


@dataclass(frozen=True)
class Analysis:
    """Mean-field predictions at every point of a hyperparameter grid (arrays of the grid's shape)."""

    cell: Cell
    closure: str
    backend: str
    hyperparameters: dict
    fixed_point: dict  # key name (M_s, Q_s, ...) -> array
    cross_fixed_point: dict  # key name (C_s, ...) -> array
    correlation: dict  # state -> c* = C_s / Q_s
    lambda_: np.ndarray
    xi: np.ndarray
    diagonal_lambda: np.ndarray
    status: np.ndarray  # Status values
    extras: dict = field(default_factory=dict)
    laws: dict = field(default_factory=dict)  # nonlinearity ("file:line tanh(arg)") -> law (docs/laws.md)
    notes: tuple = ()  # what the numbers' laws leave unmeasured, in words (symmft.theory.point)

    def state_moments(self, state: str) -> dict:
        return {"mean": self.fixed_point[f"M_{state}"], "second_moment": self.fixed_point[f"Q_{state}"]}

    def to_json(self) -> dict:
        """JSON-ready dict (lists for grids, floats for scalars)."""

        def j(a):
            return jsonable(np.asarray(a, dtype=float))

        status = np.vectorize(lambda s: Status(int(s)).name, otypes=[object])(np.asarray(self.status))
        return {
            "cell": self.cell.name,
            "closure": self.closure,
            "laws": dict(self.laws),
            "notes": list(self.notes),
            "backend": self.backend,
            "hyperparameters": {k: jsonable(np.asarray(v, dtype=float)) for k, v in self.hyperparameters.items()},
            "fixed_point": {s: {k: j(v) for k, v in self.state_moments(s).items()} for s in self.cell.states},
            "correlation": {s: j(v) for s, v in self.correlation.items()},
            "lambda": j(self.lambda_),
            "xi": j(self.xi),
            "diagonal_lambda": j(self.diagonal_lambda),
            "status": status.tolist(),
            **{k: j(v) for k, v in self.extras.items()},
        }


def correlation(cross_moment, second_moment) -> np.ndarray:
    """c* = C*/Q*; NaN (undefined, 0/0) where Q* <= :data:`ZERO_SECOND_MOMENT` (a state that is zero at the fixed
    point, e.g. with no input (q_x = 0) and no bias variance)."""
    q = np.asarray(second_moment, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(q > ZERO_SECOND_MOMENT, np.asarray(cross_moment, dtype=float) / q, np.nan)


def time_scale(lam) -> np.ndarray:
    """xi = -1/log|lambda|; inf where |lambda| >= 1 (no decay), NaN where lambda is NaN."""
    a = np.abs(np.asarray(lam, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = np.where(a < 1, -1.0 / np.log(a), np.inf)
    return np.where(np.isnan(a), np.nan, xi)
