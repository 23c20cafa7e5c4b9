"""The array-module layer: one place that chooses numpy or CuPy.

Numeric code takes ``xp`` (a module with numpy's API) and never imports CuPy itself. CuPy is imported lazily,
only when asked for, so everything runs on a machine without it.
"""

from __future__ import annotations

import types

import numpy as np

from .errors import BackendError

BACKENDS = ("numpy", "cupy")


def get_xp(name: str = "numpy") -> types.ModuleType:
    """The array module called ``name`` ("numpy" or "cupy")."""
    if name == "numpy":
        return np
    if name == "cupy":
        try:
            import cupy
        except ImportError as e:
            raise BackendError(f"backend 'cupy' needs CuPy and a CUDA GPU (pip install 'symmft[gpu]'): {e}") from None
        try:
            cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # CuPy installed but no usable GPU
            raise BackendError(f"backend 'cupy': no usable CUDA device ({e})") from None
        return cupy
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


def array_module(*arrays) -> types.ModuleType:
    """The module owning ``arrays`` (CuPy if any is a CuPy array, else numpy)."""
    for a in arrays:
        if type(a).__module__.startswith("cupy"):
            import cupy

            return cupy
    return np


def to_numpy(a) -> np.ndarray:
    """A host numpy copy of ``a`` (numpy or CuPy array, or scalar)."""
    return a.get() if hasattr(a, "get") and type(a).__module__.startswith("cupy") else np.asarray(a)


def gpu_available() -> bool:
    """Whether the cupy backend can run here."""
    try:
        get_xp("cupy")
    except BackendError:
        return False
    return True
