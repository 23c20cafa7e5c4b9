"""Dynamics of a compiled mean-field map: fixed points, correlation c*, eigenvalue lambda, time scale xi.

Stage: :class:`~symmft.theory.compile.CompiledMap` -> :class:`Analysis` (per grid point, with a status).

1. Diagonal map (means, second moments): a few plain iterations from a unit state, then Newton steps
   x <- x - (J - I)^-1 (F(x) - x) with the symbolic Jacobian, each step (halved if need be) kept only where it
   lowers the residual or the next Newton correction (else a plain step); converged points leave the batch.
   Newton matters near criticality, where plain iteration converges like E[f^2]^t. Where Newton points against
   the plain step (a locally expanding map far from a saturated memory's fixed point) or J - I is singular,
   a stretched plain step brackets the fixed point along the slow direction, or follows a
   state that grows without bound past DIVERGENCE (status DIVERGED); see docs/errors.md. The solver is
   :mod:`symmft.theory.fixedpoint`.
2. Cross map (cross moments between two input sequences) with the diagonal held at its fixed point. With
   identical inputs (c_x = 1) C = Q is an exact fixed point; it is used when stable, else the attracting c* < 1
   is solved for (the chaotic phase).
3. lambda = leading eigenvalue of the cross map's Jacobian at C*: a one-sided slope at c = 1, exactly as Price's
   theorem gives it; xi = -1/log|lambda| (inf where |lambda| >= 1). The diagonal map's leading eigenvalue is
   reported too (``diagonal_lambda``), and ``extras["chi_1"]``, the slope at c = 1 whether or not c = 1 is the
   attracting point: chi_1 > 1 is the chaotic phase (the classical order-to-chaos criterion).

Every failure is a :class:`~symmft.errors.Status` per point; failed points carry NaN in every quantity.
"""

from __future__ import annotations

import mpmath
import numpy as np

from symmft.cell import params as params_mod
from symmft.backend import get_xp, to_numpy
from symmft.cell.graph import Cell
from symmft.theory.compile import CompiledMap, compile_map
from symmft.errors import HyperparameterError, Status
from symmft.theory.analysis import DIVERGENCE, Analysis, correlation, time_scale
from symmft.theory.closure import DEFAULT_CLOSURE, map_closure
from symmft.theory.meanfield import derive, two_sequence_conditional
from symmft.theory.fixedpoint import (TOLERANCE, diverged, leading_eigenvalue, leading_eigenvalue_mp, matrix,
                                      newton, newton_mp, stack)
from symmft.theory.population import analyze_population

__all__ = ["MAX_DPS", "TOLERANCE", "analyze"]  # TOLERANCE: the solver's, importable from here as before

#: mpmath digits above this are refused: the reference needs ~30 (float64 has 16) and the cost grows like dps^2
#: (a 30-digit LSTM point takes about a minute on the shared 2-core CPU; 1000 digits would take about a day).
MAX_DPS = 1000


def analyze(
    cell: Cell,
    hyperparameters: dict | None = None,
    *,
    backend: str = "numpy",
    closure: str = DEFAULT_CLOSURE,
    max_iterations: int = 200,
    dps: int = 30,
    start: dict | None = None,
) -> Analysis:
    """Fixed point, c*, lambda and xi of ``cell`` at ``hyperparameters`` (numbers or broadcastable arrays).

    ``backend`` is "numpy" (default), "cupy" or "mpmath" (scalars only, ``dps`` digits: the reference).
    ``closure`` (docs/laws.md): "auto" (default) integrates every law that quadrature can exactly (conditional laws
    by nested quadrature; on a grid with c_x != 1 somewhere, the two-sequence law by the moment closure; with
    mpmath the moment closure; labelled) and the others by the Gaussian moment closure; ``Analysis.laws`` names
    the law of each nonlinearity. "exact",
    "gaussian" force one map closure; "population" is delegated to :mod:`symmft.theory.population`.
    ``start`` {key: value} (every diagonal key, e.g. ``M_c, M_h, Q_c, Q_h``; numbers or arrays) starts Newton
    there instead of after plain iterations from the unit state: a warm start from a nearby point's fixed point,
    for searches that ask for one point after another (numpy/cupy backends).
    """
    h = params_mod.resolve(cell, hyperparameters)
    if closure == "population":
        return analyze_population(cell, h)
    grid = any(np.ndim(v) for v in h.values())
    identical = bool(np.all(to_numpy(h["c_x"]) == 1.0))
    mf = derive(cell, map_closure(closure, grid, backend, identical), params_mod.chrono_maps(cell, h))
    if backend == "mpmath":
        if not 5 <= dps <= MAX_DPS:
            raise HyperparameterError(f"dps = {dps}: the mpmath backend takes 5 to {MAX_DPS} digits (30 is the "
                                      "reference; the cost grows like dps^2)")
        if any(np.ndim(v) for v in h.values()):
            raise HyperparameterError("the mpmath backend evaluates one point: pass scalar hyperparameters")
        # Newton at 30 digits from the float64 solution: one or two steps reach 1e-25, and the residual that
        # decides convergence is computed by mpmath alone, so the seed cannot bias the reference.
        seed = _analyze_array(compile_map(mf, "numpy"), h, np, max_iterations)
        return _analyze_mp(compile_map(mf, "mpmath", dps=dps), h, dps, max_iterations, seed)
    seed = None
    if mf.closure == "exact" and two_sequence_conditional(cell):
        # the exact two-sequence law costs a 2k+2-level quadrature per call: start its cross solve at the moment
        # closure's c* (~1e-3 away), so that Newton needs no plain steps
        seed = _analyze_array(compile_map(derive(cell, "gaussian", mf.chrono), backend), h, get_xp(backend),
                              max_iterations, start=start)
    return _analyze_array(compile_map(mf, backend), h, get_xp(backend), max_iterations, seed, start)


