"""A rule's criteria judged on the tied network's theory (docs/tied.md), not on the untied maps.

What: the search (:mod:`symmft.init.search`) optimizes the untied mean-field quantities, which are cheap and
deterministic. The network people train is tied; for long memories its second moments are far above the untied
ones (benchmarks/RESULTS.md §3). This module evaluates :class:`~symmft.init.criteria.Criteria` on
:func:`symmft.theory.tied.analyze_tied` at the rule's point. Stage: rule -> verdict, used by
``symmft critical --theory tied``.

How: a sequence of length T starts from the zero state. When the tied memory time xi exceeds T (or the
stationary state was not reached), the stationary state is never seen inside a sequence: Q_s is the largest
second moment over t <= T and the Jacobian moments are taken at the moments of step T. Otherwise the stationary
moments are used. xi is the tied theory's effective decay rate of the distance between two sequences.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from symmft.cell.trace import Cell
from symmft.errors import Status
from symmft.init.criteria import Criteria
from symmft.theory.jacobian import jacobian_moments
from symmft.theory.tied import analyze_tied


def tied_criteria(cell: Cell, hyperparameters: dict, length: int, criteria: Criteria, *, weights: str = "orthogonal",
                  input_dim: int | None = None, population: int = 4000, seed: int = 0) -> dict:
    """The quantities the criteria judge, from the tied theory at ``hyperparameters`` for sequences of ``length``
    T, and the criteria that fail. Returns {"judged_on": "transient" | "stationary", "values": {xi, m1, m2,
    spread, Q_s...}, "standard_error": {...}, "fails": [...], "status": name}."""
    run = dict(steps=length, input_dim=input_dim, weights=weights, population=population, seed=seed)
    a = analyze_tied(cell, hyperparameters, stationary=False, **run)
    if a.xi <= length and a.status == Status.NOT_CONVERGED:  # short memory, slow moments: solve the stationary state
        a = analyze_tied(cell, hyperparameters, **run)
    transient = not (a.xi <= length and a.status == Status.OK)
    if transient:
        at_T = {f"{k}_{s}": float(a.trajectory[s][m][-1]) for s in cell.states
                for k, m in (("M", "mean"), ("Q", "second_moment"))}
        a = dataclasses.replace(a, fixed_point=at_T)
        q = {f"Q_{s}": float(np.max(a.trajectory[s]["second_moment"])) for s in cell.states}
    else:
        q = {f"Q_{s}": a.fixed_point[f"Q_{s}"] for s in cell.states}
    j = jacobian_moments(a, kind="memory", weights=weights, length=length)
    values = {"xi": a.xi, "lambda": a.lambda_, "m1": float(j["m1"]), "m2": float(j["m2"]),
              "variance": float(j["variance"]), "spread": float(j["relative_spectral_variance"]), **q}
    status = Status.OK if transient or a.status == Status.OK else a.status
    ev = {**{k: np.array([v]) for k, v in values.items()}, "status": np.array([int(status)])}
    return {"judged_on": "transient" if transient else "stationary", "values": values,
            "standard_error": {k: v for k, v in a.standard_error.items() if k.startswith(("Q_", "lambda"))},
            "fails": criteria.failures(ev)[0], "status": a.status.name, "population": a.extras["population"]}
