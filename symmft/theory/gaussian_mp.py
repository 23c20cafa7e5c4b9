"""The mpmath reference of :mod:`symmft.theory.gaussian`: the same expectations at any precision, by a
different rule, so that the tests (and the mpmath backend, :mod:`symmft.theory.compile`) hold the fast rule to an
independent one.

Stage: beside :mod:`symmft.theory.gaussian`; called by the mpmath namespace of compiled maps and by the tests.
expect1_mp is mpmath.quad on panels graded around the integrand's kink; expect2_mp is a fixed panel rule over the
outer variable times a fixed inner rule (Gauss-Hermite for a narrow inner Gaussian); the tests hold both to
mpmath.quad and to the erf closed forms (docs/theory.md §6).
"""

from __future__ import annotations

import functools
from typing import Callable

import mpmath

from symmft import cache
from symmft.errors import HyperparameterError


def expect_loguniform_mp(f: Callable, length, *, dps: int = 30):
    """mpmath reference of :func:`symmft.theory.gaussian.expect_loguniform`."""
    with mpmath.workdps(dps + 5):
        T = mpmath.mpf(length)
        value = mpmath.quad(lambda l: f(l) * mpmath.exp(l), [0, mpmath.log(T - 1)]) / (T - 2)
    return +value


# ---- mpmath reference: a different rule, at any precision: Gauss-Legendre panels in z, graded geometrically around
# each kink (each panel no wider than its distance to the kink: error ~5.8^-(2 nodes)), Gauss-Hermite for a narrow
# inner Gaussian, and mpmath.quad on the same panels for expect1_mp.
_MP_L = 12  # Gaussian mass outside [-12, 12]: 4e-33
_MP_BULK = 3.0  # widest panel
_MP_NODES = 20  # Gauss-Legendre nodes per panel: measured 1e-26 relative (24: 1e-31; 16: 1e-21)
_MP_GH_SIGMA, _MP_GH_NODES = 0.25, 48  # below this sigma, Gauss-Hermite (g analytic for |Im z| < 6): 1e-28


def _mp_panels(kinks) -> list:
    """Breakpoints in [-L, L]: center +- width 2^k/2 for each kink (center, width) until the panels reach 2x the
    bulk width; then panels of <= _MP_BULK."""
    pts = {mpmath.mpf(-_MP_L), mpmath.mpf(_MP_L)}
    for center, width in (k for k in kinks if abs(k[0]) < _MP_L):
        pts.add(center)
        d = width / 2
        while d < 2 * _MP_BULK:
            pts.update(p for p in (center - d, center + d) if abs(p) < _MP_L)
            d *= 2
    pts = sorted(pts)
    out = [pts[0]]
    for a, b in zip(pts[:-1], pts[1:]):
        parts = int(mpmath.ceil((b - a) / _MP_BULK))
        out.extend(a + (b - a) * i / parts for i in range(1, parts + 1))
    return out


@functools.lru_cache(maxsize=16)
def _mp_nodes(kind: str, n: int, prec: int) -> list:
    return list(zip(*mpmath.mp.gauss_quadrature(n, kind)))


cache.register("mpmath quadrature nodes", _mp_nodes.cache_clear)


def _mp_rule(kinks) -> list:
    """(z, weight) of the fixed panel rule for the standard normal density."""
    out, c, pts = [], 1 / mpmath.sqrt(2 * mpmath.pi), _mp_panels(kinks)
    nodes = _mp_nodes("legendre", _MP_NODES, mpmath.mp.prec)
    for a, b in zip(pts[:-1], pts[1:]):
        zs = (((a + b) / 2 + (b - a) / 2 * x, (b - a) / 2 * w) for x, w in nodes)
        out.extend((z, w * c * mpmath.exp(-z * z / 2)) for z, w in zs)
    return out


def _mp_expect1(f: Callable, mean, var, adaptive: bool):
    """E[f(u)] by mpmath.quad on the panels (Gauss-Legendre, degree doubled until two agree to working precision) or,
    nested inside expect2_mp, by the fixed rule."""
    if var == 0:
        return f(mean)
    sigma = mpmath.sqrt(var)
    if adaptive:
        h = lambda z: f(mean + sigma * z) * mpmath.exp(-z * z / 2)  # noqa: E731
        return mpmath.quad(h, _mp_panels([(-mean / sigma, 1 / sigma)]), method="gauss-legendre") / mpmath.sqrt(
            2 * mpmath.pi
        )
    if sigma < _MP_GH_SIGMA:  # weight exp(-x^2): z = sqrt(2) x
        s2 = sigma * mpmath.sqrt(2)
        nodes = _mp_nodes("hermite", _MP_GH_NODES, mpmath.mp.prec)
        return mpmath.fsum(w * f(mean + s2 * x) for x, w in nodes) / mpmath.sqrt(mpmath.pi)
    return mpmath.fsum(w * f(mean + sigma * z) for z, w in _mp_rule([(-mean / sigma, 1 / sigma)]))


def _mp_args(mean, var, cov=0):
    mean, var, cov = (mpmath.mpf(a) for a in (mean, var, cov))
    if var < 0 or abs(cov) > var:
        raise HyperparameterError(f"expect_mp: need var >= 0 and |cov| <= var; got var = {var}, cov = {cov}")
    return mean, var, cov


def expect1_mp(f: Callable, mean, var, *, dps: int = 30):
    """E[f(u)], u ~ N(mean, var), by mpmath.quad at ``dps`` digits (+10 guard digits); f maps mpf to mpf."""
    with mpmath.workdps(dps + 10):
        mean, var, _ = _mp_args(mean, var)
        value = _mp_expect1(f, mean, var, adaptive=True)
    with mpmath.workdps(dps):
        return +value  # dps digits, whatever the caller's precision


def expect2_mp(f: Callable, g: Callable, mean, var, cov, *, dps: int = 30):
    """E[f(u_a) g(u_b)] as in :func:`symmft.theory.gaussian.expect2`, by nested quadrature at ``dps`` digits (+10 guard digits): the fixed
    panel rule over z1, graded at both kinks, of f(u_a) times the inner 1-D expectation of g (fixed rule again;
    the tests hold both to mpmath.quad and to the erf closed forms). cov = 0 factorizes exactly."""
    with mpmath.workdps(dps + 10):
        mean, var, cov = _mp_args(mean, var, cov)
        if cov == 0 or var == 0:
            value = _mp_expect1(f, mean, var, True) * _mp_expect1(g, mean, var, True)
        else:
            sigma, rho = mpmath.sqrt(var), cov / var
            var_in = (var - cov) * (var + cov) / var
            kinks = [(-mean / sigma, 1 / sigma), (-mean / (rho * sigma), mpmath.sqrt(1 + var_in) / abs(rho * sigma))]
            value = mpmath.fsum(
                w * f(mean + sigma * z1) * _mp_expect1(g, mean + rho * sigma * z1, var_in, adaptive=False)
                for z1, w in _mp_rule(kinks)
            )
    with mpmath.workdps(dps):
        return +value