# ---------------------------------------------------------------- vectorized (numpy / cupy)


def _cross_limit(name: str, d, names_d: list[str], xp):
    """|C_s_t| <= sqrt(Q_s Q_t): cross moments keep every correlation in [-1, 1]."""
    states = name.split("_", 1)[1]
    if f"Q_{states}" in names_d:  # C_s: bounded by Q_s
        return d[names_d.index(f"Q_{states}")]
    s, t = next((s, t) for s in _states(names_d) for t in _states(names_d) if f"{s}_{t}" == states)
    return xp.sqrt(xp.abs(d[names_d.index(f"Q_{s}")] * d[names_d.index(f"Q_{t}")]))


def _mean_product(name: str, d, names_d: list[str]):
    """M_s M_t: the cross moment of two independent copies."""
    states = name.split("_", 1)[1]
    pair = next((s, t) for s in _states(names_d) for t in _states(names_d) if states in (s, f"{s}_{t}") and (states != s or s == t))
    return d[names_d.index(f"M_{pair[0]}")] * d[names_d.index(f"M_{pair[1]}")]


def _states(names_d: list[str]) -> list[str]:
    return [n[2:] for n in names_d if n.startswith("M_")]


def _analyze_array(cm: CompiledMap, h: dict, xp, max_iterations: int, seed: Analysis | None = None,
                   start: dict | None = None) -> Analysis:
    """The analysis at every point of ``h``; ``seed`` (an analysis of the same points) starts the cross solve at
    its c* wherever that one converged; ``start`` (diagonal key -> value) starts the diagonal Newton there."""
    mf = cm.map
    shape = np.broadcast_shapes(*(np.shape(v) for v in h.values()))
    flat = (int(np.prod(shape)),)  # points are solved as one flat batch, reshaped at the end
    hx = {k: xp.broadcast_to(xp.asarray(v, dtype=float), shape).reshape(flat) for k, v in h.items()}
    at = lambda idx: {k: v[idx] for k, v in hx.items()}  # the hyperparameters of points idx
    names_d = [s.name for s in mf.diagonal]
    if start is None:
        x0 = stack([1.0 if n.startswith("Q") else 0.0 for n in names_d], flat, xp)
    else:
        missing = [n for n in names_d if n not in start]
        if missing:
            raise HyperparameterError(f"start: a value for every diagonal key is needed, missing {', '.join(missing)}")
        x0 = stack([start[n] for n in names_d], flat, xp)
    q_index = [i for i, n in enumerate(names_d) if n.startswith("Q")]
    valid_d = lambda x, idx: xp.all(x[q_index] >= 0, axis=0)
    d, conv_d, j_d = newton(lambda x, idx: cm.diagonal(x, at(idx)), lambda x, idx: cm.diagonal_jacobian(x, at(idx)),
                             x0, xp, max_iterations, valid_d, plain_steps=10 if start is None else 0,
                             polish=start is not None)
    dt = tuple(d)
    lam_d = leading_eigenvalue(j_d, xp)  # Newton's last Jacobian is the one at the fixed point

    # cross map: C = Q (diagonal analogue of each cross key) is exact when c_x = 1
    analogue = [names_d.index("Q" + s.name[1:]) for s in mf.cross]
    c_equal = d[analogue]
    limit = xp.stack([_cross_limit(k.name, d, names_d, xp) for k in mf.cross])  # Cauchy-Schwarz
    identical = hx["c_x"] == 1.0
    lam_equal = leading_eigenvalue(_jacobian_at_equal(cm, dt, c_equal, hx, identical, flat, xp), xp)
    # solved only where the diagonal converged: elsewhere the status is NOT_CONVERGED and c* is not reported
    need_solve = ~(identical & (xp.abs(lam_equal) < 1)) & conv_d
    c = c_equal
    conv_c = xp.ones(flat, dtype=bool)
    if bool(xp.any(need_solve)):
        # identical inputs with c = 1 unstable (chaos): start from independent copies, C = M_s M_t, which lies
        # on the attracting side; otherwise from the input correlation. Only these points are solved.
        solve = xp.nonzero(need_solve)[0]
        d_s = tuple(v[solve] for v in d)
        independent = xp.stack([_mean_product(k.name, d, names_d) for k in mf.cross])
        c0 = xp.where(identical, independent, c_equal * hx["c_x"])
        if seed is not None:
            seeded = xp.stack([xp.asarray(seed.cross_fixed_point[k.name], dtype=float).reshape(flat) for k in mf.cross])
            c0 = xp.where(xp.isfinite(seeded), seeded, c0)
        c0 = c0[:, solve]
        sub = lambda idx: solve[idx]  # positions within the solved points -> grid points
        c_s, conv_s, j_s = newton(
            lambda y, idx: cm.cross(tuple(v[idx] for v in d_s), y, at(sub(idx))),
            lambda y, idx: cm.cross_jacobian(tuple(v[idx] for v in d_s), y, at(sub(idx))),
            c0, xp, max_iterations,
            lambda y, idx: xp.all(xp.abs(y) <= limit[:, sub(idx)] * (1 + 1e-12), axis=0),
            plain_steps=0 if seed is not None else 10,
        )
        c = c_equal.copy()
        c[:, solve] = c_s
        conv_c = conv_c.copy()
        conv_c[solve] = conv_s
    # lambda at c*: where c* = c_equal it is lam_equal; where solved, Newton's last Jacobian is the one at c*
    lam = lam_equal
    if bool(xp.any(need_solve)):
        lam = lam_equal.copy()
        lam[solve] = leading_eigenvalue(j_s, xp)

    status = _status(conv_d, conv_c, d[q_index], d, lam_d, c, lam, xp)
    ok = status == int(Status.OK)
    ok_d = ok | (status == int(Status.CROSS_NOT_CONVERGED))  # the fixed point itself was found

    def clean(a, where=ok):
        return to_numpy(xp.where(where, a, xp.nan)).reshape(shape)

    fixed = {n: clean(d[i], ok_d) for i, n in enumerate(names_d)}
    cross = {s.name: clean(c[i]) for i, s in enumerate(mf.cross)}
    corr = {s: correlation(cross[f"C_{s}"], fixed[f"Q_{s}"]) for s in mf.cell.states}
    lam_np, lam_d_np = clean(lam), clean(lam_d, ok_d)
    return Analysis(
        cell=mf.cell,
        closure=mf.closure,
        laws=mf.nonlinearity_laws,
        backend=cm.backend,
        hyperparameters=h,
        fixed_point=fixed,
        cross_fixed_point=cross,
        correlation=corr,
        lambda_=lam_np,
        xi=time_scale(lam_np),
        diagonal_lambda=lam_d_np,
        status=to_numpy(status).astype(int).reshape(shape),
        extras={"chi_1": clean(lam_equal, ok_d)},
    )


