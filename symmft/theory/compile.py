"""Compile a :class:`~symmft.theory.meanfield.MeanFieldMap` into numeric functions for one backend.

Stage: mean-field map (sympy) -> :class:`CompiledMap` -> :mod:`symmft.theory.dynamics`.

A backend is a namespace (sympy's lambdify idiom): the expression is printed once (:mod:`symmft.theory.printing`)
and executed against a table that binds ``tanh``, ``sigmoid``, ``erf`` and the Gaussian expectations ``E1``/``E2``
to numpy, CuPy or mpmath implementations (:mod:`symmft.theory.gaussian`, :mod:`symmft.theory.gaussian_mp`). Every
function name is checked against the table before compiling, so a missing implementation fails here, not at call
time. Besides the maps, their Jacobians with respect to the keys are differentiated symbolically (through
``E1``/``E2`` by Price's theorem) and compiled the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import mpmath
import numpy as np
import sympy as sp

from symmft import cache
from symmft.theory import conditional, gaussian, gaussian_mp, store
from symmft.backend import BACKENDS as ARRAY_BACKENDS
from symmft.backend import get_xp
from symmft.errors import BackendError
from symmft.theory.expectation import BOUND
from symmft.theory.meanfield_map import MeanFieldMap
from symmft.theory.printing import MpmathPrinter, Printer, function_source, load_function, unique_nodes

BACKENDS = (*ARRAY_BACKENDS, "mpmath")  # mpmath: one point at high precision, the reference


def _numeric_namespace(xp) -> dict:
    erf = getattr(xp, "erf", None)
    if erf is None:
        if xp is np:
            from scipy.special import erf
        else:
            from cupyx.scipy.special import erf

    def sigmoid_(x):
        return 0.5 * (1.0 + xp.tanh(0.5 * x))  # overflow-free logistic

    def nonneg(v):  # rounding can leave a closure variance at -1e-17
        return xp.maximum(v, 0.0)

    def cov_(c, v):
        return xp.clip(c, -v, v)

    def ipow(b, n):  # b**n by repeated squaring (multiplications only)
        out = None
        while n:
            if n & 1:
                out = b if out is None else out * b
            n >>= 1
            if n:
                b = b * b
        return out

    return {
        "tanh": xp.tanh,
        "ipow": ipow,
        "sigmoid": sigmoid_,
        "erf": erf,
        "exp": xp.exp,
        "sqrt": xp.sqrt,
        "pi": math.pi,
        "E1": lambda f, m, v: gaussian.expect1(f, m, nonneg(v), xp=xp),  # f returns a tuple: shared nodes
        "E1n": lambda f, m, v: gaussian.expect1_nodewise(f, m, nonneg(v), xp=xp),
        "broadcast": lambda *a: xp.broadcast_arrays(*(xp.asarray(x, dtype=xp.float64) for x in a)),
        "EL": lambda f, T: gaussian.expect_loguniform(f, T, xp=xp),
        "E2": lambda f, g, m, v, k: gaussian.expect2(f, g, m, nonneg(v), cov_(k, nonneg(v)), xp=xp),
        "ES": lambda f, a, b, s, m, v, k: gaussian.expect_shared(
            f, a, b, m, nonneg(v), cov_(k, nonneg(v)), together=s, xp=xp
        ),
    }


def _mpmath_namespace(dps: int) -> dict:
    def nonneg(v):
        return max(v, mpmath.mpf(0))

    def expect(f, m, v):  # a group's integrand returns a tuple; a nested level's, one value
        if not isinstance(f(mpmath.mpf(m)), tuple):
            return gaussian_mp.expect1_mp(f, m, nonneg(v), dps=dps)
        n = len(f(mpmath.mpf(m)))
        return tuple(gaussian_mp.expect1_mp(lambda x, i=i: f(x)[i], m, nonneg(v), dps=dps) for i in range(n))

    return {
        "tanh": mpmath.tanh,
        "ipow": lambda b, n: b**n,
        "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
        "erf": mpmath.erf,
        "exp": mpmath.exp,
        "sqrt": mpmath.sqrt,
        "pi": mpmath.pi,
        "mpf": mpmath.mpf,
        "E1": lambda f, m, v: expect(f, m, v),
        "E1n": lambda f, m, v: expect(f, m, v),
        "EL": lambda f, T: gaussian_mp.expect_loguniform_mp(f, T, dps=dps),
        "broadcast": lambda *a: a,
        "E2": lambda f, g, m, v, k: gaussian_mp.expect2_mp(
            f, g, m, nonneg(v), min(max(k, -nonneg(v)), nonneg(v)), dps=dps
        ),
        "ES": lambda f, a, b, s, m, v, k: _shared_mp(f, a, b, m, nonneg(v), min(max(k, -nonneg(v)), nonneg(v)), dps),
    }


def _shared_mp(f, a, b, m, v, k, dps: int) -> tuple:
    """The mpmath reference of gaussian.expect_shared: each expectation on its own (no shortcut at rho = 1)."""
    n_first = len(f(mpmath.mpf(0))) if f is not None else 0
    ones = [gaussian_mp.expect1_mp(lambda x, i=i: f(x)[i], m, v, dps=dps) for i in range(n_first)]
    twos = [
        gaussian_mp.expect2_mp(lambda x, i=i: a(x)[i], lambda x, i=i: b(x)[i], m, v, k, dps=dps)
        for i in range(len(a(mpmath.mpf(0))))
    ]
    return (*ones, *twos)


def _check_functions(exprs, namespace, backend):
    if backend == "mpmath" and any(e.has(conditional.EC) for e in exprs):
        raise BackendError(
            "the mpmath backend cannot evaluate an exact conditional law of two input sequences (nested quadrature "
            "of 4+ levels at 30 digits); use closure='gaussian' with mpmath, or the numpy backend (held to an "
            "independent mpmath reference in tests/test_laws.py)"
        )
    # EC becomes nested E1 levels in the generated code (conditional.expand), whose integrands are EC's own
    names = {type(f).__name__ for f in unique_nodes(exprs)
             if isinstance(f, sp.Function) and not hasattr(f, "_symmft_code")
             and not isinstance(f, (conditional.EC, conditional.EC1))}
    missing = sorted(n for n in names if n not in namespace)
    if missing:
        raise BackendError(f"backend {backend!r} has no implementation of {', '.join(missing)}")


@dataclass(frozen=True)
class CompiledMap:
    """Numeric map of one backend. Arguments are the key values (sequences of arrays) and a hyperparameter dict.

    ``diagonal(d, h)`` -> new diagonal keys; ``cross(d, c, h)`` -> new cross keys; ``diagonal_jacobian(d, h)``
    and ``cross_jacobian(d, c, h)`` -> (new keys, nested lists J[i][j] = d new_i / d key_j), computed together
    because they share their Gaussian expectations. ``cross_jacobian_identical(d, h)`` is ``cross_jacobian`` at
    C = Q (every cross key at its diagonal analogue) with c_x = 1, where the two copies coincide: present (not
    None) only for a map holding a two-sequence conditional law, which it evaluates as one sequence's.
    """

    map: MeanFieldMap
    backend: str
    _diag: Callable
    _cross: Callable
    _jdiag: Callable
    _jcross: Callable
    _jcross_identical: Callable | None = None

    def _hyper(self, h: dict) -> list:
        return [h[s.name] for s in self.map.hyperparameters]

    def diagonal(self, d, h):
        return self._diag(*d, *self._hyper(h))

    def cross(self, d, c, h):
        return self._sliced(self._cross, [*d, *c, *self._hyper(h)])

    def diagonal_jacobian(self, d, h):
        return _split(self._jdiag(*d, *self._hyper(h)), len(self.map.diagonal))

    def cross_jacobian(self, d, c, h):
        return _split(self._sliced(self._jcross, [*d, *c, *self._hyper(h)]), len(self.map.cross))

    @property
    def has_identical(self) -> bool:
        return self._jcross_identical is not None

    def cross_jacobian_identical(self, d, h):
        return _split(self._jcross_identical(*d, *self._hyper(h)), len(self.map.cross))

    def _sliced(self, function: Callable, args: list) -> list:
        """``function(*args)``; a map holding a two-sequence conditional law (``has_identical``) is called on at
        most :data:`CONDITIONAL_POINTS` points at a time: its nested levels hold ~44^3 nodes a point."""
        if self._jcross_identical is None or self.backend == "mpmath":
            return function(*args)
        xp = get_xp(self.backend)
        shape = np.broadcast_shapes(*(np.shape(a) for a in args))
        if len(shape) != 1 or shape[0] <= CONDITIONAL_POINTS:
            return function(*args)
        args = [xp.broadcast_to(xp.asarray(a, dtype=float), shape) for a in args]
        starts = range(0, shape[0], CONDITIONAL_POINTS)
        parts = [function(*[a[lo : lo + CONDITIONAL_POINTS] for a in args]) for lo in starts]
        sizes = [min(CONDITIONAL_POINTS, shape[0] - lo) for lo in starts]
        return [xp.concatenate([xp.broadcast_to(xp.asarray(p[i], dtype=float), (n,)) for p, n in zip(parts, sizes)])
                for i in range(len(parts[0]))]


#: Points per call of a two-sequence conditional law (the analysis's points are flat 1-D batches): ~10 MB of node
#: arrays a point for the reset-after GRU's cross Jacobian.
CONDITIONAL_POINTS = 16


def _split(values: list, k: int):
    return values[:k], [values[k + i * k : k + (i + 1) * k] for i in range(k)]


_COMPILED = cache.memory("compiled maps")


def compile_map(mf: MeanFieldMap, backend: str = "numpy", *, dps: int = 30) -> CompiledMap:
    """Compile ``mf`` for ``backend`` ("numpy", "cupy" or "mpmath" at ``dps`` digits); cached."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    key = (mf.cell.file_hash, mf.closure, mf.chrono, backend, dps if backend == "mpmath" else None)
    if key in _COMPILED:
        return _COMPILED[key]
    namespace, printer = _namespace(backend, dps)
    d, c, h = list(mf.diagonal), list(mf.cross), list(mf.hyperparameters)

    def sources() -> dict:  # the sympy work (Jacobians, CSE, printing): stored on disk for the next process
        diag = [mf.update[k] for k in d]
        cross = [mf.update[k] for k in c]
        jdiag = diag + [_derivative(e, k) for e in diag for k in d]
        jcross = cross + [_derivative(e, k) for e in cross for k in c]
        _check_functions(jdiag + jcross, namespace, backend)
        out = {
            "diagonal": function_source("diagonal", d + h, diag, printer),
            "cross": function_source("cross", d + c + h, cross, printer),
            "diagonal_jacobian": function_source("diagonal_jacobian", d + h, jdiag, printer),
            "cross_jacobian": function_source("cross_jacobian", d + c + h, jcross, printer),
        }
        if backend != "mpmath" and any(e.has(conditional.EC) for e in jcross):
            # at C = Q and c_x = 1 every EC collapses to one sequence's law (EC.eval)
            names = {s.name: s for s in d}
            identical = {k: names["Q" + k.name[1:]] for k in c} | {s: sp.S.One for s in h if s.name == "c_x"}
            out["cross_jacobian_identical"] = function_source(
                "cross_jacobian_identical", d + h, [e.xreplace(identical) for e in jcross], printer)
        return out

    src = store.cached(mf.cell.file_hash, "compiled", (mf.closure, tuple(sorted(mf.chrono)), backend), sources)
    compiled = CompiledMap(
        map=mf,
        backend=backend,
        _diag=load_function("diagonal", src["diagonal"], namespace),
        _cross=load_function("cross", src["cross"], namespace),
        _jdiag=load_function("diagonal_jacobian", src["diagonal_jacobian"], namespace),
        _jcross=load_function("cross_jacobian", src["cross_jacobian"], namespace),
        _jcross_identical=(load_function("cross_jacobian_identical", src["cross_jacobian_identical"], namespace)
                           if "cross_jacobian_identical" in src else None),
    )
    _COMPILED[key] = compiled
    return compiled


