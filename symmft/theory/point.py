"""The theory at one point, as ``symmft analyze`` gives it: exact laws where quadrature can do it, and where it
cannot, the moment closure with its error measured by a population check (docs/laws.md).

Stage: ``Cell`` + one hyperparameter point -> :func:`symmft.theory.dynamics.analyze` (deterministic, closure
"auto") -> if a nonlinearity's law is approximate there (a nonlinearity of a non-Gaussian sum, e.g. the LSTM's
tanh(c')), :func:`symmft.theory.population.analyze_population` at the same point -> one
:class:`~symmft.theory.analysis.Analysis`.

Why the moment closure stays the number and the population a check: the population closure does not vectorize
(grids, the critical search) and needs a burn-in of several memory times (the LSTM at mu_f = 3: ~150 s at 200,000
units on the shared 2-core machine), and the library's ``analyze`` and the command line must agree. At one point a
small population is affordable, and the moment closure's error is real (the cell h' = tanh(3 tanh(u) + h): Q*
0.670 vs 0.764; the LSTM: ~1% on Q_h), so it is measured and printed.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from symmft.cell import params
from symmft.cell.graph import Cell
from symmft.errors import Status
from symmft.theory.analysis import Analysis
from symmft.theory.conditional import APPROXIMATE
from symmft.theory.dynamics import analyze
from symmft.theory.closure import DEFAULT_CLOSURE
from symmft.theory.population import analyze_population

#: Units of the population check: 16 groups of 1,000 (the least that keeps the rate fits above the noise);
#: standard errors ~3.5x the population closure's default (LSTM defaults: Q_h +-1e-4 against a 3.4e-4 gap), at
#: ~1/12 of its cost.
CHECK_POPULATION = 16_000


def analyze_point(cell: Cell, hyperparameters: dict | None = None, *, closure: str = DEFAULT_CLOSURE,
                  backend: str = "numpy", dps: int = 30, max_iterations: int = 200,
                  population: int = CHECK_POPULATION, seed: int = 0) -> Analysis:
    """:func:`analyze` of ``cell`` at one point (scalar ``hyperparameters``), with the approximate laws measured.

    With ``closure="auto"`` (default) on the numpy backend, where some nonlinearity's law is approximate
    (``conditional.APPROXIMATE``) the population closure (``population`` units, ``seed``) is run at the same point:
    its values come back as extras ``population_<key>`` with ``standard_error_population_<key>``, and the moment
    closure's measured error as ``moment_closure_error_<key>`` (deterministic minus population), summed up in a
    note. The numbers themselves stay :func:`analyze`'s, so the command line and the library agree. Where the
    population cannot answer (chrono biases, a memory too long to burn in) a note says the error is unmeasured.
    Any other closure is :func:`analyze` unchanged.
    """
    result = analyze(cell, hyperparameters, backend=backend, closure=closure, dps=dps, max_iterations=max_iterations)
    approximate = sorted(k for k, law in result.laws.items() if law in APPROXIMATE)
    if closure != "auto" or backend != "numpy" or not approximate:
        return result
    h = params.resolve(cell, hyperparameters)
    where = ", ".join(approximate)
    if params.chrono_maps(cell, h):
        return replace(result, notes=result.notes + (
            f"{where}: approximate law; the population check does not draw chrono biases, so its error is not "
            "measured here",))
    checked = analyze_population(cell, h, population=population, seed=seed)
    status = Status(int(checked.status))
    if status != Status.OK:
        return replace(result, notes=result.notes + (
            f"{where}: approximate law; the population check ended {status.name} ({status.message}), so its error "
            "is not measured here",))
    values = {**checked.fixed_point, **{f"correlation_{s}": v for s, v in checked.correlation.items()},
              "lambda": checked.lambda_}
    mine = {**result.fixed_point, **{f"correlation_{s}": v for s, v in result.correlation.items()},
            "lambda": result.lambda_}
    errors = {"lambda": checked.extras["standard_error_lambda"]}
    errors.update({k: checked.extras[f"standard_error_{k}"] for k in checked.fixed_point})
    extras = dict(result.extras)
    for key, value in values.items():
        extras[f"population_{key}"] = np.asarray(value)
        extras[f"moment_closure_error_{key}"] = np.asarray(mine[key]) - np.asarray(value)
        if key in errors:
            extras[f"standard_error_population_{key}"] = np.asarray(errors[key])
    worst = max((k for k in checked.fixed_point if k.startswith("Q_")),
                key=lambda k: abs(float(extras[f"moment_closure_error_{k}"])) / max(abs(float(values[k])), 1e-300))
    scale = abs(float(values[worst]))
    if not scale > 0:  # a zero state (q_x = 0, no bias): nothing to measure a relative error against
        return replace(result, extras=extras, notes=result.notes + (
            f"{where}: Gaussian moment closure; the population check finds the state at zero ({worst} = "
            f"{float(values[worst]):g}), where both laws agree",))
    relative = float(extras[f"moment_closure_error_{worst}"]) / float(values[worst])
    return replace(result, extras=extras, notes=result.notes + (
        f"{where}: no exact quadrature (a nonlinearity of a non-Gaussian sum): Gaussian moment closure. A population "
        f"check ({int(checked.extras['population'])} units) measures its error: {worst} {100 * relative:+.2g}% "
        f"(+-{100 * float(errors[worst]) / float(values[worst]):.1g}%), lambda "
        f"{float(extras['moment_closure_error_lambda']):+.2g} (+-{float(errors['lambda']):.1g}); the population's "
        "values are population_*",))
