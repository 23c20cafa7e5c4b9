"""The numeric maps against outside truth: mpmath at 30 digits, exact erf closed forms, the classical vanilla RNN."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from scipy import integrate, optimize

from symmft import load_cell, analyze, derive
from symmft.theory.compile import compile_map

from tolerances import CLASSICAL, QUADRATURE_VS_MPMATH

RNG = np.random.default_rng(20261126)
#: The maps held to mpmath here are the moment closure's, as before the exact conditional law became the default:
#: the mpmath backend evaluates a conditional law by nested adaptive 40-digit quadrature (minutes per expectation
#: for the GRU's fixed-point map, and it refuses the 4-level two-sequence law). For every cell but the reset-after
#: GRU the maps are the default's; the GRU's exact law is held to an independent reference in test_laws.py.
MPMATH_CLOSURE = "gaussian"


def random_point(cell, rng):
    """Hyperparameters from a box with large input variances (up to 40) and biases of either sign."""
    h = {}
    for name in cell.hyperparameter_names():
        if name.startswith("sigma2_"):
            h[name] = rng.choice([0.1, 2.0, 30.0, 40.0])
        elif name.startswith("nu2_"):
            h[name] = rng.uniform(0.1, 3.0)
        elif name.startswith("mu_"):
            h[name] = rng.uniform(-2.0, 2.0)
        else:
            h[name] = rng.uniform(0.0, 0.5)
    h["q_x"], h["c_x"] = rng.uniform(0.5, 1.5), rng.choice([0.3, 0.999, 1 - 1e-6])
    return h


def relative_error(a, b, floor=1e-3):
    return abs(float(a) - float(b)) / max(abs(float(b)), floor)


def random_keys(mf, rng, rho):
    """Previous-state moments: small means, second moments O(1), cross moments at correlation rho."""
    d = [0.1 * rng.uniform(-1, 1) if k.name.startswith("M") else rng.uniform(0.2, 2.0) for k in mf.diagonal]
    names = [k.name for k in mf.diagonal]
    return d, [rho * d[names.index("Q" + k.name[1:])] for k in mf.cross]


def compare_with_mpmath(mf, h, d, c, parts):
    """Evaluate ``parts`` of the compiled map with numpy and with mpmath at 30 digits; assert 1e-10."""
    numeric, reference = compile_map(mf, "numpy"), compile_map(mf, "mpmath", dps=30)

    def evaluate(m, d, c, h):
        out = []
        if "diagonal" in parts:
            out += list(m.diagonal(d, h)) + [x for row in m.diagonal_jacobian(d, h)[1] for x in row]
        if "cross" in parts:
            out += list(m.cross(d, c, h))
        if "cross_jacobian" in parts:
            out += [x for row in m.cross_jacobian(d, c, h)[1] for x in row]
        return out

    got = evaluate(numeric, d, c, h)
    with mpmath.workdps(30):
        mp = lambda xs: [mpmath.mpf(float(v)) for v in xs]
        want = evaluate(reference, mp(d), mp(c), {k: mpmath.mpf(float(v)) for k, v in h.items()})
    for g, w in zip(got, want):
        assert relative_error(g, w) <= QUADRATURE_VS_MPMATH, (h, d, c, float(g), float(w))


@pytest.mark.parametrize("name", ["lstm", "gru", "gru_reset_before", "minimal_rnn", "vanilla_rnn"])
def test_numpy_diagonal_maps_and_jacobians_match_mpmath_across_box(name):
    """Diagonal maps and their Jacobians (1-D expectations) at random points with input variances up to 40."""
    cell = load_cell(name)
    mf = derive(cell, MPMATH_CLOSURE)
    rng = np.random.default_rng(sum(map(ord, name)))
    for _ in range(3):
        d, c = random_keys(mf, rng, 1.0)
        compare_with_mpmath(mf, random_point(cell, rng), d, c, ("diagonal",))


#: Cross maps (2-D expectations) at correlations from 0.5 to 1 - 1e-6. The 30-digit mpmath quadrature costs
#: seconds per 2-D expectation (20-40 s a point on 2 cores at moderate correlation), so the default run takes the
#: two points nearest unit correlation, where numpy's quadrature is hardest (a few seconds each); `pytest -m slow`
#: adds the moderate correlations, the remaining cells and the full box. The Gaussian expectations at any
#: correlation are also checked against closed forms in test_gaussian.py.
CROSS_CASES = [
    pytest.param("vanilla_rnn", 0.5, ("cross", "cross_jacobian"), marks=pytest.mark.slow),
    ("vanilla_rnn", 1 - 1e-6, ("cross", "cross_jacobian")),
    pytest.param("gru_reset_before", 0.999, ("cross",), marks=pytest.mark.slow),
    ("lstm", 1 - 1e-6, ("cross",)),
    pytest.param("minimal_rnn", 0.9, ("cross",), marks=pytest.mark.slow),
    pytest.param("gru", 0.99, ("cross",), marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,rho,parts", CROSS_CASES)
def test_numpy_cross_maps_match_mpmath_up_to_unit_correlation(name, rho, parts):
    cell = load_cell(name)
    mf = derive(cell, MPMATH_CLOSURE)
    rng = np.random.default_rng(sum(map(ord, name)) + int(rho * 1e6))
    d, c = random_keys(mf, rng, rho)
    compare_with_mpmath(mf, random_point(cell, rng), d, c, parts)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lstm", "gru", "gru_reset_before", "minimal_rnn", "vanilla_rnn"])
def test_numpy_maps_match_mpmath_full_box(name):
    cell = load_cell(name)
    mf = derive(cell, MPMATH_CLOSURE)
    rng = np.random.default_rng(7 + sum(map(ord, name)))
    for rho in (0.3, 0.999, 1 - 1e-6):
        d, c = random_keys(mf, rng, rho)
        compare_with_mpmath(mf, random_point(cell, rng), d, c, ("diagonal", "cross", "cross_jacobian"))


@pytest.mark.parametrize("name", ["lstm", "vanilla_rnn"])
def test_numpy_fixed_point_and_lambda_match_mpmath(name):
    """Whole pipeline (Newton fixed point, eigenvalue) at a large-variance point with identical inputs."""
    cell = load_cell(name)
    h = {n: 30.0 for n in cell.hyperparameter_names() if n.startswith("sigma2_")}
    h.update({n: 0.8 for n in cell.hyperparameter_names() if n.startswith("nu2_")})
    h.update({n: 0.5 for n in cell.hyperparameter_names() if n.startswith("mu_")})
    fast = analyze(cell, h)
    ref = analyze(cell, h, backend="mpmath", dps=30)
    assert int(fast.status) == 0 and int(ref.status) == 0
    for key in fast.fixed_point:
        assert relative_error(fast.fixed_point[key], ref.fixed_point[key]) <= QUADRATURE_VS_MPMATH, key
    assert relative_error(fast.lambda_, ref.lambda_) <= QUADRATURE_VS_MPMATH


ERF_CELL = '''
STATE = ("h",)


def step(x, h, ops):
    return ops.erf(ops.affine("h", x, h))
'''


def erf_theory(sigma2, nu2, rho2, c_x):
    """Exact erf-network recursions: E[erf(u_a) erf(u_b)] = (2/pi) asin(2k / (1 + 2v)) for centered u."""
    v = lambda q: sigma2 + nu2 * q + rho2
    k = lambda q, c: sigma2 * c_x + nu2 * c + rho2
    q_star = optimize.brentq(lambda q: 2 / np.pi * np.arcsin(2 * v(q) / (1 + 2 * v(q))) - q, 1e-12, 1.0, xtol=1e-15)
    cross = lambda c: 2 / np.pi * np.arcsin(2 * k(q_star, c) / (1 + 2 * v(q_star)))
    c_star = q_star if c_x == 1 else optimize.brentq(lambda c: cross(c) - c, -q_star, q_star, xtol=1e-15)
    z = 2 * k(q_star, c_star) / (1 + 2 * v(q_star))
    lam = 2 / np.pi * 2 * nu2 / (1 + 2 * v(q_star)) / np.sqrt(1 - z * z)
    return q_star, c_star / q_star, lam


@pytest.mark.parametrize("c_x", [1.0, 0.4])
def test_erf_cell_matches_exact_arcsine_closed_form(tmp_path, c_x):
    path = tmp_path / "erf_rnn.py"
    path.write_text(ERF_CELL)
    cell = load_cell(path)
    h = {"sigma2_h": 0.3, "nu2_h": 0.9, "rho2_h": 0.05, "c_x": c_x}
    a = analyze(cell, h)
    q, c, lam = erf_theory(0.3, 0.9, 0.05, c_x)
    assert relative_error(a.fixed_point["Q_h"], q) <= 1e-11
    assert abs(float(a.correlation["h"]) - c) <= 1e-11
    assert relative_error(a.lambda_, lam) <= 1e-9  # at c_x = 1, 1/sqrt(1 - z^2) amplifies brentq's error


def tanh_prime_squared(q):
    return integrate.quad(lambda z: (1 - np.tanh(np.sqrt(q) * z) ** 2) ** 2 * np.exp(-z * z / 2) / math.sqrt(2 * math.pi), -40, 40, epsabs=1e-14, epsrel=1e-13, limit=200)[0]


def vanilla_q_star(sigma2, nu2, rho2):
    """The classical q* = sigma2 + rho2 + nu2 E[tanh(sqrt(q*) z)^2] (zero bias mean), by quad and brentq."""
    e = lambda q: integrate.quad(lambda z: np.tanh(np.sqrt(q) * z) ** 2 * np.exp(-z * z / 2) / math.sqrt(2 * math.pi), -40, 40, epsabs=1e-14, epsrel=1e-13, limit=200)[0]
    return optimize.brentq(lambda q: sigma2 + rho2 + nu2 * e(q) - q, 1e-12, 1e3, xtol=1e-14)


@pytest.mark.parametrize("nu2,sigma2,rho2", [(0.5, 0.5, 0.0), (1.5, 0.2, 0.1), (3.0, 1.0, 0.3)])
def test_vanilla_lambda_is_classical_chi1(nu2, sigma2, rho2):
    a = analyze(load_cell("vanilla_rnn"), {"nu2_h": nu2, "sigma2_h": sigma2, "rho2_h": rho2})
    q_pre = vanilla_q_star(sigma2, nu2, rho2)  # pre-activation variance at the fixed point
    assert relative_error(sigma2 + rho2 + nu2 * float(a.fixed_point["Q_h"]), q_pre) <= CLASSICAL
    assert relative_error(a.lambda_, nu2 * tanh_prime_squared(q_pre)) <= CLASSICAL


def test_vanilla_without_input_is_critical_at_unit_recurrent_variance():
    """sigma2 = rho2 = 0: q* = 0 below nu2 = 1, where chi_1 = nu2 exactly; past it the c* = 1 point is unstable."""
    cell = load_cell("vanilla_rnn")
    for nu2 in (0.5, 0.9):
        a = analyze(cell, {"nu2_h": nu2, "sigma2_h": 0.0})
        assert abs(float(a.lambda_) - nu2) <= 1e-6, (nu2, a.lambda_)  # q* ~ 0 up to the Newton tolerance
    a = analyze(cell, {"nu2_h": 1.5, "sigma2_h": 0.0})
    assert float(a.fixed_point["Q_h"]) > 0.1 and abs(float(a.correlation["h"])) < 1e-6  # chaotic: c* = 0


@pytest.mark.parametrize("rho2", [0.01, 0.05, 0.2])
def test_vanilla_critical_line_matches_classical_condition(rho2):
    """On the order-to-chaos line found from symmft's chi_1, nu2 E[tanh'(sqrt(q*) z)^2] = 1 with q* from quad."""
    cell = load_cell("vanilla_rnn")
    chi = lambda nu2: float(analyze(cell, {"nu2_h": nu2, "sigma2_h": 0.0, "rho2_h": rho2}).extras["chi_1"]) - 1.0
    nu2 = optimize.brentq(chi, 0.5, 4.0, xtol=1e-13)
    q_pre = vanilla_q_star(0.0, nu2, rho2)
    assert abs(nu2 * tanh_prime_squared(q_pre) - 1.0) <= 1e-8


SQUARE_CELL = '''
STATE = ("h",)


def step(x, h, ops):
    f = ops.sigmoid(ops.affine("f", x))
    return f * f * h + ops.affine("g", x)
'''


def test_squared_gate_enters_the_map_as_its_second_moment(tmp_path):
    """h' = f^2 h + u_g with input-only maps: Q' = E[f^4] Q + V_g exactly; E[f^4] by quad in the test."""
    path = tmp_path / "square.py"
    path.write_text(SQUARE_CELL)
    a = analyze(load_cell(path), {"sigma2_f": 2.0, "mu_f": 0.5, "sigma2_g": 0.3})
    f4 = integrate.quad(lambda z: (1 / (1 + np.exp(-(0.5 + np.sqrt(2.0) * z)))) ** 4 * np.exp(-z * z / 2) / math.sqrt(2 * math.pi), -40, 40, epsabs=1e-14)[0]
    assert relative_error(a.fixed_point["Q_h"], 0.3 / (1 - f4)) <= 1e-10


def test_a_point_whose_correlation_map_fails_keeps_its_fixed_point():
    """Cut the Newton budget so the chaotic point's cross map stops short (1 iteration after the plain steps) while
    its diagonal map has converged: status CROSS_NOT_CONVERGED, the fixed point equals the one a full solve finds,
    c*, lambda and xi are NaN, and the batch's other points are unaffected."""
    from symmft.errors import Status

    cell = load_cell("vanilla_rnn")
    h = {"nu2_h": np.array([0.5, 3.0]), "sigma2_h": 0.0, "rho2_h": 0.01}  # ordered, chaotic (chi_1 > 1)
    short, full = analyze(cell, h, max_iterations=2), analyze(cell, h)
    assert list(full.status) == [Status.OK, Status.OK]
    assert list(short.status) == [Status.OK, Status.CROSS_NOT_CONVERGED]
    np.testing.assert_allclose(short.fixed_point["Q_h"], full.fixed_point["Q_h"], rtol=1e-12)
    assert np.isnan(short.xi[1]) and np.isnan(short.correlation["h"][1]) and short.extras["chi_1"][1] > 1
    assert short.xi[0] == pytest.approx(full.xi[0], rel=1e-12)
