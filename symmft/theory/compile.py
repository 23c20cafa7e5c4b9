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
from symmft.theory import conditional, gaussian, gaussian_mp, store
from symmft.backend import BACKENDS as ARRAY_BACKENDS
from symmft.backend import get_xp
from symmft.errors import BackendError
from symmft.theory.expansion import Expansion
from symmft.theory.expectation import BOUND, E1, E2, EL, integrand
from symmft.theory.meanfield import MeanFieldMap

BACKENDS = (*ARRAY_BACKENDS, "mpmath")  # mpmath: one point at high precision, the reference


class _Printer(StrPrinter):
    """Python source for lambdify: Lambdas become Python lambdas, E1/E2 calls into the namespace."""

    printmethod = "_symmft_code"  # not StrPrinter's _sympystr, which E1/E2 use for human-readable text

    def __init__(self, settings=None):
        super().__init__(settings)
        self._scope: list[str] = []  # integration variables of the enclosing integrands, innermost last
        self._shared = 0  # names of shared-node groups (_s0, _s1, ...), unique across one generated source
        self._expansion = Expansion()
        self._nested = False  # printing the integrand of a nested expectation (see _print_Pow)

    def share_nodes(self, exprs: list) -> tuple[list[tuple[str, str]], list]:
        """Nested expectations of one integrand that share their Gaussian, evaluated as ONE call on shared nodes.

        Returns (bindings [(name, source of the grouped call)], ``exprs`` with each member replaced by
        ``name[i]``). An integrand of a nested law (a chain rule through its levels, a Jacobian's moments) holds
        tens of inner expectations over the same Gaussian, differing only in the function integrated; called
        one by one, each generates its own nodes over every outer node."""
        members: dict = {}
        for e in exprs:
            for f in _outer_expectations(e):
                lam, m, v = f.args
                members.setdefault((lam.variables, m, v), []).append(f)
        replace, bindings = {}, []
        for (variables, m, v), group in members.items():
            (x,) = variables
            integrands = [f.args[0].expr for f in group]
            innermost = not any(F.has(E1, E2, EL) for F in integrands)
            split = innermost and any(F.free_symbols - {x} for F in integrands)
            if len(group) < 2 and not split:
                continue
            name = f"_s{self._shared}"
            self._shared += 1
            if split:
                # the innermost level, evaluated at every node of every level: each integrand is split into
                # functions of its own variable times coefficients of the outer ones (an outer level's variable,
                # the grid's values), so that only the functions of x are evaluated on its nodes
                basis: dict = {}
                values = []
                for F in integrands:
                    value = sp.S.Zero
                    for monomial, coefficient in self._expansion.terms(F).items():
                        inner = sp.Mul(*[f**k for f, k in monomial if f.has(x)])
                        outer = sp.Mul(coefficient, *[f**k for f, k in monomial if not f.has(x)])
                        if inner == 1:
                            value += outer
                        else:
                            value += outer * sp.Symbol(f"{name}[{basis.setdefault(inner, len(basis))}]")
                    values.append(value)
                replace.update(dict(zip(group, values)))
                integrands = list(basis)
                if not integrands:
                    continue
            else:
                replace.update({f: sp.Symbol(f"{name}[{i}]") for i, f in enumerate(group)})
            together = E1(sp.Lambda(variables, sp.Tuple(*integrands)), m, v, evaluate=False)
            bindings.append((name, self._print(together)))
        return bindings, [e.xreplace(replace) if replace else e for e in exprs]

    def _print_Pow(self, expr, rational=False):
        # inside a nested expectation (evaluated on every node of every level) an integer power is a chain of
        # multiplications: numpy's float power has no fast path beyond squares and costs ~4x a tanh
        if self._nested and expr.exp.is_Integer and 3 <= expr.exp <= 16:
            return f"ipow({self._print(expr.base)}, {int(expr.exp)})"
        return super()._print_Pow(expr, rational)

    def _print_Lambda(self, expr):
        (x,) = expr.variables  # its own variable: an inner level of a nested expectation reads the outer ones'
        self._scope.append(str(x))
        nested, self._nested = self._nested, True
        try:
            innermost = not expr.expr.has(E1, E2, EL)
            if not innermost or (len(self._scope) < 3 and not isinstance(expr.expr, sp.Tuple)):
                bindings, (body,) = self.share_nodes([expr.expr]) if expr.expr.has(E1) else ([], [expr.expr])
                if bindings:
                    if not body.has(E1, E2, EL):  # every inner expectation bound: the rest once per node too
                        assignments, (body,) = sp.cse(body, symbols=sp.numbered_symbols(f"_{x}_"))
                        bindings += [(v, self._print(e)) for v, e in assignments]
                    bound = "".join(f"({name} := {call}), " for name, call in bindings)
                    return f"(lambda {x}: ({bound}{self._print(body)})[-1])"
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
            self._nested = nested

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
    names = {type(f).__name__ for f in _unique_nodes(exprs)
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
            "diagonal": _source("diagonal", d + h, diag, printer),
            "cross": _source("cross", d + c + h, cross, printer),
            "diagonal_jacobian": _source("diagonal_jacobian", d + h, jdiag, printer),
            "cross_jacobian": _source("cross_jacobian", d + c + h, jcross, printer),
        }
        if backend != "mpmath" and any(e.has(conditional.EC) for e in jcross):
            # at C = Q and c_x = 1 every EC collapses to one sequence's law (EC.eval)
            names = {s.name: s for s in d}
            identical = {k: names["Q" + k.name[1:]] for k in c} | {s: sp.S.One for s in h if s.name == "c_x"}
            out["cross_jacobian_identical"] = _source(
                "cross_jacobian_identical", d + h, [e.xreplace(identical) for e in jcross], printer)
        return out

    src = store.cached(mf.cell.file_hash, "compiled", (mf.closure, tuple(sorted(mf.chrono)), backend), sources)
    compiled = CompiledMap(
        map=mf,
        backend=backend,
        _diag=_load("diagonal", src["diagonal"], namespace),
        _cross=_load("cross", src["cross"], namespace),
        _jdiag=_load("diagonal_jacobian", src["diagonal_jacobian"], namespace),
        _jcross=_load("cross_jacobian", src["cross_jacobian"], namespace),
        _jcross_identical=(_load("cross_jacobian_identical", src["cross_jacobian_identical"], namespace)
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
        return _source(name, [a.name for a in args], expressions, printer)

    if key is None:
        return _load(name, source(), namespace)
    file_hash, options = key
    return _load(name, store.cached(file_hash, f"compiled-{name}", (*options, backend), source), namespace)


def _namespace(backend: str, dps: int) -> tuple[dict, _Printer]:
    if backend == "mpmath":
        return _mpmath_namespace(dps), _MpmathPrinter()
    return _numeric_namespace(get_xp(backend)), _Printer()


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


def _source(name: str, args: list, exprs: list, printer) -> str:
    """Python source of ``def name(*args)`` returning the list of ``exprs``."""
    args = [a if isinstance(a, str) else a.name for a in args]
    exprs = [conditional.expand(e) for e in exprs]  # exact conditional laws: nested E1 levels
    # E1/E2 atoms, innermost first; an expectation whose parameters hold u lives inside another's integrand
    # (conditional closure)
    expectations = [n for n in _unique_nodes(exprs) if isinstance(n, (E1, E2)) and not n.free_symbols & BOUND]
    symbol: dict = {}
    # one group per Gaussian: (mean, var) -> E1 members [(symbol, f)] and, per covariance, E2 members
    groups: dict = {}
    for i, atom in enumerate(expectations):
        symbol[atom] = sp.Symbol(f"e{i}")
        if isinstance(atom, E1):
            mean, var = (a.xreplace(symbol) for a in atom.args[1:])
            groups.setdefault((mean, var), ([], {}))[0].append((symbol[atom], integrand(atom.args[0])))
        else:
            mean, var, cov = (a.xreplace(symbol) for a in atom.args[2:])
            pair = (symbol[atom], integrand(atom.args[0]), integrand(atom.args[1]))
            groups.setdefault((mean, var), ([], {}))[1].setdefault(cov, []).append(pair)
    lines = [f"def {name}({', '.join(args)}):"]
    for g, ((mean, var), (ones, twos)) in enumerate(groups.items()):
        params = f"{printer.doprint(mean)}, {printer.doprint(var)}"
        nested = any(f.has(E1, E2, EL) for _, f in ones) or any(
            a.has(E1, E2, EL) or b.has(E1, E2, EL) for pairs in twos.values() for _, a, b in pairs
        )
        if ones and (nested or not twos):
            lines += _integrand(f"_f{g}", [f for _, f in ones], printer)
            # a nested expectation's integrand holds grid-shaped arrays: evaluated nodewise over the whole grid
            lines.append(f"    ({''.join(f'{s}, ' for s, _ in ones)}) = {'E1n' if nested else 'E1'}(_f{g}, {params})")
            ones = []
        if nested:  # as before grouping: one E2 call per pair
            for j, (cov, pairs) in enumerate(twos.items()):
                for k, (s, a, b) in enumerate(pairs):
                    lines += _integrand(f"_a{g}_{j}_{k}", [a], printer) + _integrand(f"_b{g}_{j}_{k}", [b], printer)
                    lines.append(f"    {s} = E2(lambda u: _a{g}_{j}_{k}(u)[0], lambda u: _b{g}_{j}_{k}(u)[0], "
                                 f"{params}, {printer.doprint(cov)})")
            twos = {}
        for j, (cov, pairs) in enumerate(twos.items()):
            first = "None"
            if ones and j == 0:  # the E1 members ride on the first covariance's call
                lines += _integrand(f"_f{g}", [f for _, f in ones], printer)
                first = f"_f{g}"
            lines += _integrand(f"_a{g}_{j}", [a for _, a, _ in pairs], printer)
            lines += _integrand(f"_b{g}_{j}", [b for _, _, b in pairs], printer)
            # at rho = 1 the pairs are the products f g: one integrand for all, shared subexpressions once
            products = [f for _, f in ones] * (j == 0) + [a * b for _, a, b in pairs]
            lines += _integrand(f"_s{g}_{j}", products, printer)
            targets = [s for s, _ in ones] * (j == 0) + [s for s, _, _ in pairs]
            lines.append(
                f"    ({''.join(f'{s}, ' for s in targets)}) = "
                f"ES({first}, _a{g}_{j}, _b{g}_{j}, _s{g}_{j}, {params}, {printer.doprint(cov)})"
            )
    if (any("E1n(" in line for line in lines) or any(e.has(EL) for e in exprs)) and len(args) > 1:
        # nodewise integrands, and the log-uniform rule's nodes (one leading axis, gaussian.expect_loguniform),
        # close over the arguments: give them all the grid's shape (gaussian.expect1_nodewise)
        lines.insert(1, f"    {', '.join(args)}, = broadcast({', '.join(args)})")
    body = [e.xreplace(symbol) for e in exprs]
    assignments, reduced = sp.cse(body, symbols=sp.numbered_symbols("x"), ignore=tuple(BOUND))  # bound in lambdas
    lines += [f"    {v} = {printer.doprint(x)}" for v, x in assignments]
    lines.append(f"    return [{', '.join(printer.doprint(x) for x in reduced)}]")
    return "\n".join(lines)


def _outer_expectations(e: sp.Expr) -> list:
    """The E1 nodes of ``e`` not inside another E1 (nor inside a Lambda of another kind), whose parameters hold no
    expectation: the candidates for one integrand's shared nodes."""
    out, stack, seen = [], [e], set()
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        if isinstance(node, E1):
            if isinstance(node.args[0], sp.Lambda) and not any(a.has(E1, E2, EL) for a in node.args[1:]):
                out.append(node)
        elif not isinstance(node, (sp.Lambda, E2, EL)):
            stack.extend(node.args)
    return sorted(out, key=sp.default_sort_key)


def _unique_nodes(exprs: list) -> list:
    """Every distinct subexpression of ``exprs``, children before parents, in the order of their first appearance
    in a post-order traversal; a repeated subtree is walked once (the maps are DAGs with much sharing, which
    ``sp.postorder_traversal`` walks as trees)."""
    seen, out = set(), []
    for e in exprs:
        stack = [(e, False)]
        while stack:
            node, expanded = stack.pop()
            if expanded:
                out.append(node)
            elif node not in seen:
                seen.add(node)
                stack.append((node, True))
                stack.extend((a, False) for a in reversed(node.args))
    return out


def _load(name: str, source: str, namespace: dict) -> Callable:
    """The function ``name`` defined by ``source``, executed against ``namespace``."""
    scope = dict(namespace)
    exec(compile(source, f"<symmft {name}>", "exec"), scope)
    function = scope[name]
    function.source = source  # inspectable: print(compiled._jdiag.source)
    return function


def _integrand(name: str, functions: list, printer) -> list[str]:
    """A nested def returning the tuple of ``functions`` of u, with shared subexpressions computed once (not
    across a nested expectation, whose own integrand binds another u; nested expectations over one Gaussian
    share their nodes instead: ``_Printer.share_nodes``)."""
    nested = any(f.has(E1, E2, EL) for f in functions)
    assignments, reduced = ([], functions) if nested else sp.cse(functions, symbols=sp.numbered_symbols("y"))
    lines = [f"    def {name}(u):"]
    printer._scope.append("u")
    if nested:
        printer._nested = True
        bindings, reduced = printer.share_nodes(reduced)
        lines += [f"        {v} = {call}" for v, call in bindings]
        if not any(f.has(E1, E2, EL) for f in reduced):  # every nested expectation is bound above
            assignments, reduced = sp.cse(reduced, symbols=sp.numbered_symbols("y"))
    lines += [f"        {v} = {printer.doprint(x)}" for v, x in assignments]
    lines.append(f"        return ({''.join(printer.doprint(x) + ', ' for x in reduced)})")
    printer._scope.pop()
    printer._nested = False
    return lines
