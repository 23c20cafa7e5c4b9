"""Python source of compiled maps: sympy expressions holding Gaussian expectations -> one Python function.

Stage: used by :mod:`symmft.theory.compile`, which executes the source against a backend's namespace.

:class:`Printer` prints an expression as Python (``E1``/``E2``/``EL`` calls into the namespace, Lambdas as Python
lambdas, nested expectations that share their Gaussian as one call on shared nodes); :func:`function_source` writes
``def name(*args)`` returning a list of expressions, grouping the expectations of one Gaussian into one integrand
call and eliminating common subexpressions; :func:`load_function` executes it.
"""

from __future__ import annotations

from typing import Callable

import sympy as sp
from sympy.printing.str import StrPrinter

from symmft.theory import conditional
from symmft.theory.expansion import Expansion
from symmft.theory.expectation import BOUND, E1, E2, EL, integrand


class Printer(StrPrinter):
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


class MpmathPrinter(Printer):
    """Exact rationals and floats as mpf, so 30-digit evaluation is not spoiled by binary constants."""

    def _print_Rational(self, expr):
        return f"(mpf({expr.p})/mpf({expr.q}))"

    def _print_Float(self, expr):
        return f"mpf('{expr}')"


# ---------------------------------------------------------------- code generation
#
# The maps' cost is the Gaussian expectations: a 4x4 LSTM Jacobian holds ~300 distinct E1 terms, most sharing
# their Gaussian (mean, variance) and differing only in the integrand. The generated function therefore
# evaluates, per distinct Gaussian, ONE integrand returning the tuple of all its functions (each gate's sigmoid
# is computed once per node), then the expressions with every expectation replaced by a variable, after
# common-subexpression elimination. Inner expectations (a closure variance holds E1 terms) come first.


def function_source(name: str, args: list, exprs: list, printer) -> str:
    """Python source of ``def name(*args)`` returning the list of ``exprs``."""
    args = [a if isinstance(a, str) else a.name for a in args]
    exprs = [conditional.expand(e) for e in exprs]  # exact conditional laws: nested E1 levels
    # E1/E2 atoms, innermost first; an expectation whose parameters hold u lives inside another's integrand
    # (conditional closure)
    expectations = [n for n in unique_nodes(exprs) if isinstance(n, (E1, E2)) and not n.free_symbols & BOUND]
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


def unique_nodes(exprs: list) -> list:
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


def load_function(name: str, source: str, namespace: dict) -> Callable:
    """The function ``name`` defined by ``source``, executed against ``namespace``."""
    scope = dict(namespace)
    exec(compile(source, f"<symmft {name}>", "exec"), scope)
    function = scope[name]
    function.source = source  # inspectable: print(compiled._jdiag.source)
    return function


def _integrand(name: str, functions: list, printer) -> list[str]:
    """A nested def returning the tuple of ``functions`` of u, with shared subexpressions computed once (not
    across a nested expectation, whose own integrand binds another u; nested expectations over one Gaussian
    share their nodes instead: ``Printer.share_nodes``)."""
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