def compile_expressions(
    name: str, args: list, exprs: list | Callable[[], list], backend: str = "numpy", *, dps: int = 30,
    key: tuple | None = None,
) -> Callable:
    """Compile expressions in ``args`` (symbols) that may hold E1/E2 into one function returning their list.

    ``key`` = (cell-file hash, options) names the expressions for the on-disk cache (:mod:`symmft.theory.store`):
    a later process with the same key loads the generated source instead of redoing CSE and printing. ``exprs``
    may then be a function returning the list, called only when the source is not stored yet (deriving the
    expressions, or even unpickling them, can cost more than loading the source)."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    namespace, printer = _namespace(backend, dps)

    def source() -> str:
        expressions = exprs() if callable(exprs) else exprs
        _check_functions(expressions, namespace, backend)
        return function_source(name, [a.name for a in args], expressions, printer)

    if key is None:
        return load_function(name, source(), namespace)
    file_hash, options = key
    return load_function(name, store.cached(file_hash, f"compiled-{name}", (*options, backend), source), namespace)


def _namespace(backend: str, dps: int) -> tuple[dict, Printer]:
    if backend == "mpmath":
        return _mpmath_namespace(dps), MpmathPrinter()
    return _numeric_namespace(get_xp(backend)), Printer()


class _IntegerPower(sp.Function):
    """b**n (n a positive integer) differentiated as n*b**(n-1): sympy's Pow rule writes d(b**2) as
    b**2 * 2 db / b when b holds a function, which is 0/0 where b = 0 (a zero mean)."""

    @classmethod
    def eval(cls, base, n):
        if n == 1:
            return base

    def fdiff(self, argindex=1):
        base, n = self.args
        return n * _IntegerPower(base, n - 1)


def _derivative(e: sp.Expr, key: sp.Symbol) -> sp.Expr:
    """d e / d key, with integer powers of compound bases kept polynomial."""
    compound = lambda p: p.is_Pow and p.exp.is_Integer and p.exp > 1 and bool(p.base.free_symbols - BOUND)
    d = e.replace(compound, lambda p: _IntegerPower(p.base, p.exp)).diff(key)
    return d.replace(lambda f: isinstance(f, _IntegerPower), lambda f: f.args[0] ** f.args[1])
