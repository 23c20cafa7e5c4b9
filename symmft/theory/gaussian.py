"""Gaussian expectations E[f(u)] and E[f(u_a) g(u_b)] with controlled error, vectorized over grids (numpy | CuPy),
and an mpmath reference at any precision. Every mean-field map reduces to these integrals: the compiled maps
(:mod:`symmft.theory.compile`) call expect1/expect2 at every grid point; the tests hold them to expect1_mp/expect2_mp
(30 digits, a different rule: :mod:`symmft.theory.gaussian_mp`, whose names are importable from here too) and to
the erf closed forms (docs/theory.md §6).

Rule. u = mean + sigma z, z ~ N(0, 1). The integrands (sigmoid, tanh, erf, polynomials, their derivatives and
products) vary on the scale 1 around u = 0: in z, a kink of width ~1/sigma at z0 = -mean/sigma; elsewhere the
Gaussian needs spacing < 1. Trapezoidal rule, step H, in t with z = z0 + B asinh(K sinh t), K = delta/B,
delta = C/sigma (at most B): spacing delta*H at the kink, growing geometrically to W = B*H. The integrand is
analytic for |Im t| < pi/2 and decays at both ends: error ~exp(-c/H). Binding cases: erf-type integrands (growing
like exp(Im(u)^2), they leave |Im t| < pi/4: ~exp(-pi^2/(2H))) and the Gaussian (~exp(-2 pi^2/W^2)). Weights are
normalized (var = 0 gives f(mean)). Nodes are tabulated once, on the host, for sigma on a ladder of ratio 2^(1/4);
each point reads the window of its row covering z in [-L, L]: the hot path is a gather, one exp and f, in ``xp``.
2-D: u_a = mean + sigma z1, u_b = mean + sigma (rho z1 + s z2), s^2 = 1 - rho^2. The inner integral is the 1-D rule
for g at mean + sigma rho z1, variance var s^2 (g itself when s = 0). The outer integrand has two kinks, f's at z0
and the inner integral's at z0/rho (width ~sqrt(1 + var s^2)/(sigma |rho|)), apart when rho < 0: the outer map
composes two grading maps, step H_OUTER. Points are grouped by node count. Assumed: features near u = 0 at scale
>= 1/3 (erf(3u): 4e-12; sigmoid(u - 3): 5e-12); one far away is not graded (f(u) g(2 mean - u), mean 4: 2e-5).

Measured (f, g in sigmoid, sigmoid^2, tanh, tanh^2, tanh'^2, sigmoid'^2, u tanh u, erf^2; mean in [-4, 4], var in
[1e-6, 100], rho in [-1, 1]; error relative to E|f g|): vs mpmath, 1-D <= 2e-12 (sigmoid/tanh families 1e-14,
erf^2 worst), 2-D <= 2e-12 on 40 stored points and 7e-12 over 8000 points vs a rule of half the step; erf closed
forms 4e-12. Nodes per point, 1-D: 32 (var < 0.05), 44 (var 1), 68 (var 100), 92 (var 1e4); 2-D: outer 36-100 x
inner 32-68 for var <= 100. Time, expect1 of a sigmoid on 262,144 points / expect2 (sigmoid, tanh) on 65,536
points, var uniform in [0, 1] to [0, 100], rho in [-1, 1]: numpy on this 2-core AMD EPYC 0.10-0.14 s / 1.1-2.3 s;
CuPy on an H200 0.006-0.011 s / 0.09-0.27 s (numpy there 0.13-0.21 s / 1.5-3.0 s; the backends agree to 1e-15).
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, NamedTuple

import numpy as np

from symmft import cache
from symmft.backend import array_module
from symmft.errors import HyperparameterError
from symmft.theory.gaussian_mp import expect1_mp, expect2_mp, expect_loguniform_mp

__all__ = ["expect1", "expect1_nodewise", "expect2", "expect_shared", "expect_loguniform", "expect1_mp", "expect2_mp",
           "expect_loguniform_mp"]

# The rule's constants, each with the error it controls (measured against mpmath):
_L = 8.5  # window z in [-L, L]: Gaussian mass outside 2e-17
_H = 0.2  # step in t: erf-type integrands err ~exp(-pi^2/(2H)) (measured 2e-12; 0.18 gives 2e-13 at +10% nodes)
_H_OUTER = 0.16  # expect2's outer step: two kinks; at H the worst case (rho ~ -1) was 3e-10, here 7e-12
_W = 0.65  # spacing far from the kink, in z: the Gaussian's error ~exp(-2 pi^2/W^2) ~ 1e-13
_B = _W / _H  # far-field slope of z(t)
_C = 0.7  # kink half-width delta = C/sigma (tanh's poles sit at pi/(2 sigma)); 1.0 left erf(3u) at 3e-10
_RATIO = 2.0**0.25  # sigma ladder of the tables: rounding sigma up costs < 1 node
_SIGMA0 = _C / _B  # below this sigma no grading is needed (level 0: uniform spacing W)
_MAX_LEVEL = 160  # graded up to sigma = SIGMA0 * 2^40 ~ 2e11; beyond, at that scale only
_ROUND = 1e-12  # relative rounding tolerated in var >= 0 and |cov| <= var (the excess is clipped)
_CHUNK = 1 << 17  # elements per temporary (numpy: best of 2^14..2^20 measured; CuPy takes 128x)


def _inv_map(x, k, xp=np):
    """t with B asinh(k sinh t) = x: inverse of the grading map."""
    return xp.arcsinh(xp.sinh(x / _B) / k)


class _Table(NamedTuple):
    """Rows t = j H (|j| <= half), one per sigma level, flattened: psi = z - z0 and
    omega = H dz/dt exp(-psi^2/2)/sqrt(2 pi). The weight at kink z0 is omega exp(-z0 psi) times exp(-z0^2/2), a
    per-point factor that normalization removes."""

    k: Any  # K per level
    psi: Any
    omega: Any
    n: np.ndarray  # nodes per level: the window covering [-L, L] for any z0 (longest at z0 = 0), a multiple of 4
    half: int
    windows: dict  # (array name, n) -> the strided view of rows of n nodes (``_windows``), made once


@functools.lru_cache(maxsize=None)
def _host_table(n_levels: int) -> _Table:
    k = np.minimum(_C / (_SIGMA0 * _RATIO ** np.arange(n_levels)), _B) / _B
    n = 4 * -(-(np.ceil((_inv_map(_L, k) - _inv_map(-_L, k)) / _H).astype(np.int64) + 2) // 4)
    # windows start at t >= inv(-2L) and span <= 2 inv(L)/H + 6 steps
    half = int(np.ceil(max(_inv_map(2 * _L, k[-1]), 2 * _inv_map(_L, k[-1])) / _H)) + 8
    t = np.arange(-half, half + 1) * _H
    q = k[:, None] * np.sinh(t)
    psi = _B * np.arcsinh(q)
    omega = _H * _B * k[:, None] * np.cosh(t) / np.sqrt(1 + q * q) * np.exp(-0.5 * psi * psi) / math.sqrt(2 * math.pi)
    return _Table(k, psi.ravel(), omega.ravel(), n, half, {})


_device_tables: dict = {}


def _table(xp, top_level: int) -> _Table:
    n_levels = min(_MAX_LEVEL + 1, 16 * (top_level // 16 + 1))
    key = (xp.__name__, n_levels, xp.cuda.Device().id if xp.__name__ == "cupy" else 0)
    if key not in _device_tables:
        tab = _host_table(n_levels)
        _device_tables[key] = tab._replace(k=xp.asarray(tab.k), psi=xp.asarray(tab.psi), omega=xp.asarray(tab.omega),
                                           windows={})
    return _device_tables[key]


def _level(xp, mean, sigma):
    """Smallest ladder level with sigma_level >= sigma; 0 (ungraded) if the kink lies outside the window (where the
    Gaussian is < 1e-16) or sigma is small or not finite."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lev = xp.ceil(xp.log(sigma / _SIGMA0) / math.log(_RATIO) - 1e-9)
        far = ~(xp.abs(mean) < _L * sigma)
    return xp.where(far | ~(lev > 0), 0, xp.minimum(lev, _MAX_LEVEL)).astype(xp.int64)


