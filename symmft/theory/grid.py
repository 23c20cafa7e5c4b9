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
from symmft.cell.trace import Cell
from symmft.theory.analysis import Analysis
from symmft.theory.dynamics import analyze
from symmft.theory.meanfield import DEFAULT_CLOSURE, two_sequence_conditional

#: Points per vectorized ``analyze`` call: large, since each call costs ~50 map evaluations of fixed Python overhead
#: and the solver drops converged points from its active set, so a slow (chaotic) point no longer holds back its
#: chunk. On the 2-core CPU a 96 x 96 LSTM phase diagram took 105 s in chunks of 16 and 83 s in chunks of 2048.
CHUNK = 4096


def analyze_grid(cell: Cell, values: dict, mesh: dict[str, np.ndarray], *, backend: str = "numpy",
                 closure: str = DEFAULT_CLOSURE, dps: int = 30, progress: bool = True) -> Analysis:
    """``analyze`` at every point of ``mesh`` (arrays of one shape, e.g. an 'ij' meshgrid) with the scalar
    ``values`` fixed; one ``Analysis`` of the mesh's shape. The mpmath backend and the population closure take
    one point per call, and so does ``closure="exact"`` where a two-sequence conditional law needs its nested
    quadrature (a node array of ~44^(2k+2) per point); ``progress`` shows a bar (plain lines off a terminal) on stderr when there are several calls."""
    shape = next(iter(mesh.values())).shape
    total = math.prod(shape)
    pointwise = closure == "population" or (closure == "exact" and two_sequence_conditional(cell))
    chunk = 1 if backend == "mpmath" or pointwise else CHUNK

    def run(point):
        return analyze(cell, {**values, **point}, backend=backend, closure=closure, dps=dps)

    if chunk > 1 and total <= chunk:
        return run(mesh)
    from tqdm import tqdm

    if progress:
        grid = " x ".join(f"{a}({n})" for a, n in zip(mesh, shape))
        print(f"symmft: analyzing {cell.name} on {grid}: {total} points, {chunk} per call", file=sys.stderr)
    flat = {k: v.ravel() for k, v in mesh.items()}
    parts = []
    with tqdm(total=total, unit="point", file=sys.stderr, disable=None if progress else True, desc="analyze") as bar:
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
