"""Compile a :class:`~symmft.theory.meanfield.MeanFieldMap` into numeric functions for one backend.

Stage: mean-field map (sympy) -> :class:`CompiledMap` -> :mod:`symmft.theory.dynamics`.

A backend is a namespace (sympy's lambdify idiom): the expression is printed once and executed against a table
that binds ``tanh``, ``sigmoid``, ``erf`` and the Gaussian expectations ``E1``/``E2`` to numpy, CuPy or mpmath
implementations (:mod:`symmft.theory.gaussian`). Every function name is checked against the table before compiling, so
a missing implementation fails here, not at call time. Besides the maps, their Jacobians with respect to the keys
are differentiated symbolically (through ``E1``/``E2`` by Price's theorem) and compiled the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import mpmath
import numpy as np
import sympy as sp
from sympy.printing.str import StrPrinter

from symmft import cache
from symmft.theory import conditional, gaussian
from symmft.backend import BACKENDS as ARRAY_BACKENDS
from symmft.backend import get_xp
from symmft.errors import BackendError
from symmft.theory.expectation import BOUND, E1, E2, EL, u
from symmft.theory.meanfield import MeanFieldMap

BACKENDS = (*ARRAY_BACKENDS, "mpmath")  # mpmath: one point at high precision, the reference


class _Printer(StrPrinter):
    """Python source for lambdify: Lambdas become Python lambdas, E1/E2 calls into the namespace."""

    printmethod = "_symmft_code"  # not StrPrinter's _sympystr, which E1/E2 use for human-readable text

    def __init__(self, settings=None):
        super().__init__(settings)
        self._scope: list[str] = []  # integration variables of the enclosing integrands, innermost last

    def _print_Lambda(self, expr):
        (x,) = expr.variables  # its own variable: an inner level of a nested expectation reads the outer ones'
        self._scope.append(str(x))
        try:
            if expr.expr.has(E1, E2, EL, conditional.Leaves) or len(self._scope) < 3:
                return f"(lambda {x}: {self._print(expr.expr)})"
            # the innermost level of a deep nested expectation: the costly one (every node of every level), so its
            # repeated subexpressions are computed once, bound by assignment expressions
            names = sp.numbered_symbols(f"_{x}_")
            assignments, (reduced,) = sp.cse(expr.expr, symbols=names)
            if not assignments:
                return f"(lambda {x}: {self._print(reduced)})"
            bound = "".join(f"({v} := {self._print(e)}), " for v, e in assignments)
            return f"(lambda {x}: ({bound}{self._print(reduced)})[-1])"
        finally:
            self._scope.pop()

    def _print_Function(self, expr):
        name = expr.func.__name__
        args = [self._print(a) for a in expr.args]
        if expr.func is E1 and isinstance(expr.args[0], sp.Lambda) and expr.args[0].expr.free_symbols - set(expr.args[0].variables):
            # a nested expectation whose integrand holds grid-shaped values (the conditional closure's outer
            # variable, hyperparameters): its nodes must be evaluated over the whole grid at once, and its mean
            # takes the enclosing level's node shape even where it does not depend on it (0*variable), so that
            # every level adds exactly one leading axis
            name = "E1n"
            args[1] = f"({args[1]}) + 0*{self._scope[-1]}" if self._scope else args[1]
        return f"{name}({', '.join(args)})"

    def _print_Pi(self, expr):
        return "pi"

    def _print_Exp1(self, expr):
        return "exp(1)"


class _MpmathPrinter(_Printer):
    """Exact rationals and floats as mpf, so 30-digit evaluation is not spoiled by binary constants."""

    def _print_Rational(self, expr):
        return f"(mpf({expr.p})/mpf({expr.q}))"

    def _print_Float(self, expr):
        return f"mpf('{expr}')"


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

    return {
        "tanh": xp.tanh,
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
    }


def _mpmath_namespace(dps: int) -> dict:
    def nonneg(v):
        return max(v, mpmath.mpf(0))

    def expect(f, m, v):  # a group's integrand returns a tuple; a nested level's, one value
        if not isinstance(f(mpmath.mpf(m)), tuple):
            return gaussian.expect1_mp(f, m, nonneg(v), dps=dps)
        n = len(f(mpmath.mpf(m)))
        return tuple(gaussian.expect1_mp(lambda x, i=i: f(x)[i], m, nonneg(v), dps=dps) for i in range(n))

    return {
        "tanh": mpmath.tanh,
        "sigmoid": lambda x: 1 / (1 + mpmath.exp(-x)),
        "erf": mpmath.erf,
        "exp": mpmath.exp,
        "sqrt": mpmath.sqrt,
        "pi": mpmath.pi,
        "mpf": mpmath.mpf,
        "E1": lambda f, m, v: expect(f, m, v),
        "E1n": lambda f, m, v: expect(f, m, v),
        "EL": lambda f, T: gaussian.expect_loguniform_mp(f, T, dps=dps),
        "broadcast": lambda *a: a,
        "E2": lambda f, g, m, v, k: gaussian.expect2_mp(
            f, g, m, nonneg(v), min(max(k, -nonneg(v)), nonneg(v)), dps=dps
        ),
    }


def _check_functions(exprs, namespace, backend):
    if backend == "mpmath" and any(e.has(conditional.EC) for e in exprs):
        raise BackendError(
            "the mpmath backend cannot evaluate an exact conditional law of two input sequences (nested quadrature "
            "of 4+ levels at 30 digits); use closure='gaussian' with mpmath, or the numpy backend (held to an "
            "independent mpmath reference in tests/test_laws.py)"
        )
    exprs = [conditional.expand(e) for e in exprs]
    names = {f.func.__name__ for e in exprs for f in e.atoms(sp.Function) if not hasattr(f, "_symmft_code")}
    for e in exprs:
        for lam in e.atoms(sp.Lambda):
            names |= {f.func.__name__ for f in lam.expr.atoms(sp.Function) if not hasattr(f, "_symmft_code")}
    missing = sorted(n for n in names if n not in namespace)
    if missing:
        raise BackendError(f"backend {backend!r} has no implementation of {', '.join(missing)}")


@dataclass(frozen=True)
class CompiledMap:
    """Numeric map of one backend. Arguments are the key values (sequences of arrays) and a hyperparameter dict.

    ``diagonal(d, h)`` -> new diagonal keys; ``cross(d, c, h)`` -> new cross keys; ``diagonal_jacobian(d, h)``
    and ``cross_jacobian(d, c, h)`` -> (new keys, nested lists J[i][j] = d new_i / d key_j), computed together
    because they share their Gaussian expectations.
    """

    map: MeanFieldMap
    backend: str
    _diag: Callable
    _cross: Callable
    _jdiag: Callable
    _jcross: Callable

    def _hyper(self, h: dict) -> list:
        return [h[s.name] for s in self.map.hyperparameters]

    def diagonal(self, d, h):
        return self._diag(*d, *self._hyper(h))

    def cross(self, d, c, h):
        return self._cross(*d, *c, *self._hyper(h))

    def diagonal_jacobian(self, d, h):
        return _split(self._jdiag(*d, *self._hyper(h)), len(self.map.diagonal))

    def cross_jacobian(self, d, c, h):
        return _split(self._jcross(*d, *c, *self._hyper(h)), len(self.map.cross))


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
    if backend == "mpmath":
        namespace, printer = _mpmath_namespace(dps), _MpmathPrinter()
    else:
        namespace, printer = _numeric_namespace(get_xp(backend)), _Printer()
    d, c, h = list(mf.diagonal), list(mf.cross), list(mf.hyperparameters)
    diag = [mf.update[k] for k in d]
    cross = [mf.update[k] for k in c]
    jdiag = diag + [_derivative(e, k) for e in diag for k in d]
    jcross = cross + [_derivative(e, k) for e in cross for k in c]
    _check_functions(jdiag + jcross, namespace, backend)

    def build(name, args, exprs):
        return _generate(name, [a.name for a in args], exprs, printer, namespace)

    compiled = CompiledMap(
        map=mf,
        backend=backend,
        _diag=build("diagonal", d + h, diag),
        _cross=build("cross", d + c + h, cross),
        _jdiag=build("diagonal_jacobian", d + h, jdiag),
        _jcross=build("cross_jacobian", d + c + h, jcross),
    )
    _COMPILED[key] = compiled
    return compiled


def compile_expressions(name: str, args: list, exprs: list, backend: str = "numpy", *, dps: int = 30) -> Callable:
    """Compile expressions in ``args`` (symbols) that may hold E1/E2 into one function returning their list."""
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "mpmath":
        namespace, printer = _mpmath_namespace(dps), _MpmathPrinter()
    else:
        namespace, printer = _numeric_namespace(get_xp(backend)), _Printer()
    _check_functions(exprs, namespace, backend)
    return _generate(name, [a.name for a in args], exprs, printer, namespace)


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


# ---------------------------------------------------------------- code generation
#
# The maps' cost is the Gaussian expectations: a 4x4 LSTM Jacobian holds ~300 distinct E1 terms, most sharing
# their Gaussian (mean, variance) and differing only in the integrand. The generated function therefore
# evaluates, per distinct Gaussian, ONE integrand returning the tuple of all its functions (each gate's sigmoid
# is computed once per node), then the expressions with every expectation replaced by a variable, after
# common-subexpression elimination. Inner expectations (a closure variance holds E1 terms) come first.


def _generate(name: str, args: list[str], exprs: list, printer, namespace: dict) -> Callable:
    exprs = [conditional.expand(e) for e in exprs]  # exact conditional laws: nested E1 levels
    expectations = []  # E1/E2 atoms, innermost first
    for e in exprs:
        for node in sp.postorder_traversal(e):
            # an expectation whose parameters hold u lives inside another's integrand (conditional closure)
            if isinstance(node, (E1, E2)) and not node.free_symbols & BOUND and node not in expectations:
                expectations.append(node)
    symbol: dict = {}
    groups: dict = {}  # (kind, Gaussian parameters) -> [(symbol, integrand pair)]
    for i, atom in enumerate(expectations):
        symbol[atom] = sp.Symbol(f"e{i}")
        if isinstance(atom, E1):
            key, integrand = ("E1",) + tuple(a.xreplace(symbol) for a in atom.args[1:]), (atom.args[0](u),)
        else:
            key, integrand = ("E2", i) + tuple(a.xreplace(symbol) for a in atom.args[2:]), (atom.args[0](u), atom.args[1](u))
        groups.setdefault(key, []).append((symbol[atom], integrand))
    lines = [f"def {name}({', '.join(args)}):"]
    for g, (key, members) in enumerate(groups.items()):
        params = ", ".join(printer.doprint(p) for p in key[1 + (key[0] == "E2"):])
        if key[0] == "E1":
            lines += _integrand(f"_f{g}", [f for _, (f,) in members], printer)
            targets = "".join(f"{s}, " for s, _ in members)
            nodewise = any(f.has(E1, E2, EL) for _, (f,) in members)  # integrand holds grid-shaped arrays
            lines.append(f"    ({targets}) = {'E1n' if nodewise else 'E1'}(_f{g}, {params})")
        else:
            ((s, (f, gg)),) = members
            lines += _integrand(f"_f{g}", [f], printer) + _integrand(f"_g{g}", [gg], printer)
            lines.append(f"    {s} = E2(lambda u: _f{g}(u)[0], lambda u: _g{g}(u)[0], {params})")
    if any("E1n(" in line for line in lines) and len(args) > 1:
        # nodewise integrands close over the arguments: give them all the grid's shape (gaussian.expect1_nodewise)
        lines.insert(1, f"    {', '.join(args)}, = broadcast({', '.join(args)})")
    body = [e.xreplace(symbol) for e in exprs]
    assignments, reduced = sp.cse(body, symbols=sp.numbered_symbols("x"), ignore=tuple(BOUND))  # bound in lambdas
    lines += [f"    {v} = {printer.doprint(x)}" for v, x in assignments]
    lines.append(f"    return [{', '.join(printer.doprint(x) for x in reduced)}]")
    source = "\n".join(lines)
    scope = dict(namespace)
    exec(compile(source, f"<symmft {name}>", "exec"), scope)
    function = scope[name]
    function.source = source  # inspectable: print(compiled._jdiag.source)
    return function


def _integrand(name: str, functions: list, printer) -> list[str]:
    """A nested def returning the tuple of ``functions`` of u, with shared subexpressions computed once (not
    across a nested expectation, whose own integrand binds another u)."""
    nested = any(f.has(E1, E2, EL) for f in functions)
    assignments, reduced = ([], functions) if nested else sp.cse(functions, symbols=sp.numbered_symbols("y"))
    lines = [f"    def {name}(u):"]
    printer._scope.append("u")
    lines += [f"        {v} = {printer.doprint(x)}" for v, x in assignments]
    lines.append(f"        return ({''.join(printer.doprint(x) + ', ' for x in reduced)})")
    printer._scope.pop()
    return lines
