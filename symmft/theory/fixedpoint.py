"""Solving x = F(x) at a batch of points: damped Newton steps with the symbolic Jacobian, the stretched plain
step where Newton does not apply, and the one-point mpmath reference.

Stage: used by :mod:`symmft.theory.dynamics` for the diagonal and cross maps' fixed points. :func:`newton` works
on a flat batch of points (numpy or CuPy), each leaving the batch once converged; :func:`newton_mp` is the plain
Newton iteration at any precision. :func:`leading_eigenvalue` reads lambda off the last Jacobian.
"""

from __future__ import annotations

import mpmath
import numpy as np

from symmft.backend import to_numpy
from symmft.theory.analysis import DIVERGENCE

#: Convergence: max |F(x) - x| <= TOLERANCE * (1 + max |x|). 1e-13 sits a few hundred ulps above float64
#: rounding of O(1) moments, so every converged point is accurate to ~1e-12 before quadrature error.
TOLERANCE = 1e-13


def stack(values, shape, xp):
    """Values (numbers or arrays broadcasting to ``shape``) -> array (len(values), *shape)."""
    out = xp.empty((len(values), *shape))
    for i, v in enumerate(values):  # assignment broadcasts: cheaper than broadcast_to + stack at one point
        out[i] = v
    return out


def matrix(rows, shape, xp):
    """Nested lists J[i][j] -> array (*shape, k, k)."""
    k = len(rows)
    out = xp.empty((*shape, k, k))
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            out[..., i, j] = v
    return out


def leading_eigenvalue(J, xp):
    """Signed leading eigenvalue (by modulus) of stacked matrices; its modulus where it is complex."""
    J = to_numpy(J)
    finite = np.all(np.isfinite(J), axis=(-2, -1))
    ev = np.linalg.eigvals(np.where(finite[..., None, None], J, 0.0))  # host: tiny k x k, CuPy lacks eigvals
    idx = np.argmax(np.abs(ev), axis=-1)
    lead = np.take_along_axis(ev, idx[..., None], axis=-1)[..., 0]
    real = np.abs(lead.imag) <= 1e-12 * np.maximum(1, np.abs(lead))
    return xp.asarray(np.where(finite, np.where(real, lead.real, np.abs(lead)), np.nan))


def newton(F, FJ, x, xp, max_iterations, valid, plain_steps=10, polish=False):
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
            x = stack(F(x, everything), (x.shape[1],), xp)
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
                f_known[:, need], j_known[need], known[need] = stack(f_new, need.shape, xp), matrix(j_new, need.shape, xp), True
            xa, fx = x[:, active], f_known[:, active]
            r = fx - xa
            res = residual(r, xa, xp)
            keep = ~(res <= TOLERANCE) & xp.isfinite(res) & ~diverged(xa, xp)
            if not bool(xp.all(keep)):
                active, xa, fx, r, res = active[keep], xa[:, keep], fx[:, keep], r[:, keep], res[keep]
                if active.size == 0:
                    break
            A = j_known[active] - eye
            A = xp.where(xp.isfinite(A), A, 0.0)
            try:
                dx = _correction(A, r, xp)
                by_newton = True
            except np.linalg.LinAlgError:  # a singular point somewhere: plain steps everywhere this round
                dx, by_newton = r, False
            size = residual(dx, xa, xp)
            step = fx.copy()  # fallback: the plain step (F and J unknown there)
            known[active] = False
            # Newton where its correction goes the way the iteration goes; where it points against it (the map
            # expands locally: its linearization's fixed point is a repeller behind the iterate) or J - I is
            # singular, the stretched plain step instead (see _stretched_step)
            forward = xp.sum(dx * r, axis=0) > 0 if by_newton else xp.zeros(active.shape, dtype=bool)
            pending = xp.nonzero(forward)[0]  # positions in ``active`` without an accepted step yet
            stretch = xp.nonzero(~forward)[0]
            for halving in range(6 if pending.size else 0):
                damping = 0.5**halving
                trial = xa[:, pending] + dx[:, pending] * damping
                f_trial, j_trial = FJ(trial, active[pending])
                f_trial = stack(f_trial, pending.shape, xp)
                r_trial = f_trial - trial
                better = residual(r_trial, trial, xp) < res[pending]
                if by_newton:
                    # natural monotonicity (Deuflhard): the next Newton correction, with the same matrix, shrinks.
                    # Near a marginally stable fixed point (an eigenvalue of J near 1) a good step can raise the
                    # residual of the fast directions while removing most of the slow one's error; measured in x,
                    # by the correction, it still shrinks.
                    better |= residual(_correction(A[pending], r_trial, xp), trial, xp) <= (1 - damping / 2) * size[pending]
                ok = valid(trial, active[pending]) & xp.all(xp.isfinite(trial), axis=0) & better
                done, points = pending[ok], active[pending[ok]]
                step[:, done] = trial[:, ok]
                f_known[:, points], j_known[points], known[points] = f_trial[:, ok], matrix(j_trial, pending.shape, xp)[ok], True
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
            f_known[:, unknown], j_known[unknown] = stack(f_new, unknown.shape, xp), matrix(j_new, unknown.shape, xp)
        res = residual(f_known - x, x, xp)
        if polish:
            res = _polish(FJ, x, f_known, j_known, res, valid, xp)
    return x, res <= TOLERANCE * 10, j_known


