"""The theory over a whole hyperparameter grid: chunks of flattened points, one ``Analysis`` of the grid's shape.

Stage: ``Cell`` + hyperparameters with array values -> :func:`symmft.theory.dynamics.analyze` per chunk ->
:func:`analyze_grid`'s joined :class:`~symmft.theory.analysis.Analysis`. The command line (``symmft analyze
--grid``), the criteria evaluation and the phase diagrams all chunk through :data:`CHUNK`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace

import numpy as np

from symmft.cell import params
from symmft.cell.graph import Cell
from symmft.errors import HyperparameterError
from symmft.theory.analysis import Analysis
from symmft.theory.dynamics import MAX_DPS, analyze
from symmft.theory.closure import DEFAULT_CLOSURE
from symmft.progress import progress as show_progress

#: Points per vectorized ``analyze`` call: large, since each call costs ~50 map evaluations of fixed Python overhead
#: and the solver drops converged points from its active set, so a slow (chaotic) point no longer holds back its
#: chunk. On the 2-core CPU a 96 x 96 LSTM phase diagram took 105 s in chunks of 16 and 83 s in chunks of 2048.
CHUNK = 4096

#: Seconds per point, to estimate a grid's cost before starting it: numpy LSTM (the costliest built-in map),
#: 1024 points in 5.6 s on the shared 2-core CPU; mpmath one point at 30 digits in about a minute, a cost growing
#: about like dps^2 (multiplication at that precision); the population closure ~1 s a point.
SECONDS_PER_POINT = {"numpy": 5e-3, "cupy": 5e-4, "mpmath": 60.0, "population": 1.0}
#: Cost of a point relative to SECONDS_PER_POINT where a two-sequence conditional law is solved at every point
#: (``closure="exact"`` with c_x != 1): 0.18 s a reset-after GRU point on the 2-core CPU (benchmarks/RESULTS.md).
TWO_SEQUENCE_WORK = 40.0
#: A grid above this many points is refused: its result arrays alone (~25 float64 per point) take gigabytes.
MAX_POINTS = 10**7
#: Above this many estimated seconds a grid runs with a warning that says how long it will take.
WARN_SECONDS = 300.0


def estimate_seconds(points: int, *, backend: str = "numpy", closure: str = "gaussian", dps: int = 30) -> float:
    """Rough wall time of :func:`analyze_grid` on ``points`` points (see :data:`SECONDS_PER_POINT`)."""
    if closure == "population":
        return points * SECONDS_PER_POINT["population"]
    if backend == "mpmath":
        return points * SECONDS_PER_POINT["mpmath"] * max(1.0, dps / 30) ** 2
    return points * SECONDS_PER_POINT.get(backend, SECONDS_PER_POINT["numpy"])


def check_cost(points: int, *, backend: str = "numpy", closure: str = "gaussian", dps: int = 30,
               work: float = 1.0) -> str | None:
    """Refuse (HyperparameterError) a grid of more than :data:`MAX_POINTS` points or mpmath digits above
    :data:`MAX_DPS`, before any allocation; return a warning line with the estimate when the work will take
    more than :data:`WARN_SECONDS`, else None. ``work``: cost of a point relative to ``analyze`` alone."""
    seconds = work * estimate_seconds(points, backend=backend, closure=closure, dps=dps)
    if points > MAX_POINTS:
        raise HyperparameterError(
            f"a grid of {points:.3g} points is too large: about {points * 25 * 8 / 2**30:.3g} GiB of results and "
            f"{_duration(seconds)} of work; at most {MAX_POINTS:.0e} points: use fewer points per axis")
    if backend == "mpmath" and dps > MAX_DPS:
        raise HyperparameterError(f"dps = {dps}: about {_duration(seconds / points)} per point (the cost grows like "
                                  f"dps^2); the 30-digit default is already 14 digits beyond float64; at most {MAX_DPS}")
    if seconds > WARN_SECONDS:
        return (f"warning: {points} point{'s' * (points != 1)} with the {backend} backend"
                f"{f' at {dps} digits' if backend == 'mpmath' else ''} will take about {_duration(seconds)}")
    return None


def _duration(seconds: float) -> str:
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds >= 2 * size:
            return f"{seconds / size:.3g} {unit}"
    return f"{seconds:.3g} s"


def analyze_grid(cell: Cell, values: dict, mesh: dict[str, np.ndarray], *, backend: str = "numpy",
                 closure: str = DEFAULT_CLOSURE, dps: int = 30, max_iterations: int = 200, progress: bool = True) -> Analysis:
    """``analyze`` at every point of ``mesh`` (arrays of one shape, e.g. an 'ij' meshgrid) with the scalar
    ``values`` fixed; one ``Analysis`` of the mesh's shape. The mpmath backend and the population closure take
    one point per call (a two-sequence conditional law slices its own calls: ``compile.CONDITIONAL_POINTS``);
    ``progress`` shows a bar (plain lines off a terminal) on stderr when there are several calls."""
    shape = next(iter(mesh.values())).shape
    total = math.prod(shape)
    chunk = 1 if backend == "mpmath" or closure == "population" else CHUNK

    def run(point):
        return analyze(cell, {**values, **point}, backend=backend, closure=closure, dps=dps,
                       max_iterations=max_iterations)

    if chunk > 1 and total <= chunk:
        return run(mesh)
    if progress:
        grid = " x ".join(f"{a}({n})" for a, n in zip(mesh, shape))
        print(f"symmft: analyzing {cell.name} on {grid}: {total} points, {chunk} per call", file=sys.stderr)
    flat = {k: v.ravel() for k, v in mesh.items()}
    parts = []
    with show_progress(total, f"analyze {cell.name}", "point", enabled=progress) as bar:
        for lo in range(0, total, chunk):
            parts.append(run({k: (v[lo] if chunk == 1 else v[lo: lo + chunk]) for k, v in flat.items()}))
            bar.update(min(chunk, total - lo))
    return merge(parts, shape, params.resolve(cell, {**values, **mesh}))


def merge(parts: list[Analysis], shape: tuple[int, ...], hyperparameters: dict) -> Analysis:
    """Join analyses of consecutive chunks of flattened grid points into one Analysis of ``shape``."""

    def cat(values, dtype=float):
        return np.concatenate([np.ravel(np.asarray(v, dtype=dtype)) for v in values]).reshape(shape)

    def cat_dict(field):
        return {k: cat([getattr(p, field)[k] for p in parts]) for k in getattr(parts[0], field)}

    return replace(
        parts[0],
        hyperparameters=hyperparameters,
        fixed_point=cat_dict("fixed_point"),
        cross_fixed_point=cat_dict("cross_fixed_point"),
        correlation=cat_dict("correlation"),
        lambda_=cat([p.lambda_ for p in parts]),
        xi=cat([p.xi for p in parts]),
        diagonal_lambda=cat([p.diagonal_lambda for p in parts]),
        status=cat([p.status for p in parts], dtype=int),
        extras=cat_dict("extras"),
    )