def _windows(xp, tab: _Table, name: str, n: int):
    """View of the table's array ``name`` whose row i is a[i:i+n]: one gather per point instead of one per node."""
    key = (name, n)
    if key not in tab.windows:
        a = getattr(tab, name)
        tab.windows[key] = xp.lib.stride_tricks.as_strided(a, shape=(a.size - n + 1, n), strides=(a.strides[0],) * 2)
    return tab.windows[key]


def _rule1(xp, mean, sigma, lev, n: int, tab: _Table):
    """Nodes u (P, n) and unnormalized weights w (P, n) of the 1-D rule at P points."""
    with np.errstate(divide="ignore", invalid="ignore"):
        z0 = xp.where(sigma > 0, -mean / sigma, 0.0)
    # NaN input: any valid window; u carries the NaN. (minimum/maximum: np.clip's wrapper costs more at 1 point)
    z0 = xp.minimum(xp.maximum(xp.where(xp.isnan(z0), 0.0, z0), -_L), _L)
    j0 = xp.floor(_inv_map(-_L - z0, tab.k[lev], xp) / _H).astype(xp.int64)
    start = lev * (2 * tab.half + 1) + tab.half + j0
    psi = _windows(xp, tab, "psi", n)[start]
    w = _windows(xp, tab, "omega", n)[start]
    e = xp.multiply(psi, -z0[:, None])  # in place from here: this is expect2's inner loop
    w *= xp.exp(e, out=e)
    u = xp.multiply(psi, sigma[:, None], out=psi)
    u += (mean + sigma * z0)[:, None]
    return u, w


