"""Symbolic Gaussian expectations: the sympy functions every mean-field map is written in.

    E1(Lambda(u, F), m, v)        = E[F(u)],            u ~ N(m, v)
    E2(Lambda(u, F), Lambda(u, G), m, v, k)
                                  = E[F(u_a) G(u_b)],   (u_a, u_b) ~ N((m, m), [[v, k], [k, v]])

They are real sympy ``Function``s, so ``diff`` works through them by Price's theorem / Stein's lemma
(d/dm E[F] = E[F'], d/dv E[F] = E[F'']/2, d/dk E[F(u_a)G(u_b)] = E[F'(u_a)G'(u_b)]); this gives the Jacobians of
the maps (fixed-point Newton steps, the eigenvalue lambda) with no finite differences. Closed forms are applied
at construction when they exist (polynomials by Isserlis' theorem, E[erf]); everything else is left for the
numeric backends of :mod:`symmft.theory.compile`.

Also defines ``sigmoid`` as a sympy function (derivative sigmoid*(1 - sigmoid)), ``FUNCTIONS`` (each nonlinearity
of a cell as a sympy function) and :func:`gaussian_product_moment` (Isserlis' theorem for symbolic moments).
"""

from __future__ import annotations

from typing import Callable

import sympy as sp

from symmft.cell.graph import NONLINEARITIES

#: The integration variable of every Lambda, shared so that equal integrands compare (and CSE) equal.
u = sp.Symbol("u", real=True)
#: Integration variables of the outer levels of a nested expectation (the exact conditional law,
#: :mod:`symmft.theory.conditional`): an inner level's parameters hold the outer levels' variables, so each level
#: binds its own. E1 keeps a Lambda's own variable when it differentiates, so no level ever captures another's.
LEVELS = tuple(sp.Symbol(f"u{i}", real=True) for i in range(1, 9))
BOUND = frozenset((u, *LEVELS))


def integrand(lam: sp.Lambda) -> sp.Expr:
    """``lam(u)``: the integrand in ``u`` (without a substitution walk when ``lam`` already binds ``u``)."""
    return lam.expr if lam.variables == (u,) else lam(u)


class sigmoid(sp.Function):
    """The logistic function 1/(1 + exp(-x))."""

    @classmethod
    def eval(cls, arg):
        if arg.is_zero:
            return sp.S.Half

    def fdiff(self, argindex=1):
        s = sigmoid(self.args[0])
        return s * (1 - s)

    def _eval_evalf(self, prec):
        return (1 / (1 + sp.exp(-self.args[0]))).evalf(prec)


#: Each nonlinearity a cell may use (:data:`symmft.cell.graph.NONLINEARITIES`) as a sympy function.
FUNCTIONS = {"sigmoid": sigmoid, "tanh": sp.tanh, "erf": sp.erf}
assert set(FUNCTIONS) == set(NONLINEARITIES)  # a new nonlinearity needs its sympy function here


def gaussian_product_moment(names: list, mean_of: Callable, second_moment: Callable) -> sp.Expr:
    """E[s1 s2 ... sk] of jointly Gaussian variables (Isserlis' theorem), from their means ``mean_of(s)`` and
    second moments ``second_moment(s, t)`` = E[s t] (symbols); the meanfield Derivation's moments of the previous state beyond
    second order under its Gaussian closure (needed by the Jacobian's m2, not by the fixed point)."""
    mean = {s: mean_of(s) for s in names}

    def central(rest: list) -> sp.Expr:  # E[prod (s_i - M_i)]
        if not rest:
            return sp.S.One
        if len(rest) == 1:
            return sp.S.Zero
        first, others = rest[0], rest[1:]
        return sp.Add(*[
            (second_moment(first, o) - mean[first] * mean[o]) * central(others[:j] + others[j + 1 :])
            for j, o in enumerate(others)
        ])

    total = sp.S.Zero
    for mask in range(2 ** len(names)):  # expand prod (M_i + x_i) over which factors are centered
        chosen = [s for i, s in enumerate(names) if mask >> i & 1]
        rest = [s for i, s in enumerate(names) if not mask >> i & 1]
        total += sp.Mul(*[mean[s] for s in rest]) * central(chosen)
    return total


