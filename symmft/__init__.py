"""symmft: the mean-field theory of gated recurrent networks, derived from a cell file, and the initializations
it recommends, checked against the finite network.

The public API, in pipeline order (each name is imported from its stage's module on first use, so ``import symmft``
stays cheap and optional dependencies load only when their stage is used)::

    cell = symmft.load_cell("lstm")                      # 1. cell file -> traced graph
    a = symmft.analyze(cell, {"mu_f": 3.0})              # 2. theory: fixed point, c*, lambda, xi, status
    j = symmft.jacobian_moments(a, weights="orthogonal") #    Jacobian moments m1, m2
    sim = symmft.simulate(cell, {"mu_f": 3.0}, width=1000, steps=100, tied=True)   # the finite network
    rule = symmft.find_critical(cell, length=1000)       # 3. critical initialization for length T
    src = symmft.export_source(rule.to_json(), "torch")  # 4. a standalone initializer module
    plan = symmft.load_plan("lstm")                      #    the generated training step
    symmft.build_report("lstm", length=300, quick=True)  # 5. reports/lstm/report.html, .md, results.json
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it (the stages are ``symmft.cell``, ``.theory``, ``.network``,
#: ``.init``, ``.export``, ``.harness``, ``.report``, ``.cli``).
_API = {
    # 1. the cell
    "Cell": "symmft.cell.graph",
    "load_cell": "symmft.cell.trace",
    "available_cells": "symmft.cell.trace",
    "hyperparameter_names": ("symmft.cell.params", "names"),
    "resolve_hyperparameters": ("symmft.cell.params", "resolve"),
    # 2. the theory
    "derive": "symmft.theory.meanfield",
    "Derivation": "symmft.theory.meanfield",
    "MeanFieldMap": "symmft.theory.meanfield_map",
    "analyze": "symmft.theory.dynamics",
    "analyze_grid": "symmft.theory.grid",
    "Analysis": "symmft.theory.analysis",
    "analyze_population": "symmft.theory.population",
    "analyze_tied": "symmft.theory.tied",
    "TiedAnalysis": "symmft.theory.tied",
    "analyze_point": "symmft.theory.point",
    "CLOSURES": "symmft.theory.closure",
    "LAWS": "symmft.theory.conditional",
    "jacobian_moments": "symmft.theory.jacobian",
    # the finite network, the theory's independent check
    "Network": "symmft.network.simulate",
    "simulate": "symmft.network.simulate",
    "empirical_jacobian_moments": "symmft.network.spectrum",
    # 3. the initialization
    "Criteria": "symmft.init.criteria",
    "evaluate_points": "symmft.init.evaluate",
    "find_critical": "symmft.init.search",
    "find_critical_tied": "symmft.init.tied_search",
    "CriticalResult": "symmft.init.rule",
    "read_rule": "symmft.init.rule",
    "evaluate_baselines": "symmft.init.baselines",
    "baseline_hyperparameters": "symmft.init.baselines",
    "phase_diagram": "symmft.init.phase",
    # 4. export and the training harness
    "export_source": "symmft.export.spec",
    "generate": "symmft.harness.codegen",
    "load_plan": "symmft.harness.plan",
    "make_task": "symmft.harness.tasks",
    "train": "symmft.harness.train",
    "confirm": "symmft.harness.confirm",
    "trainability": "symmft.harness.trainability",
    # 5. the report a person reads
    "build_report": "symmft.report.build",
    # caches (in memory and under $SYMMFT_CACHE)
    "clear_caches": "symmft.cache",
    # errors and statuses
    "Status": "symmft.errors",
    "SymmftError": "symmft.errors",
    "CellDefinitionError": "symmft.errors",
    "HyperparameterError": "symmft.errors",
    "ClosureError": "symmft.errors",
    "BackendError": "symmft.errors",
}

__all__ = sorted(_API)


def __getattr__(name: str):
    try:
        where = _API[name]
    except KeyError:
        raise AttributeError(f"module 'symmft' has no attribute {name!r}") from None
    module, attribute = where if isinstance(where, tuple) else (where, name)
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