def _jacobian_at_equal(cm: CompiledMap, d: tuple, c, h: dict, identical, flat: tuple, xp):
    """The cross map's Jacobian at C = Q, (N, k, k). Where the inputs are identical too (c_x = 1) the two copies
    coincide, and a map holding a two-sequence conditional law evaluates it as one sequence's
    (``cross_jacobian_identical``: k + 1 nested levels instead of 2k + 2; equal up to rounding)."""
    if not cm.has_identical or not bool(xp.any(identical)):
        return matrix(cm.cross_jacobian(d, c, h)[1], flat, xp)
    if bool(xp.all(identical)):
        return matrix(cm.cross_jacobian_identical(d, h)[1], flat, xp)
    k = len(cm.map.cross)
    out = xp.empty((*flat, k, k))
    for where, full in ((xp.nonzero(identical)[0], False), (xp.nonzero(~identical)[0], True)):
        d_i, h_i = tuple(v[where] for v in d), {n: v[where] for n, v in h.items()}
        J = cm.cross_jacobian(d_i, c[:, where], h_i)[1] if full else cm.cross_jacobian_identical(d_i, h_i)[1]
        out[where] = matrix(J, where.shape, xp)
    return out


def _status(conv_d, conv_c, q, d, lam_d, c, lam, xp):
    """The Status of every point, later rules overriding earlier ones: a state past DIVERGENCE is DIVERGED
    whatever else failed with it (its map may well be NaN there: the growth is the finding)."""
    finite_d = xp.all(xp.isfinite(d), axis=0) & xp.isfinite(lam_d)
    status = xp.full(conv_d.shape, int(Status.OK))
    status = xp.where(~conv_c, int(Status.CROSS_NOT_CONVERGED), status)
    status = xp.where(~conv_d, int(Status.NOT_CONVERGED), status)
    status = xp.where(conv_d & conv_c & ((xp.abs(lam_d) >= 1) | (xp.abs(lam) > 1)), int(Status.UNSTABLE), status)
    cross_found = (status == int(Status.CROSS_NOT_CONVERGED)) | (xp.all(xp.isfinite(c), axis=0) & xp.isfinite(lam))
    status = xp.where(~(finite_d & (cross_found | ~conv_d)), int(Status.NAN), status)
    return xp.where(xp.any(q > DIVERGENCE, axis=0) | diverged(d, xp), int(Status.DIVERGED), status)


