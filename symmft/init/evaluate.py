"""The quantities the criteria judge, evaluated on batches of points, and which gate of a cell is which.

Stage: ``Cell`` -> :func:`symmft.theory.dynamics.analyze` + :func:`symmft.theory.jacobian.jacobian_moments` on
vectorized batches -> per point xi, lambda, m1, m2, spread, Q_s, status, judged by
:class:`symmft.init.criteria.Criteria`. Used by the search (:mod:`symmft.init.box`, for :mod:`symmft.init.search`), the baselines
(:mod:`symmft.init.baselines`) and phase diagrams (:mod:`symmft.init.phase`).
"""

from __future__ import annotations

import numpy as np

from symmft import cache
from symmft.cell import params as params_mod
from symmft.cell.graph import Cell, primary_states
from symmft.errors import ClosureError, Status
from symmft.theory.dynamics import analyze
from symmft.theory.grid import CHUNK
from symmft.theory.jacobian import jacobian_moments



def evaluate_points(cell: Cell, hyperparameters: dict, *, weights: str = "orthogonal", length: int | None = None,
                    chunk: int = CHUNK, bar=None, max_iterations: int = 200, retry: int | None = None,
                    start: dict | None = None) -> dict:
    """Fixed point, xi, lambda and Jacobian moments at N points: ``hyperparameters`` values are numbers or 1-D
    arrays of one length N (evaluated ``chunk`` points per call; ``bar`` a tqdm bar to advance). Returns 1-D arrays
    ``xi, lambda, chi_1, m1, m2, variance, status`` and every fixed-point key (``M_s, Q_s``); with ``length``, also
    ``spread`` = T (m2/m1^2 - 1). Failed points hold NaN and their status. ``max_iterations`` bounds analyze's
    Newton loops; ``retry``, if given, is the budget NOT_CONVERGED points get in a second, pointwise try.
    ``start`` (a fixed point {M_s, Q_s: number}, e.g. :func:`fixed_point` of a nearby evaluation) warm-starts
    every point's Newton solve there (:func:`symmft.theory.dynamics.analyze`); a point that then fails is solved
    again from analyze's own start, so a warm start changes the cost, never which points are found."""
    h = params_mod.resolve(cell, hyperparameters)
    n = max([np.size(v) for v in h.values() if np.ndim(v)] or [1])
    flat = {k: (np.ravel(v) if np.ndim(v) else v) for k, v in h.items()}
    parts = []
    for lo in range(0, n, chunk):
        point = {k: (v[lo: lo + chunk] if np.ndim(v) else v) for k, v in flat.items()}
        size = min(chunk, n - lo)
        parts.append(_evaluate_chunk(cell, point, weights, length, max_iterations, start, size))
        if bar is not None:
            bar.update(size)
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    if start is not None:  # the warm start missed: those points from analyze's own start
        for i in np.flatnonzero(out["status"] != Status.OK):
            point = {k: (v[i] if np.ndim(v) else v) for k, v in flat.items()}
            again = _evaluate_chunk(cell, point, weights, length, max_iterations, None, 1)
            for k in out:
                out[k][i] = again[k][0]
    if retry and retry > max_iterations:
        for i in np.flatnonzero(out["status"] == Status.NOT_CONVERGED):
            point = {k: (v[i] if np.ndim(v) else v) for k, v in flat.items()}
            again = evaluate_points(cell, point, weights=weights, length=length, max_iterations=retry)
            for k in out:
                out[k][i] = again[k][0]
    return out


def _evaluate_chunk(cell: Cell, point: dict, weights: str, length: int | None, max_iterations: int,
                    start: dict | None, size: int) -> dict:
    """One analyze call and its Jacobian moments: the criteria's quantities at ``size`` points."""
    a = analyze(cell, point, max_iterations=max_iterations, start=start)
    try:
        j = jacobian_moments(a, kind="memory", weights=weights, length=length)
    except ClosureError as e:
        raise ClosureError(f"cell {cell.name}: the Jacobian moments m1, m2 the criteria need cannot be derived: {e}") from e
    part = {"xi": a.xi, "lambda": a.lambda_, "chi_1": a.extras["chi_1"], "status": a.status,
            **{k: j[k] for k in ("m1", "m2", "variance")}, **a.fixed_point}
    if length is not None:
        part["spread"] = j["relative_spectral_variance"]
    return {k: np.broadcast_to(np.asarray(v, dtype=int if k == "status" else float), (size,)) for k, v in part.items()}


def fixed_point(ev: dict, i: int = 0) -> dict | None:
    """The fixed point {M_s, Q_s: number} of point ``i`` of an :func:`evaluate_points` result, None where its
    status is not OK: the ``start`` for a nearby evaluation."""
    if ev["status"][i] != Status.OK:
        return None
    return {k: float(v[i]) for k, v in ev.items() if k.startswith(("M_", "Q_"))}


# ---------------------------------------------------------------- which gate is which


def gate_roles(cell: Cell) -> dict:
    """``{"memory": {map: sign}, "write": {map: sign}}``: sigmoid gates multiplying the previous primary state
    (memory; sign +1 when a larger bias keeps more, as LSTM f, GRU z) and sigmoid gates multiplying the new content
    in the terms free of the old state (write; LSTM i). Read from the cell's own update expressions (cached per
    cell-file hash)."""
    if cell.file_hash not in _ROLES:
        _ROLES[cell.file_hash] = _gate_roles(cell)
    return {k: dict(v) for k, v in _ROLES[cell.file_hash].items()}


_ROLES = cache.memory("gate roles")


def _gate_roles(cell: Cell) -> dict:
    import sympy as sp

    from symmft.theory.expectation import sigmoid
    from symmft.theory.meanfield import Derivation

    D = Derivation(cell)
    memory, write = {}, {}
    for s in primary_states(cell):
        atom = D.atoms[s]
        update = sp.expand(D.new_state[s])
        keep, rest = update.coeff(atom), update.subs(atom, 0)
        for a in cell.affines:
            gate = sigmoid(D.atoms[f"u_{a.name}"])
            if keep.has(gate):
                g = sp.Dummy("g")
                slope = keep.subs(gate, g).diff(g).subs(g, sp.Rational(1, 2))
                memory[a.name] = 1 if slope.is_positive else -1
        for term in sp.Add.make_args(rest):
            coeff, factors = term.as_coeff_mul()
            for a in cell.affines:
                if a.name not in memory and sigmoid(D.atoms[f"u_{a.name}"]) in factors:
                    write[a.name] = 1 if coeff > 0 else -1
    return {"memory": memory, "write": write}
