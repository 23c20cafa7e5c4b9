"""Expansion of polynomials in opaque factors into monomials: ``sp.expand`` without sympy's cost.

Stage: used by :class:`symmft.theory.meanfield.Derivation` (every expectation is expanded into monomials, each
factorized into independent Gaussian blocks) and :mod:`symmft.theory.conditional` (the innermost level of a
conditional law is split by its monomials).

An expression is distributed over its sums into a dict {monomial: coefficient}, a monomial being a frozenset of
(factor, integer power) pairs, with plain dict and set operations; only the factors (nonlinearities, atoms,
nested expectations: a few hundred distinct ones in a GRU Jacobian) go through ``sp.expand``, once each (sympy's
deep expansion expands inside them). The terms are those of ``sp.expand(e)``, which spent most of the GRU
Jacobian's derivation rebuilding every partial product as a sympy Mul.
"""

from __future__ import annotations

import sympy as sp


class Expansion:
    """Expands expressions, memoizing every subexpression and factor it has seen (reuse one per derivation)."""

    def __init__(self):
        self._terms: dict = {}
        self._factors: dict = {}

    def terms(self, e: sp.Expr) -> dict:
        """{monomial: coefficient} of ``e`` expanded: the terms of ``sp.expand(e)``, each ``coefficient *
        prod(factor**power for factor, power in monomial)`` (memoized: subexpressions recur across expectations)."""
        if e in self._terms:
            return self._terms[e]
        if e.is_Number:
            out = {_ONE: e} if e != 0 else {}
        elif e.is_Add:
            out = {}
            for a in e.args:
                for m, c in self.terms(a).items():
                    out[m] = out.get(m, 0) + c
            out = {m: c for m, c in out.items() if c != 0}
        elif e.is_Mul:
            out = {_ONE: sp.S.One}
            for a in e.args:
                out = _product(out, self.terms(a))
        elif e.is_Pow and e.exp.is_Integer and e.exp > 0 and (e.base.is_Add or e.base.is_Mul):
            out, base = {_ONE: sp.S.One}, self.terms(e.base)
            for _ in range(int(e.exp)):
                out = _product(out, base)
        else:
            base, power = (e.base, int(e.exp)) if e.is_Pow and e.exp.is_Integer else (e, 1)
            if base not in self._factors:
                self._factors[base] = sp.expand(base)
            x = self._factors[base]
            if x == base or not (x.is_Add or x.is_Mul or x.is_Pow or x.is_Number):
                out = {frozenset({(x, power)}): sp.S.One}
            else:  # expanding inside the factor changed its kind (exp(a + b) -> exp(a)*exp(b))
                out = self.terms(x**power)
        self._terms[e] = out
        return out


_ONE = frozenset()  # the empty monomial


def _product(a: dict, b: dict) -> dict:
    out: dict = {}
    for ma, ca in a.items():
        for mb, cb in b.items():
            if not ma or not mb:
                m = ma or mb
            else:
                powers = dict(ma)
                for x, k in mb:
                    powers[x] = powers.get(x, 0) + k
                m = frozenset((x, k) for x, k in powers.items() if k)
            out[m] = out.get(m, 0) + ca * cb
    return {m: c for m, c in out.items() if c != 0}