def _central_moment(i: int, j: int, v, k):
    """E[a^i b^j] for centered (a, b) with variances v and covariance k (Stein's lemma recursion)."""
    if i < j:
        i, j = j, i
    if i == 0:
        return sp.S.One
    # E[a^i b^j] = (i-1) v E[a^(i-2) b^j] + j k E[a^(i-1) b^(j-1)]
    out = (i - 1) * v * _central_moment(i - 2, j, v, k) if i >= 2 else sp.S.Zero
    if j >= 1:
        out += j * k * _central_moment(i - 1, j - 1, v, k)
    return out


def _polynomial_expectation(F, G, m, v, k):
    """E[F(u_a) G(u_b)] in closed form when F and G are polynomials in u, else None."""
    if not (F.is_polynomial(u) and G.is_polynomial(u)):
        return None
    a, b = sp.Dummy("a"), sp.Dummy("b")
    poly = sp.Poly(sp.expand(F.subs(u, m + a) * G.subs(u, m + b)), a, b)
    return sp.Add(*[c * _central_moment(i, j, v, k) for (i, j), c in poly.terms()])


class Expectation(sp.Function):
    """Base of every Gaussian expectation (E1, E2, EL and the conditional laws EC, EC1): a real number, so
    commutative. sympy cannot infer that from a Lambda argument and would leave a product of expectations
    non-commutative, in the order it was built: ``a*b`` and ``b*a`` would be different expressions (missed by
    CSE, not combined in sums), and the order would follow the iteration order of sets of sympy objects, which
    Python's string hashes (``PYTHONHASHSEED``) change from process to process; the generated code then summed
    in another order, and the numbers changed in the last digits. Commutative, a product is sorted canonically."""

    is_commutative = True


class E1(Expectation):
    """E[F(u)] for u ~ N(m, v); arguments (Lambda(u, F), m, v)."""

    nargs = 3

    @classmethod
    def eval(cls, lam, m, v):
        if not isinstance(lam, sp.Lambda):  # a placeholder symbol during common-subexpression elimination
            return None
        F = integrand(lam)
        closed = _polynomial_expectation(F, sp.S.One, m, v, v)
        if closed is not None:
            return closed
        if F.func == sp.erf and F.args[0] == u:  # E[erf(u)] = erf(m / sqrt(1 + 2v))
            return sp.erf(m / sp.sqrt(1 + 2 * v))
        if v.is_zero:
            return F.subs(u, m)

    def _eval_derivative(self, s):
        # chain rule through the parameters (fdiff), plus the integrand's own dependence on s (a nested or
        # conditional expectation inside it can depend on the moments), differentiated under the integral
        out = super()._eval_derivative(s)
        (x,), body = self.args[0].variables, self.args[0].expr
        return out + E1(sp.Lambda(x, body.diff(s)), *self.args[1:]) if body.has(s) else out

    def fdiff(self, argindex=1):
        lam, m, v = self.args
        (x,), F = lam.variables, lam.expr
        if argindex == 1:  # the Lambda itself: handled in _eval_derivative
            return sp.S.Zero
        if argindex == 2:
            return E1(sp.Lambda(x, F.diff(x)), m, v)
        if argindex == 3:  # (simplify=False: sympy's factor_terms pass over a second derivative costs more than it)
            return E1(sp.Lambda(x, F.diff(x, 2, simplify=False) / 2), m, v)
        raise sp.ArgumentIndexError(self, argindex)

    def _latex(self, printer):
        F = printer._print(self.args[0](u))
        return rf"\mathbb{{E}}_{{u\sim\mathcal{{N}}({printer._print(self.args[1])},\,{printer._print(self.args[2])})}}\left[{F}\right]"

    def _sympystr(self, printer):
        lam, m, v = self.args
        return f"E[{printer._print(lam(u))}; u~N({printer._print(m)}, {printer._print(v)})]"


