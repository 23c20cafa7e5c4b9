"""The exact law of a nonlinearity whose argument is Gaussian given other gate values (docs/laws.md).

Stage: used by :class:`symmft.theory.meanfield.Derivation` under the ``exact`` closure; its nested ``E1`` terms
are compiled by :mod:`symmft.theory.compile` (one leading node axis per level, ``gaussian.expect1_nodewise``).

An argument X built from affine outputs only (no previous state, no other non-Gaussian quantity) splits as

    X = o(c) + sum_j a_j(c) g_j

where the *linear* atoms g_j enter X linearly with coefficients a_j free of every linear atom, and the
*conditioning* atoms c are the rest (the reset-after GRU: X = u_n + r(u_r) u_hn, g = (u_n, u_hn), c = (u_r,)).
Every atom is an independent Gaussian (mean m, variance V, cross covariance K between the two input sequences),
so given c the argument is Gaussian:

    X | c ~ N(o(c) + sum a_j(c) m_j,  sum a_j(c)^2 V_j),    Cov(X_a, X_b | c_a, c_b) = sum a_j(c_a) a_j(c_b) K_j.

One copy:   E[F(X)] = E_c[ E1(F, mean(c), var(c)) ]                              (k + 1 nested levels)
Two copies: E[F(X_a) G(X_b)] = E_{c_a} E_{c_b | c_a} E_{X_a | c} [ F(X_a) E1(G, X_b | X_a, c) ]  (2k + 2 levels)

with the Gaussian conditionals c_b | c_a ~ N(m + (K/V)(c_a - m), (V - K)(V + K)/V) and
X_b | X_a ~ N(mean_b + beta (X_a - mean_a), var_b - beta cov), beta = cov/var_a. Nothing is approximated: the
only error is the quadrature's (gaussian.py, ~1e-12 per level). Every level binds its own integration variable
(expectation.LEVELS) because an inner level's parameters hold the outer levels' values.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symmft import cache
from symmft.theory.expansion import Expansion
from symmft.theory.expectation import E1, LEVELS, Expectation, u

#: The laws a nonlinearity's expectations can use, as the output names them (docs/laws.md).
EXACT_GAUSSIAN = "exact Gaussian"  # a function of one affine output, or of a sum of independent ones
EXACT_CONDITIONAL = "exact conditional"  # Gaussian given other gate values: nested quadrature
POPULATION = "population (Monte Carlo, ±se)"
MOMENT_CLOSURE = "Gaussian moment closure (approx)"
#: on a grid (closure "exact-diagonal"): exact for the fixed point, the moment closure for c* and lambda
EXACT_FIXED_POINT = "exact conditional for the fixed point; Gaussian moment closure for c*, lambda (approx)"
LAWS = (EXACT_GAUSSIAN, EXACT_CONDITIONAL, POPULATION, MOMENT_CLOSURE, EXACT_FIXED_POINT)
APPROXIMATE = frozenset({MOMENT_CLOSURE, EXACT_FIXED_POINT})

#: Added to a variance that divides (a regression slope K/V): V = 0 (a gate with no variance) gives slope 0 and
#: conditional variance 0, the right limit; for V > 0 the shift is far below float64 rounding.
_TINY = sp.Float(1e-300)


@dataclass(frozen=True)
class ConditionalLaw:
    """X = offset + sum coefficient_j * linear_j, every symbol an a-copy affine atom (see the module docstring)."""

    conditioning: tuple[sp.Symbol, ...]
    linear: tuple[sp.Symbol, ...]
    coefficients: tuple[sp.Expr, ...]
    offset: sp.Expr


def decompose(arg: sp.Expr, affine_atoms) -> ConditionalLaw | None:
    """The conditional law of ``arg`` (a-copy), or None if it holds anything but affine atoms."""
    atoms = sorted(arg.free_symbols, key=lambda a: a.name)
    if not atoms or any(a not in affine_atoms for a in atoms):
        return None
    linear: list[sp.Symbol] = []
    for a in atoms:  # greedily: linear in a, with a coefficient free of the linear atoms chosen (and vice versa)
        slope = arg.diff(a)
        if slope.has(a) or slope.has(*linear) or any(arg.diff(g).has(a) for g in linear):
            continue
        linear.append(a)
    conditioning = tuple(a for a in atoms if a not in linear)
    if len(conditioning) > len(LEVELS) // 2 - 1:  # 2k + 2 nested levels for the cross moment
        return None
    return ConditionalLaw(
        conditioning=conditioning,
        linear=tuple(linear),
        coefficients=tuple(arg.diff(g) for g in linear),
        offset=arg.xreplace({g: 0 for g in linear}),
    )


def classify(arg: sp.Expr, affine_atoms, closure: str) -> str:
    """The law of a nonlinearity of ``arg`` (a-copy) under ``closure`` (a map closure, or "population")."""
    if closure == "population":
        return POPULATION
    atoms = arg.free_symbols
    if len(atoms) <= 1 and atoms <= set(affine_atoms):
        return EXACT_GAUSSIAN
    law = decompose(arg, affine_atoms)
    if law is not None and not law.conditioning:
        return EXACT_GAUSSIAN  # a linear combination of independent Gaussians: every closure is exact
    if law is None or closure == "gaussian":
        return MOMENT_CLOSURE
    return EXACT_CONDITIONAL if closure == "exact" else EXACT_FIXED_POINT


def expectation(law: ConditionalLaw, F: sp.Expr, G: sp.Expr, atom_law) -> sp.Expr:
    """E[F(X_a) G(X_b)] (F, G in ``u``; 1 for an absent copy) under ``law``; ``atom_law(atom)`` gives an atom's
    (mean, variance, cross covariance)."""
    if F == 1:
        F, G = G, F
    if F == 1:
        return sp.S.One
    k = len(law.conditioning)
    t = LEVELS[:k]
    at = dict(zip(law.conditioning, t))
    structure = sp.Lambda(t, sp.Tuple(law.offset.xreplace(at), *[c.xreplace(at) for c in law.coefficients]))
    if G == 1:  # one copy: E_c[E1(F, mean(c), var(c))], k + 1 levels, kept whole (EC1) until compiled
        return EC1(
            sp.Lambda((*t, LEVELS[k]), F.xreplace({u: LEVELS[k]})),
            structure,
            sp.Tuple(*[p for c in law.conditioning for p in atom_law(c)[:2]]),
            sp.Tuple(*[p for g in law.linear for p in atom_law(g)[:2]]),
        )
    x, y = LEVELS[2 * k], LEVELS[2 * k + 1]
    return EC(
        sp.Lambda((*t, *LEVELS[k : 2 * k], x, y), F.xreplace({u: x}) * G.xreplace({u: y})),
        structure,
        sp.Tuple(*[p for c in law.conditioning for p in atom_law(c)]),
        sp.Tuple(*[p for g in law.linear for p in atom_law(g)]),
    )


def _means_and_variances(laws: sp.Tuple) -> sp.Tuple:
    """(m_1, V_1, m_2, V_2, ...) of flattened (mean, variance, cross covariance) triples."""
    return sp.Tuple(*[p for i in range(0, len(laws), 3) for p in laws[i : i + 2]])


class EC(Expectation):
    """E[H(c_a, c_b, X_a, X_b)] for an argument X Gaussian given conditioning atoms c (two input sequences).

    Arguments: Lambda((t_1..t_k, s_1..s_k, x, y), H); Lambda((t_1..t_k), (offset, a_1..a_J)) giving
    X = offset + sum a_j g_j at c = t; the conditioning atoms' (mean, variance, cross covariance), flattened; the
    linear atoms' likewise. Kept whole while sympy differentiates it (Price's theorem on the joint Gaussian law, one
    new EC per derivative: see :meth:`_eval_derivative`), then expanded into nested ``E1`` levels for the code
    generator (:meth:`nested`).
    """

    nargs = 4

    @classmethod
    def eval(cls, lam, structure, cond, lin):
        # identical copies (every atom's cross covariance is its variance: C = Q and c_x = 1): c_b = c_a and
        # X_b = X_a, so the law is one sequence's, k + 1 levels instead of 2k + 2 (the limit the nested levels
        # reach with zero conditional variances, there at the cost of 2k + 2 levels of nodes)
        if not isinstance(lam, sp.Lambda) or any(a[2::3] != a[1::3] for a in (cond, lin)):
            return None
        k = len(cond) // 3
        t, s, x, y = LEVELS[:k], LEVELS[k : 2 * k], LEVELS[2 * k], LEVELS[2 * k + 1]
        H = lam.expr.xreplace({**dict(zip(s, t)), x: LEVELS[k], y: LEVELS[k]})
        return EC1(sp.Lambda((*t, LEVELS[k]), H), structure, _means_and_variances(cond), _means_and_variances(lin))

    def _parts(self):
        lam, structure, cond, lin = self.args
        k = len(cond) // 3
        t, s = LEVELS[:k], LEVELS[k : 2 * k]
        x, y = LEVELS[2 * k], LEVELS[2 * k + 1]
        offset, *coef = structure(*t)
        coef_s = [c.xreplace(dict(zip(t, s))) for c in coef]
        lin_m, lin_v, lin_k = lin[0::3], lin[1::3], lin[2::3]
        ma = offset + sp.Add(*[a * m for a, m in zip(coef, lin_m)])
        va = sp.Add(*[a**2 * v for a, v in zip(coef, lin_v)])
        mb, vb = ma.xreplace(dict(zip(t, s))), va.xreplace(dict(zip(t, s)))
        cov = sp.Add(*[a * b * kk for a, b, kk in zip(coef, coef_s, lin_k)])
        return lam.expr, t, s, x, y, coef, coef_s, ma, va, mb, vb, cov

    def _eval_derivative(self, theta):
        lam, structure, cond, lin = self.args
        H, t, s, x, y, coef, coef_s, ma, va, mb, vb, cov = self._parts()

        def D(H, c, mean, var):  # d/dc of E[H | c] through H and the law of (x, y) given c (heat equation)
            dx = x if mean is ma else y
            return (H.diff(c) + mean.diff(c) * H.diff(dx) + var.diff(c) * H.diff(dx, 2, simplify=False) / 2
                    + cov.diff(c) * H.diff(x, y, simplify=False))

        new = H.diff(theta)
        for i, (ti, si) in enumerate(zip(t, s)):
            dm, dv, dk = (p.diff(theta) for p in cond[3 * i : 3 * i + 3])
            Dt, Ds = (lambda H: D(H, ti, ma, va)), (lambda H: D(H, si, mb, vb))
            new += dm * (Dt(H) + Ds(H)) + dv * (Dt(Dt(H)) + Ds(Ds(H))) / 2 + dk * Ds(Dt(H))
        for j, (a, b) in enumerate(zip(coef, coef_s)):
            dm, dv, dk = (p.diff(theta) for p in lin[3 * j : 3 * j + 3])
            new += (dm * (a * H.diff(x) + b * H.diff(y))
                    + dv * (a**2 * H.diff(x, 2, simplify=False) + b**2 * H.diff(y, 2, simplify=False)) / 2
                    + dk * a * b * H.diff(x, y, simplify=False))
        return EC(sp.Lambda(lam.variables, new), structure, cond, lin) if new != 0 else sp.S.Zero

    def nested(self) -> sp.Expr:
        """The nested E1 levels: c_a; c_b | c_a; X_a | c_a; X_b | X_a, c_a, c_b (module docstring); memoized (the
        code generator asks for the same law in the map and in its Jacobian)."""
        if self not in _NESTED:
            _NESTED[self] = self._nested()
        return _NESTED[self]

    def _nested(self) -> sp.Expr:
        cond = self.args[2]
        H, t, s, x, y, coef, coef_s, ma, va, mb, vb, cov = self._parts()
        beta = cov / (va + _TINY)
        # H = sum_k A_k(c_a, c_b) F_k(X_a) G_k(X_b): each distinct pair (F_k, G_k) is one two-level expectation
        # over (X_a, X_b) given c, and the coefficients A_k are evaluated on the conditioning atoms' nodes only (the
        # code generator then evaluates every pair, and every G, of one law on shared nodes: share_nodes)
        pairs: dict = {}
        for monomial, coefficient in Expansion().terms(H).items():
            F = sp.Mul(*[f**k for f, k in monomial if f.has(x) and not f.has(y)])
            G = sp.Mul(*[f**k for f, k in monomial if f.has(y)])
            A = sp.Mul(coefficient, *[f**k for f, k in monomial if not f.has(x) and not f.has(y)])
            pairs[F, G] = pairs.get((F, G), sp.S.Zero) + A
        body = sp.S.Zero
        for (F, G), A in pairs.items():
            inner = E1(sp.Lambda(y, G), mb + beta * (x - ma), vb - beta * cov)
            body += A * E1(sp.Lambda(x, F * inner), ma, va)
        for i in reversed(range(len(t))):
            m, v, kk = cond[3 * i : 3 * i + 3]
            slope = kk / (v + _TINY)
            body = E1(sp.Lambda(s[i], body), m + slope * (t[i] - m), (v - kk) * (v + kk) / (v + _TINY))
        for i in reversed(range(len(t))):
            body = E1(sp.Lambda(t[i], body), cond[3 * i], cond[3 * i + 1])
        return body

    def _sympystr(self, printer):
        return f"E_conditional[{printer._print(self.args[0].expr)}]"


_NESTED = cache.memory("nested conditional laws")


class EC1(Expectation):
    """E[H(c, X)] for an argument X Gaussian given conditioning atoms c (one input sequence): the one-copy
    counterpart of :class:`EC`.

    Arguments: Lambda((t_1..t_k, x), H); Lambda((t_1..t_k), (offset, a_1..a_J)) giving X = offset + sum a_j g_j at
    c = t; the conditioning atoms' (mean, variance), flattened; the linear atoms' likewise. Differentiated by
    Price's theorem on the joint Gaussian law, one new EC1 with one integrand per derivative
    (:meth:`_eval_derivative`): for a linear atom d/dm_j E[H] = E[a_j dH/dX], d/dV_j E[H] = E[a_j^2 d^2H/dX^2]/2;
    for a conditioning atom d/dm_c E[H] = E[D H], d/dV_c E[H] = E[D D H]/2 with D H = dH/dc + mean' dH/dX +
    var'/2 d^2H/dX^2, the derivative of E[H | c] through H and the law of X given c (heat equation). Sympy's
    chain rule through the nested levels instead gives one inner expectation per term (21 in the GRU's diagonal
    Jacobian). Expanded into nested ``E1`` levels for the code generator (:meth:`nested`).
    """

    nargs = 4

    def _parts(self):
        lam, structure, cond, lin = self.args
        k = len(cond) // 2
        t, x = LEVELS[:k], LEVELS[k]
        offset, *coef = structure(*t)
        mean = offset + sp.Add(*[a * m for a, m in zip(coef, lin[0::2])])
        var = sp.Add(*[a**2 * v for a, v in zip(coef, lin[1::2])])
        return lam.expr, t, x, coef, mean, var

    def _eval_derivative(self, theta):
        lam, structure, cond, lin = self.args
        H, t, x, coef, mean, var = self._parts()

        def D(H, c):  # d/dc of E[H | c] through H and the law of X given c (heat equation)
            return H.diff(c) + mean.diff(c) * H.diff(x) + var.diff(c) * H.diff(x, 2, simplify=False) / 2

        new = H.diff(theta)
        for i, ti in enumerate(t):
            dm, dv = cond[2 * i].diff(theta), cond[2 * i + 1].diff(theta)
            if dm != 0 or dv != 0:
                DH = D(H, ti)
                new += dm * DH + dv * D(DH, ti) / 2
        for j, a in enumerate(coef):
            dm, dv = lin[2 * j].diff(theta), lin[2 * j + 1].diff(theta)
            new += dm * a * H.diff(x) + dv * a**2 * H.diff(x, 2, simplify=False) / 2
        return EC1(sp.Lambda(lam.variables, new), structure, cond, lin) if new != 0 else sp.S.Zero

    def nested(self) -> sp.Expr:
        """The nested E1 levels: c, then X | c (the innermost, whose integrand the code generator splits into
        functions of X times coefficients of c: ``printing.Printer.share_nodes``)."""
        H, t, x, coef, mean, var = self._parts()
        cond = self.args[2]
        body = E1(sp.Lambda(x, H), mean, var)
        for i in reversed(range(len(t))):
            body = E1(sp.Lambda(t[i], body), cond[2 * i], cond[2 * i + 1])
        return body

    def _sympystr(self, printer):
        return f"E_conditional[{printer._print(self.args[0].expr)}]"


def expand(e: sp.Expr) -> sp.Expr:
    """``e`` with every :class:`EC` and :class:`EC1` replaced by its nested E1 levels (for the code generator)."""
    if not e.has(EC, EC1):
        return e
    return e.xreplace({f: f.nested() for f in e.atoms(EC, EC1)})
