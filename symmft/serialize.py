"""JSON conversion shared by every stage's results (a leaf module: numpy only)."""

from __future__ import annotations

import math

import numpy as np


def jsonable(obj):
    """``obj`` as JSON-ready data: dicts, lists, tuples and arrays as nested lists, numpy scalars as Python numbers,
    +-inf (no decay) as "inf"/"-inf", NaN (a failed point: see its status) as None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray) and obj.ndim > 0:
        return [jsonable(v) for v in obj]
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)) or isinstance(obj, np.ndarray):
        x = float(obj)
        return x if math.isfinite(x) else (None if math.isnan(x) else ("inf" if x > 0 else "-inf"))
    return obj