class E2(Expectation):
    """E[F(u_a) G(u_b)] for a correlated pair; arguments (Lambda(u, F), Lambda(u, G), m, v, k)."""

    nargs = 5

    @classmethod
    def eval(cls, lf, lg, m, v, k):
        if not (isinstance(lf, sp.Lambda) and isinstance(lg, sp.Lambda)):
            return None
        F, G = integrand(lf), integrand(lg)
        if G == 1 or F == 1:
            return E1(sp.Lambda(u, F * G), m, v)
        if k == v:  # identical copies
            return E1(sp.Lambda(u, F * G), m, v)
        closed = _polynomial_expectation(F, G, m, v, k)
        if closed is not None:
            return closed
        if sp.default_sort_key(lf) > sp.default_sort_key(lg):  # symmetric in (F, G): one canonical order
            return E2(lg, lf, m, v, k)

    def _eval_derivative(self, s):
        out = super()._eval_derivative(s)
        lf, lg, *rest = self.args
        F, G = integrand(lf), integrand(lg)
        if F.has(s):
            out += E2(sp.Lambda(u, F.diff(s)), lg, *rest)
        if G.has(s):
            out += E2(lf, sp.Lambda(u, G.diff(s)), *rest)
        return out

    def fdiff(self, argindex=1):
        lf, lg, m, v, k = self.args
        F, G = integrand(lf), integrand(lg)
        if argindex in (1, 2):
            return sp.S.Zero

        def pair(Fn, Gn):
            return E2(sp.Lambda(u, Fn), sp.Lambda(u, Gn), m, v, k)

        if argindex == 3:
            return pair(F.diff(u), G) + pair(F, G.diff(u))
        if argindex == 4:
            return (pair(F.diff(u, 2, simplify=False), G) + pair(F, G.diff(u, 2, simplify=False))) / 2
        if argindex == 5:
            return pair(F.diff(u), G.diff(u))
        raise sp.ArgumentIndexError(self, argindex)

    def _latex(self, printer):
        lf, lg, m, v, k = self.args
        F = printer._print(lf(sp.Symbol("u_a")))
        G = printer._print(lg(sp.Symbol("u_b")))
        law = rf"\mathcal{{N}}_2({printer._print(m)},\,{printer._print(v)},\,{printer._print(k)})"
        return rf"\mathbb{{E}}_{{(u_a,u_b)\sim{law}}}\left[{F}\,{G}\right]"

    def _sympystr(self, printer):
        lf, lg, m, v, k = self.args
        F = printer._print(lf(sp.Symbol("u_a")))
        G = printer._print(lg(sp.Symbol("u_b")))
        return f"E[({F})*({G}); (u_a,u_b)~N2({printer._print(m)}, {printer._print(v)}, {printer._print(k)})]"


def gaussian_expectation(F_a, F_b, mean, var, cov):
    """E[F_a(u_a) F_b(u_b)] with F_a, F_b expressions in ``u`` (1 for an absent copy)."""
    if F_b == 1:
        return E1(sp.Lambda(u, F_a), mean, var)
    if F_a == 1:
        return E1(sp.Lambda(u, F_b), mean, var)
    return E2(sp.Lambda(u, F_a), sp.Lambda(u, F_b), mean, var, cov)


class EL(Expectation):
    """E[F(L)] for L = log U, U ~ Uniform[1, T - 1] (the chrono bias of Tallec & Ollivier); args (Lambda(u, F), T).

    The density of L on [0, log(T - 1)] is e^l / (T - 2).
    """

    nargs = 2

    @classmethod
    def eval(cls, lam, T):
        if isinstance(lam, sp.Lambda) and not integrand(lam).has(u):
            return integrand(lam)

    def _eval_derivative(self, s):
        lam, T = self.args
        if T.has(s):
            raise NotImplementedError("derivative of a chrono expectation with respect to its length")
        return EL(sp.Lambda(u, integrand(lam).diff(s)), T)

    def _sympystr(self, printer):
        lam, T = self.args
        return f"E[{printer._print(lam(sp.Symbol('L')))}; L=log U, U~U[1, {printer._print(T)} - 1]]"

    def _latex(self, printer):
        lam, T = self.args
        return rf"\mathbb{{E}}_{{L=\log U,\,U\sim\mathcal{{U}}[1,{printer._print(T)}-1]}}\left[{printer._print(lam(sp.Symbol('L')))}\right]"

