"""The closures: how the law of a nonlinearity's non-Gaussian argument is taken (docs/laws.md).

Stage: a leaf of the theory, read by :mod:`symmft.theory.meanfield` (which derives a map with one of
:data:`MAP_CLOSURES`), by the drivers that choose one per point or grid (:mod:`symmft.theory.dynamics`,
:mod:`symmft.theory.grid`, :mod:`symmft.theory.point`) and by the command line (``--closure``).
"""

from __future__ import annotations

from symmft.errors import ClosureError

#: The closures a user can choose (``--closure``); ``auto`` is the default (docs/laws.md, *Cost*): ``exact`` at one
#: point and on a grid of identical inputs (c_x = 1 at every point: the criteria, searches and phase diagrams),
#: where a two-sequence conditional law is needed only at C = Q, where it is one sequence's (k + 1 levels);
#: ``exact-diagonal`` (exact for the fixed point, moment closure for c*, lambda: labelled) on a grid with c_x != 1,
#: whose two-sequence law is a 2k + 2-level quadrature, ~100x the moment closure's cost (the GRU: 0.18 s a point).
CLOSURES = ("auto", "exact", "exact-diagonal", "gaussian", "population")
#: The closures a mean-field map can be derived with.
MAP_CLOSURES = ("exact", "exact-diagonal", "gaussian")
DEFAULT_CLOSURE = "auto"


def map_closure(closure: str, grid: bool, backend: str = "numpy", identical: bool = True) -> str:
    """The map closure that ``closure`` means at one point (``grid`` False) or on a grid, for ``backend``;
    ``identical``: the two input sequences are identical (c_x = 1) at every point.

    "auto" is "exact" at a point and on a grid of identical inputs, "exact-diagonal" on a grid with c_x != 1
    somewhere, and "gaussian" with mpmath (whose nested adaptive quadrature at 30 digits takes minutes per
    conditional expectation).
    """
    if closure not in CLOSURES + MAP_CLOSURES:
        raise ClosureError(f"unknown closure {closure!r}; choose one of {', '.join(CLOSURES)}")
    if closure == "auto":
        if backend == "mpmath":
            return "gaussian"
        return "exact-diagonal" if grid and not identical else "exact"
    return closure
