"""The theory at one point, as ``symmft analyze`` gives it: exact laws where quadrature can do it, and where it
cannot, the population closure's numbers with the moment closure's measured error beside them (docs/laws.md).

Stage: ``Cell`` + one hyperparameter point -> :func:`symmft.theory.dynamics.analyze` (deterministic, closure
"auto") -> if a nonlinearity's law is approximate there (a nonlinearity of a non-Gaussian sum, e.g. the LSTM's
tanh(c')), :func:`symmft.theory.population.analyze_population` at the same point -> one
:class:`~symmft.theory.analysis.Analysis`.

Why not the population closure everywhere: it does not vectorize (grids, the critical search) and needs a burn-in
of several memory times (the LSTM at mu_f = 3: ~150 s at 200,000 units on the shared 2-core machine), so grids keep
the deterministic closure, labelled approximate in ``Analysis.laws``. At one point the cost is affordable, and the
moment closure's error is real (the cell h' = tanh(3 tanh(u) + h): Q* 0.670 vs 0.764; the LSTM: ~1% on Q_h).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from symmft.cell import params
from symmft.cell.trace import Cell
from symmft.errors import Status
from symmft.theory.analysis import Analysis
from symmft.theory.conditional import APPROXIMATE, POPULATION
from symmft.theory.dynamics import analyze
from symmft.theory.meanfield import DEFAULT_CLOSURE
from symmft.theory.population import analyze_population

#: Units of the population check: 16 groups of 4,000 (>= 1,000 per group keeps the rate fits above the noise);
#: ~1/3 of the population closure's default cost, standard errors ~1.8x its own (LSTM defaults: Q_h +-4e-5).
CHECK_POPULATION = 64_000


def analyze_point(cell: Cell, hyperparameters: dict | None = None, *, closure: str = DEFAULT_CLOSURE,
                  backend: str = "numpy", dps: int = 30, population: int = CHECK_POPULATION,
                  seed: int = 0) -> Analysis:
    """The analysis of ``cell`` at one point (scalar ``hyperparameters``).

    With ``closure="auto"`` (default) on the numpy backend, a point where some nonlinearity's law is approximate
    (``conditional.APPROXIMATE``) is solved by the population closure (``population`` units, ``seed``): its numbers
    (with standard errors, extras ``standard_error_*``) become the result, and the deterministic closure's stay
    beside them as extras ``moment_closure_<key>`` (its error is their difference). Where the population cannot
    answer (chrono biases, a memory too long to burn in), the deterministic result is returned with a note saying
    its error is unmeasured. Any other closure is :func:`analyze` unchanged.
    """
    result = analyze(cell, hyperparameters, backend=backend, closure=closure, dps=dps)
    approximate = sorted(k for k, law in result.laws.items() if law in APPROXIMATE)
    if closure != "auto" or backend != "numpy" or not approximate:
        return result
    h = params.resolve(cell, hyperparameters)
    if params.chrono_maps(cell, h):
        return replace(result, notes=result.notes + (
            f"{', '.join(approximate)}: approximate law; the population check does not draw chrono biases, so its "
            "error is not measured here",))
    checked = analyze_population(cell, h, population=population, seed=seed)
    if int(checked.status) != Status.OK:
        name = Status(int(checked.status)).name
        return replace(result, notes=result.notes + (
            f"{', '.join(approximate)}: approximate law; the population check ended {name} "
            f"({Status(int(checked.status)).message}), so its error is not measured here",))
    deterministic = {f"moment_closure_{k}": np.asarray(v) for k, v in result.fixed_point.items()}
    deterministic.update({f"moment_closure_correlation_{s}": np.asarray(v) for s, v in result.correlation.items()})
    deterministic.update(moment_closure_lambda=np.asarray(result.lambda_))
    return replace(
        checked,
        closure="auto",
        laws={k: POPULATION for k in result.laws},
        extras={**checked.extras, **deterministic},
        notes=(f"{', '.join(approximate)}: no exact quadrature (a nonlinearity of a non-Gaussian sum); every number "
               f"is the population closure's ({int(checked.extras['population'])} units, +-se), the deterministic "
               "Gaussian moment closure's beside it as moment_closure_*",),
    )