def _wmean(xp, w, v, total=None):
    """Weighted mean along the last axis (v may be a scalar: a constant f); ``total`` = w.sum(axis=1) if known."""
    total = w.sum(axis=1) if total is None else total
    return (xp.einsum("ij,ij->i", w, v) if getattr(v, "ndim", 0) == 2 else v * total) / total


def _batches(xp, key, per_point):
    """(k, indices) over the points grouped by the integer key k, in chunks of about _CHUNK elements."""
    if key.size == 1:  # one point (a search's evaluation): no grouping to do
        yield int(key[0]), slice(None)
        return
    keys = xp.unique(key).tolist()
    for k in keys:
        pts = xp.arange(key.size) if len(keys) == 1 else xp.nonzero(key == k)[0]
        step = max(1, _CHUNK * (128 if xp.__name__ == "cupy" else 1) // per_point(k))
        for a in range(0, pts.size, step):
            yield k, pts[a : a + step]


def _prepare(xp, where: str, mean, var, *cov):
    """Broadcast and flatten; var >= 0 up to rounding (clipped), else HyperparameterError."""
    xp = xp or array_module(mean, var, *cov)
    arrays = [xp.asarray(a, dtype=xp.float64) for a in (mean, var, *cov)]
    if any(a.shape != arrays[0].shape for a in arrays):
        arrays = xp.broadcast_arrays(*arrays)
    mean, var, *cov = (a.ravel() for a in arrays)
    bad = var < -_ROUND * (1 + mean * mean)
    if bool(bad.any()):
        i = int(xp.argmax(bad))
        raise HyperparameterError(
            f"{where}: var must be >= 0; got var = {float(var[i]):.6g} at flat index {i} "
            f"({int(xp.count_nonzero(bad))} points). Check the variance map (Q - M^2) that produced it."
        )
    return xp, arrays[0].shape, mean, xp.maximum(var, 0.0), *cov


def expect1(f: Callable, mean: Any, var: Any, *, xp=None):
    """E[f(u)], u ~ N(mean, var), elementwise over the broadcast shape of ``mean`` and ``var`` (var may be 0: then
    f(mean)). ``f`` maps an xp array to one of the same shape, or to a tuple of them: then a tuple of expectations
    comes back, computed on shared nodes. ``xp`` (numpy or cupy) defaults to the module of the inputs."""
    xp, shape, mean, var = _prepare(xp, "expect1", mean, var)
    out: list | None = None
    single = True
    for p, u, w in _nodes1(xp, mean, var):
        vals = f(u)
        single = not isinstance(vals, tuple)
        vals = (vals,) if single else vals
        out = out or [xp.empty(mean.size) for _ in vals]
        total = w.sum(axis=1)
        for o, v in zip(out, vals):
            o[p] = _wmean(xp, w, v, total)
    res = tuple(o.reshape(shape) for o in (out or [xp.empty(0)]))  # empty input: f is never called
    return res[0] if single else res


def _nodes1(xp, mean, var):
    """(points p, nodes u (P, n), weights w (P, n)) of the 1-D rule, per group of points with one node count."""
    if mean.size == 1 and xp is np:  # one point: see _rule1_point
        yield slice(None), *_rule1_point(float(mean[0]), float(var[0]))
        return
    sigma = xp.sqrt(var)
    lev = _level(xp, mean, sigma)
    tab = _table(xp, int(lev.max()) if lev.size else 0)
    for n, p in _batches(xp, xp.asarray(tab.n)[lev], lambda n: n):
        yield p, *_rule1(xp, mean[p], sigma[p], lev[p], n, tab)


def _rule1_point(mean: float, var: float):
    """:func:`_level` and :func:`_rule1` at one point, the rule's parameters (level, kink, window) in Python floats:
    the same formulas and the same nodes, at a fraction of the cost. A search evaluates one point at a time, and
    there numpy's per-call cost on 1-element arrays (~30 calls, ~1 us each) was most of expect1's time. (math's
    log/sinh/asinh may differ from numpy's in the last bit; that moves a level or window edge only where a
    value lies within an ulp of it, and the rule there is as accurate.) Nodes u (1, n), weights w (1, n)."""
    sigma = math.sqrt(var)
    level = 0
    if sigma > 0 and abs(mean) < _L * sigma:  # else ungraded: small sigma, or the kink outside the window
        x = math.log(sigma / _SIGMA0) / math.log(_RATIO) - 1e-9
        level = _MAX_LEVEL if x > _MAX_LEVEL else math.ceil(x) if x > 0 else 0
    tab = _table(np, level)
    z0 = -mean / sigma if sigma > 0 else 0.0
    z0 = min(max(0.0 if z0 != z0 else z0, -_L), _L)  # NaN input: any valid window; u carries the NaN
    j0 = math.floor(math.asinh(math.sinh((-_L - z0) / _B) / float(tab.k[level])) / _H)
    start = level * (2 * tab.half + 1) + tab.half + j0
    n = int(tab.n[level])
    psi = tab.psi[None, start : start + n]
    w = tab.omega[None, start : start + n] * np.exp(psi * -z0)
    u = psi * sigma
    u += mean + sigma * z0
    return u, w


def expect1_nodewise(f: Callable, mean: Any, var: Any, *, xp=None):
    """E[f(u)] like :func:`expect1`, but calling ``f`` once on all nodes of all points: u has shape
    (nodes,) + the points' broadcast shape.

    For integrands that hold grid-shaped arrays themselves (a conditional expectation nested inside another: its
    parameters depend on the outer variable and on the grid), which cannot be evaluated on a subset of points.
    Such arrays must broadcast against the points' shape (compiled maps broadcast their arguments to one shape
    first); the leading node axis then lets nested levels vectorize too, each level adding one axis. Points
    needing fewer nodes get zero weight on the extra ones. ``f`` returns one array or a tuple of them.
    """
    xp, shape, mean, var = _prepare(xp, "expect1", mean, var)
    sigma = xp.sqrt(var)
    lev = _level(xp, mean, sigma)
    tab = _table(xp, int(lev.max()) if lev.size else 0)
    counts = xp.asarray(tab.n)[lev]
    n_max = int(counts.max()) if counts.size else 1
    u = xp.broadcast_to(mean[:, None], (mean.size, n_max)).copy()
    w = xp.zeros((mean.size, n_max))
    for n in xp.unique(counts).tolist():
        p = xp.nonzero(counts == n)[0]
        u[p, :n], w[p, :n] = _rule1(xp, mean[p], sigma[p], lev[p], n, tab)
    w /= w.sum(axis=1, keepdims=True)
    nodes = (n_max,) + shape
    vals = f(u.T.reshape(nodes))
    vals = vals if isinstance(vals, tuple) else (vals,)
    weights = w.T.reshape(nodes)
    total = [(weights * v).sum(axis=0) for v in vals]
    return total[0] if len(total) == 1 else tuple(total)


#: Gauss-Legendre nodes for the chrono bias L = log U, U ~ U[1, T-1]: the integrand (gate expectations at mean
#: mu + beta L) is analytic in L over [0, log(T-1)], and 48 nodes reach ~1e-14 for T up to 1e6 (checked against
#: mpmath in tests/test_chrono.py).
_LOGUNIFORM_NODES = 48


def expect_loguniform(f: Callable, length: Any, *, xp=None):
    """E[f(L)] for L = log U, U ~ Uniform[1, T - 1] (T = ``length`` >= 3, an array over the grid or a number).

    ``f`` is called once, on every node at once: L has shape (nodes,) + T's shape, and whatever else ``f`` reads
    must broadcast against T's shape (compiled maps give all their arguments one shape). Density of L:
    e^l / (T - 2) on [0, log(T-1)].
    """
    xp = xp or array_module(length)
    T = xp.asarray(length, dtype=xp.float64)
    x, wq = (xp.asarray(a).reshape((-1,) + (1,) * T.ndim) for a in _legendre(_LOGUNIFORM_NODES))
    top = xp.log(T - 1)
    l = 0.5 * (x + 1) * top
    terms = (0.5 * wq) * top * xp.exp(l) / (T - 2) * f(l)
    total = 0.0
    for term in terms:  # node by node, as a sum over nodes in this order has always been taken
        total = total + term
    return total


@functools.lru_cache(maxsize=None)
def _legendre(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [-1, 1]."""
    return np.polynomial.legendre.leggauss(n)


def _outer_map(xp, mean, sigma, rho, sig_in):
    """Outer map z1(t) = zf + B asinh(kf sinh(yg + asinh(kg sinh t))): graded at f's kink zf and, inside, at the
    inner integral's kink zg. Returns its parameters and the t interval covering z1 in [-L, L]."""
    with np.errstate(divide="ignore", invalid="ignore"):
        zf_raw = xp.where(sigma > 0, -mean / sigma, 0.0)
        zf = xp.clip(xp.where(xp.isnan(zf_raw), 0.0, zf_raw), -_L, _L)
        kf = xp.where(xp.abs(zf_raw) < _L, xp.minimum(_C / sigma, _B), _B) / _B
        a = rho * sigma  # the inner mean moves by a per unit z1
        zg_raw = xp.where(a != 0, -mean / a, zf)
        width = _C * xp.sqrt(1 + sig_in * sig_in) / xp.abs(a)
        yg = _inv_map(xp.clip(xp.where(xp.isnan(zg_raw), 0.0, zg_raw), -_L, _L) - zf, kf, xp)
        stretch = _B * kf * xp.cosh(yg) / xp.sqrt(1 + (kf * xp.sinh(yg)) ** 2)  # dz1/dy at the inner kink
        kg = xp.where(xp.abs(zg_raw) < _L, xp.clip(width / stretch, 1e-12, 1.0), 1.0)
    kg = xp.where(xp.isnan(kg), 1.0, kg)
    ta = xp.arcsinh(xp.sinh(_inv_map(-_L - zf, kf, xp) - yg) / kg)
    tb = xp.arcsinh(xp.sinh(_inv_map(_L - zf, kf, xp) - yg) / kg)
    return zf, kf, yg, kg, ta, tb


def _outer_nodes(xp, zf, kf, yg, kg, ta, tb, n: int):
    """Outer nodes z1 (P, n) and unnormalized weights: trapezoid in t, step (tb - ta)/(n - 1) <= H_OUTER."""
    step = (tb - ta) / (n - 1)
    t = ta[:, None] + step[:, None] * xp.arange(n)
    qg = kg[:, None] * xp.sinh(t)
    y = yg[:, None] + xp.arcsinh(qg)
    qf = kf[:, None] * xp.sinh(y)
    z = zf[:, None] + _B * xp.arcsinh(qf)
    dz = (kg[:, None] * xp.cosh(t) / xp.sqrt(1 + qg * qg)) * (_B * kf[:, None] * xp.cosh(y) / xp.sqrt(1 + qf * qf))
    return z, step[:, None] * dz * xp.exp(-0.5 * z * z)


def _prepare2(xp, where: str, mean, var, cov):
    """As :func:`_prepare`, plus |cov| <= var up to rounding (clipped), else HyperparameterError."""
    xp, shape, mean, var, cov = _prepare(xp, where, mean, var, cov)
    bad = xp.abs(cov) > var * (1 + _ROUND) + _ROUND * (1 + mean * mean)
    if bool(xp.any(bad)):
        i = int(xp.argmax(bad))
        raise HyperparameterError(
            f"{where}: |cov| must be <= var (correlation in [-1, 1]); got cov = {float(cov[i]):.6g}, "
            f"var = {float(var[i]):.6g} at flat index {i} ({int(xp.count_nonzero(bad))} points). "
            "Check the cross-moment map that produced it."
        )
    return xp, shape, mean, var, xp.clip(cov, -var, var)


def _expect2_pairs(xp, fs: Callable, gs: Callable, mean, var, cov) -> list:
    """E[f_k(u_a) g_k(u_b)] for every k on shared nodes (flat, prepared arrays); fs(u) and gs(u) return tuples."""
    sigma = xp.sqrt(var)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = xp.where(var > 0, cov / var, 1.0)
        # var s^2 = (var - cov)(var + cov)/var keeps 1 - rho^2 accurate near rho = +-1
        sig_in = xp.sqrt(xp.where(var > 0, (var - cov) * (var + cov) / var, 0.0))
    zf, kf, yg, kg, ta, tb = _outer_map(xp, mean, sigma, rho, sig_in)
    span = xp.where(xp.isfinite(tb - ta), tb - ta, 0.0)  # non-finite input: any node count; the NaN carries
    n_out = 4 * -(-(xp.ceil(span / _H_OUTER).astype(xp.int64) + 2) // 4)
    lev = _level(xp, xp.zeros_like(mean), sig_in)  # the inner kink moves with z1: always graded
    tab = _table(xp, int(lev.max()) if lev.size else 0)
    n_in = xp.where(sig_in > 0, xp.asarray(tab.n)[lev], 1)
    out: list = []
    for key, p in _batches(xp, n_out * 4096 + n_in, lambda key: (key // 4096) * (key % 4096)):
        no, ni = divmod(key, 4096)
        z1, w1 = _outer_nodes(xp, zf[p], kf[p], yg[p], kg[p], ta[p], tb[p], no)
        m, s = mean[p][:, None], sigma[p][:, None]
        fa = fs(m + s * z1)
        mb = (m + (rho[p][:, None] * s) * z1).ravel()  # inner mean at each outer node
        if ni == 1:  # rho = +-1: u_b is determined by z1
            gb = gs(mb)
        else:
            u2, w2 = _rule1(xp, mb, xp.repeat(sig_in[p], no), xp.repeat(lev[p], no), ni, tab)
            gb = tuple(_wmean(xp, w2, v) for v in gs(u2))
        out = out or [xp.empty(mean.size) for _ in fa]
        for o, a, b in zip(out, fa, gb):
            o[p] = _wmean(xp, w1, a * xp.reshape(b, z1.shape) if getattr(b, "ndim", 0) else a * b)
    return out or [xp.empty(0)]


def expect2(f: Callable, g: Callable, mean: Any, var: Any, cov: Any, *, xp=None):
    """E[f(u_a) g(u_b)], (u_a, u_b) ~ N((mean, mean), [[var, cov], [cov, var]]): one Gaussian seen in two input
    sequences, elementwise over the broadcast shape of the arguments. |cov| <= var: rho = cov/var = 1 gives
    E[f(u) g(u)], rho = -1 gives E[f(u) g(2 mean - u)]. f and g map xp arrays to arrays of the same shape; ``xp``
    as in :func:`expect1`."""
    xp, shape, mean, var, cov = _prepare2(xp, "expect2", mean, var, cov)
    (out,) = _expect2_pairs(xp, lambda x: (f(x),), lambda x: (g(x),), mean, var, cov)
    return out.reshape(shape)


#: Where var - cov <= _IDENTICAL var, u_a = u_b (rho = 1) is taken as exact: E[f(u_a) g(u_b)] = E[f(u) g(u)], a
#: 1-D integral (Price's theorem: the error is (var - cov) E[f'(u) g'(u)] to first order, <= 1e-14 relative).
#: This is every cross-map expectation at c = 1 (identical inputs, chi_1, lambda in the ordered phase).
_IDENTICAL = 1e-14


def expect_shared(
    f: Callable | None, fs: Callable, gs: Callable, mean: Any, var: Any, cov: Any, *, together: Callable | None = None,
    xp=None,
) -> tuple:
    """The expectations of one Gaussian evaluated together: E[f_j(u)] for the functions of ``f`` (a tuple-valued
    function, or None) and E[f_k(u_a) g_k(u_b)] for the tuples ``fs``, ``gs`` (as in :func:`expect2`). Returns the
    tuple of the first, then the second.

    Points with rho = 1 (see ``_IDENTICAL``) take ONE 1-D rule for all of them (the pairs become f_k g_k); the
    others the 1-D rule for ``f`` and the 2-D rule, shared by the pairs, for ``fs``/``gs``. ``together`` (optional)
    computes f's functions and the products f_k g_k in one pass (generated code shares their subexpressions)."""
    xp, shape, mean, var, cov = _prepare2(xp, "expect_shared", mean, var, cov)
    first = (lambda x: f(x)) if f is not None else (lambda x: ())

    if together is None:
        def together(x):
            return (*first(x), *(a * b for a, b in zip(fs(x), gs(x))))

    same = var - cov <= _IDENTICAL * var
    if mean.size == 0:
        return tuple(xp.empty(0).reshape(shape) for _ in (*first(xp.zeros(1)), *fs(xp.zeros(1))))
    if bool(xp.all(same)):
        values = expect1(together, mean, var, xp=xp)
        return tuple(v.reshape(shape) for v in values)
    n_first = len(first(xp.zeros(1)))
    n_pairs = len(fs(xp.zeros(1)))
    out = [xp.empty(mean.size) for _ in range(n_first + n_pairs)]
    p = xp.nonzero(same)[0]
    if p.size:
        for o, v in zip(out, expect1(together, mean[p], var[p], xp=xp)):
            o[p] = v
    q = xp.nonzero(~same)[0]
    if n_first:
        for o, v in zip(out, expect1(first, mean[q], var[q], xp=xp)):
            o[q] = v
    for o, v in zip(out[n_first:], _expect2_pairs(xp, fs, gs, mean[q], var[q], cov[q])):
        o[q] = v
    return tuple(o.reshape(shape) for o in out)


cache.register("quadrature tables", _host_table.cache_clear)
