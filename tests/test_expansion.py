"""The expansion into monomials (symmft.theory.expansion) against sympy's own ``sp.expand``.

Every expectation the derivation takes goes through ``Expansion.terms``; sympy's ``expand`` is the independent
reference. The two are compared as functions (evaluated at random points, 1e-12 relative: a few dozen terms of
size O(1) summed in float64), and by the monomials themselves where sympy combines like terms.
"""

from __future__ import annotations

import random

import sympy as sp

from symmft.theory.expansion import Expansion
from symmft.theory.expectation import sigmoid

x, y, z, q = sp.symbols("x y z q", real=True)
ATOMS = [x, y, z, q, sp.tanh(x + y * z), sigmoid(y), sp.exp(x + z), sp.Rational(3, 7), sp.Float(0.25), sp.sqrt(q)]


def _random_expression(rng: random.Random, depth: int) -> sp.Expr:
    if depth == 0:
        return rng.choice(ATOMS)
    a, b = _random_expression(rng, depth - 1), _random_expression(rng, depth - 1)
    kind = rng.choice(["add", "sub", "mul", "pow", "neg"])
    if kind == "add":
        return a + b
    if kind == "sub":
        return a - b
    if kind == "mul":
        return a * b
    if kind == "pow":
        return (a + b) ** 2
    return -2 * a * (1 - b)


def _from_terms(terms: dict) -> sp.Expr:
    return sp.Add(*[c * sp.Mul(*[f**k for f, k in m]) for m, c in terms.items()])


def test_the_terms_sum_to_sympys_expansion_at_random_points():
    rng = random.Random(7)
    for _ in range(25):
        e = _random_expression(rng, rng.choice([2, 3]))
        mine, reference = _from_terms(Expansion().terms(e)), sp.expand(e)
        for _ in range(3):
            point = {s: rng.uniform(0.1, 1.5) for s in (x, y, z, q)}
            a, b = complex(mine.evalf(subs=point)), complex(reference.evalf(subs=point))
            assert abs(a - b) <= 1e-12 * max(1.0, abs(b)), (e, a, b)


def test_the_monomials_are_sympys_where_sympy_combines_like_terms():
    e = (x + sp.tanh(y) * z - 1) ** 3 * (sigmoid(x) - sigmoid(x) ** 2 + q)
    terms = Expansion().terms(e)
    reference = sp.Add.make_args(sp.expand(e))
    assert set(_from_terms({m: c}) for m, c in terms.items()) == set(reference)
    assert Expansion().terms(sp.S.Zero) == {}
    assert Expansion().terms(x - x) == {}
