"""Optional dependencies, imported on demand with an error that names the extra to install (a leaf module).

The core (cell -> theory -> init -> export) needs sympy, mpmath, numpy, scipy, networkx and tqdm. Plots need
matplotlib (``symmft[plot]``); the training harness's tasks and sweeps need scikit-learn and dask.distributed
(``symmft[harness]``); CuPy is ``symmft[gpu]`` (see :mod:`symmft.backend`).
"""

from __future__ import annotations

import importlib
import types

from symmft.errors import SymmftError

#: Top-level module -> (extra, what needs it).
EXTRAS = {
    "matplotlib": ("plot", "plots (phase diagrams, confirm and trainability plots, reports)"),
    "sklearn": ("harness", "the training tasks' data sets (scikit-learn's digits)"),
    "dask": ("harness", "sweeps of trainings on dask.distributed"),
    "distributed": ("harness", "sweeps of trainings on dask.distributed"),
}


class MissingDependencyError(SymmftError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require(module: str) -> types.ModuleType:
    """Import ``module`` (e.g. ``"matplotlib.pyplot"``), or raise :class:`MissingDependencyError` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        top = module.split(".")[0]
        extra, purpose = EXTRAS.get(top, ("all", module))
        raise MissingDependencyError(f"{purpose} need {top}, which is not installed ({e}): "
                                     f"pip install 'symmft[{extra}]'") from None


def pyplot() -> types.ModuleType:
    """``matplotlib.pyplot`` on the file-only Agg backend (figures are written, never shown)."""
    require("matplotlib").use("Agg")
    return require("matplotlib.pyplot")
