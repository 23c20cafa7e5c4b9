"""The array-module layer: one place that chooses numpy or CuPy.

Numeric code takes ``xp`` (a module with numpy's API) and never imports CuPy itself. CuPy is imported lazily,
only when asked for, so everything runs on a machine without it.
"""

from __future__ import annotations

import os
import types

import numpy as np

from symmft.errors import BackendError

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


def scipy_for(xp: types.ModuleType) -> types.ModuleType:
    """The scipy of ``xp``: ``scipy`` for numpy, ``cupyx.scipy`` for CuPy, with ``linalg`` and ``special`` loaded
    (e.g. ``scipy_for(xp).linalg.solve_triangular``, ``scipy_for(xp).special.erf``)."""
    if xp is np:
        import scipy.linalg
        import scipy.special

        return scipy
    import cupyx.scipy.linalg
    import cupyx.scipy.special

    return cupyx.scipy


def random_generator(xp: types.ModuleType, seed: int):
    """A seeded generator of standard normals on ``xp``'s device: ``standard_normal(shape, dtype=...)``, dtype
    float32 or float64.

    numpy: SFC64 (numpy's fastest normals). CuPy: ``cupy.random.RandomState`` (cuRAND's XORWOW; it takes a dtype
    in ``standard_normal``, as numpy's Generator does). The two are different streams: a seed fixes each
    backend's result, and results agree between backends statistically, not bit for bit."""
    if xp is np:
        return np.random.Generator(np.random.SFC64(seed))
    return xp.random.RandomState(seed)


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


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the operating system.

    Vectorized grids and training steps allocate and free many arrays of 0.1-30 MiB. By default glibc maps each
    such block afresh and unmaps it on free, and every page is faulted in again: on the 2-core VM this was 40% of a
    512 x 512 phase diagram's time (26 s of system time in 68 s; 15.4 s -> 8.5 s on a 256 x 256 grid). A process-wide
    allocator policy, so the command line sets it, not the library. Returns False where it does not apply (not
    glibc)."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # glibc <malloc.h>
    return bool(mallopt(m_mmap_threshold, 32 * 2**20) and mallopt(m_trim_threshold, 2**30)
                and mallopt(m_top_pad, 64 * 2**20))


def memory_bytes(xp: types.ModuleType) -> int | None:
    """Total memory of the device ``xp`` allocates on (host RAM for numpy, the GPU's for CuPy); None if unknown.

    Used to refuse an allocation that cannot fit before trying it (a MemoryError after minutes of swapping, or a
    traceback, is worse than one line saying how much was asked for)."""
    try:
        if xp is np:
            return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return int(xp.cuda.Device().mem_info[1])
    except (AttributeError, ValueError, OSError):
        return None