def _polish(FJ, x, f_known, j_known, res, valid, xp):
    """One more Newton step at the converged points (see newton's ``polish``), updating x, f_known, j_known in
    place where it stays converged; returns the residuals."""
    p = xp.nonzero(res <= TOLERANCE * 10)[0]
    if p.size == 0:
        return res
    try:
        trial = x[:, p] + _correction(j_known[p] - xp.eye(x.shape[0]), f_known[:, p] - x[:, p], xp)
    except np.linalg.LinAlgError:
        return res
    f_new, j_new = FJ(trial, p)
    f_new, j_new = stack(f_new, p.shape, xp), matrix(j_new, p.shape, xp)
    ok = valid(trial, p) & xp.all(xp.isfinite(trial), axis=0) & (residual(f_new - trial, trial, xp) <= TOLERANCE * 10)
    kept = p[ok]
    x[:, kept], f_known[:, kept], j_known[kept] = trial[:, ok], f_new[:, ok], j_new[ok]
    return residual(f_known - x, x, xp)


def diverged(x, xp):
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
    r_next = stack(F(fx, idx), (x.shape[1],), xp) - fx
    slow = (r_next * r > r * r / 4) & (xp.abs(r) > 1e-6 * xp.max(xp.abs(r), axis=0))
    d = xp.where(slow, r, 0.0)
    best = fx.copy()
    growing = xp.nonzero(xp.any(slow, axis=0))[0]  # positions (within x) still stretching
    s = 1.0
    while growing.size and s <= 2.0**64:
        trial = fx[:, growing] + s * d[:, growing]
        along = xp.sum((stack(F(trial, idx[growing]), (growing.size,), xp) - trial) * d[:, growing], axis=0) > 0
        ok = along & valid(trial, idx[growing]) & xp.all(xp.isfinite(trial), axis=0)
        best[:, growing[ok]] = trial[:, ok]
        growing = growing[ok & ~diverged(trial, xp)]
        s *= 2
    return best


def _correction(A, r, xp):
    """The Newton correction -A^-1 r at every point: A is (N, k, k), r is (k, N) (non-finite entries as 0)."""
    rr = xp.moveaxis(xp.where(xp.isfinite(r), r, 0.0), 0, -1)[..., None]
    return xp.moveaxis(xp.linalg.solve(A, -rr)[..., 0], -1, 0)


def residual(r, x, xp):
    """max |r| / (1 + max |x|) at every point (r, x are (k, N)): the quantity TOLERANCE bounds."""
    return xp.max(xp.abs(r), axis=0) / (1 + xp.max(xp.abs(x), axis=0))


# ---------------------------------------------------------------- mpmath reference (one point)


def newton_mp(F, Jac, x, max_iterations, tol, plain_steps=10):
    """Solve x = F(x) at one point in mpmath: ``plain_steps`` plain iterations, then undamped Newton steps with
    ``Jac(x)[1]`` (the Jacobian of a compiled map's ``*_jacobian``) until max |F(x) - x| <= tol (1 + max |x|).
    Returns (x, converged)."""
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


def leading_eigenvalue_mp(J):
    """The leading eigenvalue (by modulus) of J in mpmath: signed where real, its modulus where complex."""
    ev = mpmath.eig(mpmath.matrix(J), left=False, right=False)
    if isinstance(ev, tuple):  # mpmath returns (E, ER, EL) for a 1x1 matrix whatever the flags
        ev = ev[0]
    lead = max(ev, key=abs)
    return lead.real if abs(lead.imag) <= mpmath.mpf(10) ** (-mpmath.mp.dps + 5) * max(1, abs(lead)) else abs(lead)