# ---------------------------------------------------------------- mpmath reference (one point)


def _analyze_mp(cm: CompiledMap, h: dict, dps: int, max_iterations: int, seed: Analysis) -> Analysis:
    mf = cm.map
    with mpmath.workdps(dps):
        hm = {k: mpmath.mpf(v) for k, v in h.items()}
        tol = mpmath.mpf(10) ** (-dps + 5)
        names_d = [s.name for s in mf.diagonal]
        seeded = int(seed.status) == int(Status.OK)
        if seeded:
            x0 = [mpmath.mpf(float(seed.fixed_point[n])) for n in names_d]
        else:
            x0 = [mpmath.mpf(1) if n.startswith("Q") else mpmath.mpf(0) for n in names_d]
        d, ok_d = newton_mp(
            lambda x: cm.diagonal(tuple(x), hm),
            lambda x: cm.diagonal_jacobian(tuple(x), hm),
            x0,
            max_iterations,
            tol,
            plain_steps=0 if seeded else 10,
        )
        dt = tuple(d)
        lam_d = leading_eigenvalue_mp(cm.diagonal_jacobian(dt, hm)[1])
        analogue = [names_d.index("Q" + s.name[1:]) for s in mf.cross]
        c = mpmath.matrix([d[i] for i in analogue])
        lam = chi_1 = leading_eigenvalue_mp(cm.cross_jacobian(dt, tuple(c), hm)[1])
        ok_c = True
        if not (hm["c_x"] == 1 and abs(lam) < 1):
            if seeded:
                start = [mpmath.mpf(float(seed.cross_fixed_point[k.name])) for k in mf.cross]
            else:
                start = [d[i] * (mpmath.mpf("0.5") if hm["c_x"] == 1 else hm["c_x"]) for i in analogue]
            c, ok_c = newton_mp(
                lambda y: cm.cross(dt, tuple(y), hm),
                lambda y: cm.cross_jacobian(dt, tuple(y), hm),
                start,
                max_iterations,
                tol,
                plain_steps=0 if seeded else 10,
            )
            lam = leading_eigenvalue_mp(cm.cross_jacobian(dt, tuple(c), hm)[1])
        status = Status.OK if ok_d and ok_c else (Status.CROSS_NOT_CONVERGED if ok_d else Status.NOT_CONVERGED)
        if status == Status.OK and abs(lam_d) >= 1:
            status = Status.UNSTABLE
        fixed = {n: d[i] for i, n in enumerate(names_d)}
        cross = {s.name: c[i] for i, s in enumerate(mf.cross)}
        corr = {s: cross[f"C_{s}"] / fixed[f"Q_{s}"] for s in mf.cell.states}
        xi = -1 / mpmath.log(abs(lam)) if abs(lam) < 1 else mpmath.inf
    return Analysis(
        cell=mf.cell,
        closure=mf.closure,
        laws=mf.nonlinearity_laws,
        backend="mpmath",
        hyperparameters=h,
        fixed_point=fixed,
        cross_fixed_point=cross,
        correlation=corr,
        lambda_=lam,
        xi=xi,
        diagonal_lambda=lam_d,
        status=np.asarray(int(status)),
        extras={"chi_1": chi_1},
    )
