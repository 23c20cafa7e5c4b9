"""Dynamics of a compiled mean-field map: fixed points, correlation c*, eigenvalue lambda, time scale xi.

Stage: :class:`~symmft.theory.compile.CompiledMap` -> :class:`Analysis` (per grid point, with a status).

1. Diagonal map (means, second moments): a few plain iterations from a unit state, then Newton steps
   x <- x - (J - I)^-1 (F(x) - x) with the symbolic Jacobian, each step (halved if need be) kept only where it
   lowers the residual or the next Newton correction (else a plain step); converged points leave the batch.
   Newton matters near criticality, where plain iteration converges like E[f^2]^t. Where Newton points against
   the plain step (a locally expanding map far from a saturated memory's fixed point) or J - I is singular,
   a stretched plain step (``_stretched_step``) brackets the fixed point along the slow direction, or follows a
   state that grows without bound past DIVERGENCE (status DIVERGED); see docs/errors.md.
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
from symmft.theory.meanfield import DEFAULT_CLOSURE, derive, map_closure, two_sequence_conditional
from symmft.theory.population import analyze_population

#: Convergence: max |F(x) - x| <= TOLERANCE * (1 + max |x|). 1e-13 sits a few hundred ulps above float64
#: rounding of O(1) moments, so every converged point is accurate to ~1e-12 before quadrature error.
TOLERANCE = 1e-13
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


def _stack(values, shape, xp):
    """Values (numbers or arrays broadcasting to ``shape``) -> array (len(values), *shape)."""
    out = xp.empty((len(values), *shape))
    for i, v in enumerate(values):  # assignment broadcasts: cheaper than broadcast_to + stack at one point
        out[i] = v
    return out


def _matrix(rows, shape, xp):
    """Nested lists J[i][j] -> array (*shape, k, k)."""
    k = len(rows)
    out = xp.empty((*shape, k, k))
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            out[..., i, j] = v
    return out


def _leading_eigenvalue(J, xp):
    """Signed leading eigenvalue (by modulus) of stacked matrices; its modulus where it is complex."""
    J = to_numpy(J)
    finite = np.all(np.isfinite(J), axis=(-2, -1))
    ev = np.linalg.eigvals(np.where(finite[..., None, None], J, 0.0))  # host: tiny k x k, CuPy lacks eigvals
    idx = np.argmax(np.abs(ev), axis=-1)
    lead = np.take_along_axis(ev, idx[..., None], axis=-1)[..., 0]
    real = np.abs(lead.imag) <= 1e-12 * np.maximum(1, np.abs(lead))
    return xp.asarray(np.where(finite, np.where(real, lead.real, np.abs(lead)), np.nan))


def _newton(F, FJ, x, xp, max_iterations, valid, plain_steps=10, polish=False):
    """Solve x = F(x) at N points; x is (k, N). F(x, idx) and FJ(x, idx) -> (F(x), Jacobian) evaluate the points
    ``idx`` only; valid(x, idx) -> mask of points inside the domain (second moments >= 0, |correlation| <= 1).

    Newton steps are halved up to 5 times until they stay valid and either lower the residual or pass the natural
    monotonicity test; a point where none does takes a plain step. Converged (and non-finite) points leave the
    active set, so a slow point costs only its own evaluations, not its batch's. Returns (x, converged mask,
    Jacobian of F at x, (N, k, k)): the last evaluation at every point, so the caller need not repeat it.

    ``polish``: converged points take one more Newton step (kept where it stays converged). The stopping rule
    leaves an error up to TOLERANCE (1 + |x|) / (1 - lambda) in x, which depends on where Newton started: 1e-7
    relative in a small second moment next to a slow memory (GRU, Q_h ~ 1e-3). From a cold start that error
    varies smoothly between neighbouring hyperparameters; from warm starts it does not, and finite differences
    (a search's gradients, step 1e-6) would read it as slope. One more step, quadratically convergent, takes x to
    rounding level."""
    everything = xp.arange(x.shape[1])
    with np.errstate(all="ignore"):
        for _ in range(plain_steps):
            x = _stack(F(x, everything), (x.shape[1],), xp)
        k, n = x.shape
        eye = xp.eye(k)
        # F and its Jacobian where known at the current x: an accepted trial step was evaluated with FJ (one call
        # gives both, on the same nodes), so the next iteration needs no second evaluation at the same point
        f_known, j_known, known = xp.empty((k, n)), xp.empty((n, k, k)), xp.zeros(n, dtype=bool)
        active = everything
        for _ in range(max_iterations):
            if active.size == 0:
                break
            need = active[~known[active]]
            if need.size:
                f_new, j_new = FJ(x[:, need], need)
                f_known[:, need], j_known[need], known[need] = _stack(f_new, need.shape, xp), _matrix(j_new, need.shape, xp), True
            xa, fx = x[:, active], f_known[:, active]
            r = fx - xa
            res = _residual(r, xa, xp)
            keep = ~(res <= TOLERANCE) & xp.isfinite(res) & ~_diverged(xa, xp)
            if not bool(xp.all(keep)):
                active, xa, fx, r, res = active[keep], xa[:, keep], fx[:, keep], r[:, keep], res[keep]
                if active.size == 0:
                    break
            A = j_known[active] - eye
            A = xp.where(xp.isfinite(A), A, 0.0)
            try:
                dx = _correction(A, r, xp)
                newton = True
            except np.linalg.LinAlgError:  # a singular point somewhere: plain steps everywhere this round
                dx, newton = r, False
            size = _residual(dx, xa, xp)
            step = fx.copy()  # fallback: the plain step (F and J unknown there)
            known[active] = False
            # Newton where its correction goes the way the iteration goes; where it points against it (the map
            # expands locally: its linearization's fixed point is a repeller behind the iterate) or J - I is
            # singular, the stretched plain step instead (see _stretched_step)
            forward = xp.sum(dx * r, axis=0) > 0 if newton else xp.zeros(active.shape, dtype=bool)
            pending = xp.nonzero(forward)[0]  # positions in ``active`` without an accepted step yet
            stretch = xp.nonzero(~forward)[0]
            for halving in range(6 if pending.size else 0):
                damping = 0.5**halving
                trial = xa[:, pending] + dx[:, pending] * damping
                f_trial, j_trial = FJ(trial, active[pending])
                f_trial = _stack(f_trial, pending.shape, xp)
                r_trial = f_trial - trial
                better = _residual(r_trial, trial, xp) < res[pending]
                if newton:
                    # natural monotonicity (Deuflhard): the next Newton correction, with the same matrix, shrinks.
                    # Near a marginally stable fixed point (an eigenvalue of J near 1) a good step can raise the
                    # residual of the fast directions while removing most of the slow one's error; measured in x,
                    # by the correction, it still shrinks.
                    better |= _residual(_correction(A[pending], r_trial, xp), trial, xp) <= (1 - damping / 2) * size[pending]
                ok = valid(trial, active[pending]) & xp.all(xp.isfinite(trial), axis=0) & better
                done, points = pending[ok], active[pending[ok]]
                step[:, done] = trial[:, ok]
                f_known[:, points], j_known[points], known[points] = f_trial[:, ok], _matrix(j_trial, pending.shape, xp)[ok], True
                pending = pending[~ok]
                if pending.size == 0:
                    break
            stuck = xp.concatenate([stretch, pending])
            if stuck.size:
                step[:, stuck] = _stretched_step(F, xa[:, stuck], fx[:, stuck], r[:, stuck], active[stuck], valid, xp)
            x[:, active] = step
        unknown = everything[~known]
        if unknown.size:
            f_new, j_new = FJ(x[:, unknown], unknown)
            f_known[:, unknown], j_known[unknown] = _stack(f_new, unknown.shape, xp), _matrix(j_new, unknown.shape, xp)
        res = _residual(f_known - x, x, xp)
        if polish:
            res = _polish(FJ, x, f_known, j_known, res, valid, xp)
    return x, res <= TOLERANCE * 10, j_known


def _polish(FJ, x, f_known, j_known, res, valid, xp):
    """One more Newton step at the converged points (see _newton's ``polish``), updating x, f_known, j_known in
    place where it stays converged; returns the residuals."""
    p = xp.nonzero(res <= TOLERANCE * 10)[0]
    if p.size == 0:
        return res
    try:
        trial = x[:, p] + _correction(j_known[p] - xp.eye(x.shape[0]), f_known[:, p] - x[:, p], xp)
    except np.linalg.LinAlgError:
        return res
    f_new, j_new = FJ(trial, p)
    f_new, j_new = _stack(f_new, p.shape, xp), _matrix(j_new, p.shape, xp)
    ok = valid(trial, p) & xp.all(xp.isfinite(trial), axis=0) & (_residual(f_new - trial, trial, xp) <= TOLERANCE * 10)
    kept = p[ok]
    x[:, kept], f_known[:, kept], j_known[kept] = trial[:, ok], f_new[:, ok], j_new[ok]
    return _residual(f_known - x, x, xp)


def _diverged(x, xp):
    """Points whose state has passed :data:`DIVERGENCE` (a second moment, or a mean, beyond any fixed point)."""
    return xp.max(xp.abs(x), axis=0) > DIVERGENCE


def _stretched_step(F, x, fx, r, idx, valid, xp):
    """The plain step fx = x + r, with its slow components stretched: fx + s d for the largest s = 1, 2, 4, ...
    whose residual still points along d (and stays valid); fx itself where even s = 1 overshoots.

    d holds the components of r that keep moving the same way (the next plain step's residual is > r/4 in them,
    and they are not rounding noise); the fast components, relaxed by the plain step, are not stretched, since
    stretching them would overshoot (a second moment below 0). Where the map contracts slowly (rate lambda
    near 1, e.g. an LSTM forget gate near 1, mu_f >= 9) the residual at x + s d is about (1 - s (1 - lambda)) d:
    the stretch stops within a factor 2 of the Newton step s = 1/(1 - lambda) after log2 of it evaluations,
    where plain iteration needs ~1/(1 - lambda) steps. Far from the fixed point the map can even be locally
    expanding (Newton then points away from the fixed point) while the state still climbs towards it; the stretch
    brackets the fixed point all the same. Where the residual never turns (the state grows without bound: a
    forget gate exactly 1, a linear cell with nu2 = 1) the stretch runs until the state passes DIVERGENCE, so
    the point is reported DIVERGED instead of exhausting the iteration budget."""
    r_next = _stack(F(fx, idx), (x.shape[1],), xp) - fx
    slow = (r_next * r > r * r / 4) & (xp.abs(r) > 1e-6 * xp.max(xp.abs(r), axis=0))
    d = xp.where(slow, r, 0.0)
    best = fx.copy()
    growing = xp.nonzero(xp.any(slow, axis=0))[0]  # positions (within x) still stretching
    s = 1.0
    while growing.size and s <= 2.0**64:
        trial = fx[:, growing] + s * d[:, growing]
        along = xp.sum((_stack(F(trial, idx[growing]), (growing.size,), xp) - trial) * d[:, growing], axis=0) > 0
        ok = along & valid(trial, idx[growing]) & xp.all(xp.isfinite(trial), axis=0)
        best[:, growing[ok]] = trial[:, ok]
        growing = growing[ok & ~_diverged(trial, xp)]
        s *= 2
    return best


def _correction(A, r, xp):
    """The Newton correction -A^-1 r at every point: A is (N, k, k), r is (k, N) (non-finite entries as 0)."""
    rr = xp.moveaxis(xp.where(xp.isfinite(r), r, 0.0), 0, -1)[..., None]
    return xp.moveaxis(xp.linalg.solve(A, -rr)[..., 0], -1, 0)


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


def _residual(r, x, xp):
    return xp.max(xp.abs(r), axis=0) / (1 + xp.max(xp.abs(x), axis=0))


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
        x0 = _stack([1.0 if n.startswith("Q") else 0.0 for n in names_d], flat, xp)
    else:
        missing = [n for n in names_d if n not in start]
        if missing:
            raise HyperparameterError(f"start: a value for every diagonal key is needed, missing {', '.join(missing)}")
        x0 = _stack([start[n] for n in names_d], flat, xp)
    q_index = [i for i, n in enumerate(names_d) if n.startswith("Q")]
    valid_d = lambda x, idx: xp.all(x[q_index] >= 0, axis=0)
    d, conv_d, j_d = _newton(lambda x, idx: cm.diagonal(x, at(idx)), lambda x, idx: cm.diagonal_jacobian(x, at(idx)),
                             x0, xp, max_iterations, valid_d, plain_steps=10 if start is None else 0,
                             polish=start is not None)
    dt = tuple(d)
    lam_d = _leading_eigenvalue(j_d, xp)  # Newton's last Jacobian is the one at the fixed point

    # cross map: C = Q (diagonal analogue of each cross key) is exact when c_x = 1
    analogue = [names_d.index("Q" + s.name[1:]) for s in mf.cross]
    c_equal = d[analogue]
    limit = xp.stack([_cross_limit(k.name, d, names_d, xp) for k in mf.cross])  # Cauchy-Schwarz
    identical = hx["c_x"] == 1.0
    lam_equal = _leading_eigenvalue(_jacobian_at_equal(cm, dt, c_equal, hx, identical, flat, xp), xp)
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
        c_s, conv_s, j_s = _newton(
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
        lam[solve] = _leading_eigenvalue(j_s, xp)

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
        return _matrix(cm.cross_jacobian(d, c, h)[1], flat, xp)
    if bool(xp.all(identical)):
        return _matrix(cm.cross_jacobian_identical(d, h)[1], flat, xp)
    k = len(cm.map.cross)
    out = xp.empty((*flat, k, k))
    for where, full in ((xp.nonzero(identical)[0], False), (xp.nonzero(~identical)[0], True)):
        d_i, h_i = tuple(v[where] for v in d), {n: v[where] for n, v in h.items()}
        J = cm.cross_jacobian(d_i, c[:, where], h_i)[1] if full else cm.cross_jacobian_identical(d_i, h_i)[1]
        out[where] = _matrix(J, where.shape, xp)
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
    return xp.where(xp.any(q > DIVERGENCE, axis=0) | _diverged(d, xp), int(Status.DIVERGED), status)


# ---------------------------------------------------------------- mpmath reference (one point)


def _newton_mp(F, Jac, x, max_iterations, tol, plain_steps=10):
    x = mpmath.matrix(x)
    for _ in range(plain_steps):
        x = mpmath.matrix(F(x))
    for _ in range(max_iterations):
        r = mpmath.matrix(F(x)) - x
        if mpmath.norm(r, mpmath.inf) <= tol * (1 + mpmath.norm(x, mpmath.inf)):
            return x, True
        A = mpmath.matrix(Jac(x)[1]) - mpmath.eye(len(x))
        x = x - mpmath.lu_solve(A, r)
    r = mpmath.matrix(F(x)) - x
    return x, bool(mpmath.norm(r, mpmath.inf) <= tol * 10 * (1 + mpmath.norm(x, mpmath.inf)))


def _leading_mp(J):
    ev = mpmath.eig(mpmath.matrix(J), left=False, right=False)
    if isinstance(ev, tuple):  # mpmath returns (E, ER, EL) for a 1x1 matrix whatever the flags
        ev = ev[0]
    lead = max(ev, key=abs)
    return lead.real if abs(lead.imag) <= mpmath.mpf(10) ** (-mpmath.mp.dps + 5) * max(1, abs(lead)) else abs(lead)


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
        d, ok_d = _newton_mp(
            lambda x: cm.diagonal(tuple(x), hm),
            lambda x: cm.diagonal_jacobian(tuple(x), hm),
            x0,
            max_iterations,
            tol,
            plain_steps=0 if seeded else 10,
        )
        dt = tuple(d)
        lam_d = _leading_mp(cm.diagonal_jacobian(dt, hm)[1])
        analogue = [names_d.index("Q" + s.name[1:]) for s in mf.cross]
        c = mpmath.matrix([d[i] for i in analogue])
        lam = chi_1 = _leading_mp(cm.cross_jacobian(dt, tuple(c), hm)[1])
        ok_c = True
        if not (hm["c_x"] == 1 and abs(lam) < 1):
            if seeded:
                start = [mpmath.mpf(float(seed.cross_fixed_point[k.name])) for k in mf.cross]
            else:
                start = [d[i] * (mpmath.mpf("0.5") if hm["c_x"] == 1 else hm["c_x"]) for i in analogue]
            c, ok_c = _newton_mp(
                lambda y: cm.cross(dt, tuple(y), hm),
                lambda y: cm.cross_jacobian(dt, tuple(y), hm),
                start,
                max_iterations,
                tol,
                plain_steps=0 if seeded else 10,
            )
            lam = _leading_mp(cm.cross_jacobian(dt, tuple(c), hm)[1])
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
