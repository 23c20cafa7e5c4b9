"""Empirical Jacobian spectra against independent truth: finite differences of the simulator's own step, the
LSTM formula of docs/theory.md §3 written out by hand from the network's stored matrices, and random-matrix facts
(an orthogonal U has one singular value; a Gaussian U's squared singular values have Marchenko-Pastur second
moment 2 + 1/n; P_t = (cU)^t with U orthogonal has |P v|^2 = c^(2t) for every unit v)."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from symmft import load_cell, CellDefinitionError, HyperparameterError, Network, empirical_jacobian_moments
from symmft.network.spectrum import jacobian, jacobian_product_growth, jacobian_states, primary_states

# Tolerances, each with its reason.
#: Forward mode vs central differences with step 1e-6 in float64: truncation ~eps^2 |f'''| ~ 1e-12, rounding
#: ~1e-16/eps ~ 1e-10 per entry.
FINITE_DIFFERENCE = 1e-8
#: Forward mode vs the same closed form evaluated another way: only rounding (n <= 100 terms of size <= 1).
EXACT = 1e-12
#: m2/m1^2 of D U with D = tanh'(mu + O(sqrt(nu2))) at nu2 = 1e-6: the diagonal varies by ~1e-3 relative, so
#: m2/m1^2 - 1 = var(D^2)/<D^2>^2 ~ 1e-6 for orthogonal U.
ISOMETRY = 1e-4
#: Marchenko-Pastur at n = 500: E m2/m1^2 = 2 + 1/n; one draw's tr(W^2)/n fluctuates by ~2/n, so 0.02 is ~ 5 sigma.
MARCHENKO_PASTUR = 0.02

#: Standard deviation of the fitted log-growth slope of one 60-step untied vanilla-RNN trajectory at n = 200,
#: measured over 6 seeds (0.010; 0.021 at 25 steps).
SLOPE_SPREAD = 0.010

#: vanilla RNN with no input and no bias noise: u = U h + mu, so with tiny nu2 the diagonal tanh'(u) is ~constant.
QUIET = {"sigma2_h": 0.0, "rho2_h": 0.0, "mu_h": 0.5, "nu2_h": 1e-6}


def run(net: Network, steps: int, seed: int = 1):
    """States s_{t-2} after ``steps`` simulator steps from zero, and the next two inputs x_{t-1}, x_t."""
    rng = np.random.default_rng(seed)
    states = {s: np.zeros((net.width, 1)) for s in net.cell.states}
    for _ in range(steps):
        states = net.step(rng.standard_normal((net.input_dim, 1)), states)
    return {s: v[:, 0].copy() for s, v in states.items()}, rng.standard_normal(net.input_dim), \
        rng.standard_normal(net.input_dim)


def finite_difference_full_jacobian(net: Network, x: np.ndarray, states: dict, eps: float = 1e-6) -> np.ndarray:
    """d(stacked new states)/d(stacked old states) by central differences of ``Network.step`` (the cell's own
    step function run by the simulator): all 2N perturbed copies go through one step as columns."""
    names, n = net.cell.states, net.width
    N = len(names) * n
    base = np.concatenate([states[s] for s in names])
    cols = np.repeat(base[:, None], 2 * N, axis=1)
    cols[np.arange(N), np.arange(N)] += eps
    cols[np.arange(N), N + np.arange(N)] -= eps
    new = net.step(np.repeat(x[:, None], 2 * N, axis=1), {s: cols[k * n:(k + 1) * n] for k, s in enumerate(names)})
    out = np.concatenate([new[s] for s in names])
    return (out[:, :N] - out[:, N:]) / (2 * eps)


def test_primary_states_are_read_from_the_graph():
    assert primary_states("lstm") == ("c",)
    for name in ("vanilla_rnn", "gru", "gru_reset_before", "minimal_rnn"):
        assert primary_states(name) == ("h",)
    assert jacobian_states(load_cell("lstm"), "full") == ("c", "h")


def test_vanilla_jacobian_matches_finite_differences_of_tanh_map():
    hp = {"nu2_h": 1.5, "sigma2_h": 0.5, "rho2_h": 0.1}
    net = Network("vanilla_rnn", hp, width=60, tied=True, rng=3)
    s, x_prev, x = run(net, 5)
    h = net.step(x_prev[:, None], {"h": s["h"][:, None]})["h"][:, 0]  # h_{t-1}
    W, U, b = net.matrices["h", "x"], net.matrices["h", "h"], net.biases["h"][:, 0]
    f = lambda v: np.tanh(W @ x + U @ v + b)  # noqa: E731
    eps, eye = 1e-6, np.eye(60)
    fd = np.stack([(f(h + eps * e) - f(h - eps * e)) / (2 * eps) for e in eye], axis=1)
    for kind in ("memory", "full"):
        np.testing.assert_allclose(jacobian(net, x_prev, x, s, kind=kind), fd, atol=FINITE_DIFFERENCE, rtol=0)


@pytest.mark.parametrize("name", ["lstm", "gru", "minimal_rnn"])
def test_full_jacobian_matches_finite_differences_of_simulator_step(name):
    net = Network(name, {"mu_f": 1.0} if name == "lstm" else None, width=40, tied=True, rng=4)
    s, x_prev, x = run(net, 6)
    s1 = {k: v[:, 0] for k, v in net.step(x_prev[:, None], {k: v[:, None] for k, v in s.items()}).items()}
    fd = finite_difference_full_jacobian(net, x, s1)
    np.testing.assert_allclose(jacobian(net, x_prev, x, s, kind="full"), fd, atol=FINITE_DIFFERENCE, rtol=0)


def test_lstm_memory_jacobian_matches_theory_formula():
    """docs/theory.md §3, holding o_{t-1} fixed:
    J = D(f) + [D(c σ'(u^f))U_f + D(g σ'(u^i))U_i + D(i tanh'(u^g))U_g] D(o_{t-1} tanh'(c_{t-1}))."""
    hp = {"mu_f": 1.0, "rho2_f": 0.3, "nu2_g": 1.5, "sigma2_o": 0.5}
    net = Network("lstm", hp, width=50, tied=True, rng=5)
    s, x_prev, x = run(net, 8)
    sig = lambda u: 1.0 / (1.0 + np.exp(-u))  # noqa: E731
    dsig = lambda u: sig(u) * (1.0 - sig(u))  # noqa: E731
    U = {k: net.matrices[k, "h"] for k in "ifgo"}

    def pre(x, h):  # pre-activations u^k = W_k x + U_k h + b_k, written from the stored draw
        return {k: net.matrices[k, "x"] @ x + U[k] @ h + net.biases[k][:, 0] for k in "ifgo"}

    u1 = pre(x_prev, s["h"])
    c1 = sig(u1["f"]) * s["c"] + sig(u1["i"]) * np.tanh(u1["g"])
    o1 = sig(u1["o"])
    u2 = pre(x, o1 * np.tanh(c1))
    d = o1 * (1.0 - np.tanh(c1) ** 2)
    a = (c1 * dsig(u2["f"]))[:, None] * U["f"] + (np.tanh(u2["g"]) * dsig(u2["i"]))[:, None] * U["i"] \
        + (sig(u2["i"]) * (1.0 - np.tanh(u2["g"]) ** 2))[:, None] * U["g"]
    formula = np.diag(sig(u2["f"])) + a * d[None, :]
    np.testing.assert_allclose(jacobian(net, x_prev, x, s), formula, atol=EXACT, rtol=0)


def test_derived_state_through_an_affine_map(tmp_path: Path):
    """A generic derived state (h' = tanh(U_y c')): memory J = J_cc + J_ch B with B = D(1 - h_{t-1}^2) U_y."""
    path = tmp_path / "readout.py"
    path.write_text('STATE = ("c", "h")\n\n\ndef step(x, c, h, ops):\n'
                    '    c = ops.sigmoid(ops.affine("f", x, h)) * c + ops.tanh(ops.affine("g", x, h))\n'
                    '    return c, ops.tanh(ops.affine("y", c))\n')
    net = Network(load_cell(path), {"mu_f": 1.0}, width=30, tied=True, rng=6)
    assert primary_states(net.cell) == ("c",)
    s, x_prev, x = run(net, 6)
    h1 = net.step(x_prev[:, None], {k: v[:, None] for k, v in s.items()})["h"][:, 0]
    B = (1.0 - h1 ** 2)[:, None] * net.matrices["y", "v"]
    full = jacobian(net, x_prev, x, s, kind="full")
    expected = full[:30, :30] + full[:30, 30:] @ B
    np.testing.assert_allclose(jacobian(net, x_prev, x, s), expected, atol=EXACT, rtol=0)


def test_orthogonal_constant_diagonal_is_isometric_gaussian_is_marchenko_pastur():
    scale = (1.0 - math.tanh(0.5) ** 2) ** 2 * QUIET["nu2_h"]  # m1 of D U with D = tanh'(mu), |U|^2 ~ nu2
    ortho = empirical_jacobian_moments("vanilla_rnn", QUIET, width=500, burn_in=10, tied=True, weights="orthogonal")
    assert abs(ortho["ratio"] - 1.0) < ISOMETRY
    assert ortho["m1"] == pytest.approx(scale, rel=ISOMETRY)
    gauss = empirical_jacobian_moments("vanilla_rnn", QUIET, width=500, burn_in=10, tied=True)
    assert abs(gauss["ratio"] - (2.0 + 1.0 / 500)) < MARCHENKO_PASTUR
    assert gauss["variance"] == pytest.approx(gauss["m2"] - gauss["m1"] ** 2)
    assert gauss["singular_values_squared"].shape == (500,)


def test_product_of_orthogonal_constant_diagonal_grows_by_exactly_log_m1():
    growth = jacobian_product_growth("vanilla_rnn", QUIET, width=200, steps=15, burn_in=10, tied=True,
                                     weights="orthogonal", probes=8)
    log_m1 = math.log((1.0 - math.tanh(0.5) ** 2) ** 2 * QUIET["nu2_h"])
    np.testing.assert_allclose(growth["log_norm2"], log_m1 * np.arange(1, 16), rtol=ISOMETRY)


def test_product_growth_per_step_is_log_m1_for_untied_vanilla_rnn():
    """Untied, the J_t are independent given the stationary state: E tr(P P^T)/N = m1^t at large n."""
    hp = {"nu2_h": 1.3, "sigma2_h": 0.4}
    kw = dict(width=200, burn_in=30, tied=False)
    m = empirical_jacobian_moments("vanilla_rnn", hp, samples=20, **kw)
    growth = jacobian_product_growth("vanilla_rnn", hp, steps=60, probes=32, **kw)
    # The fitted slope of one 60-step trajectory scatters by SLOPE_SPREAD across seeds (measured); log m1 by its
    # standard error. 4 sigma (seeds are fixed, so this is deterministic; it sizes the margin). Consecutive
    # J's are correlated at O(1/n) (D_{t+1} sees U_t through h_t), a bias far inside this margin at n = 200.
    sigma = math.hypot(SLOPE_SPREAD, m["m1_stderr"] / m["m1"])
    assert abs(growth["slope"] - math.log(m["m1"])) < 4 * sigma
    exact = jacobian_product_growth("vanilla_rnn", hp, steps=5, probes=None, **kw)
    probed = jacobian_product_growth("vanilla_rnn", hp, steps=5, probes=64, **kw)
    # Same trajectory (probes draw from their own stream). For K uniform unit probes the estimate's relative
    # variance is 2 (m2/m1^2 - 1)/(N K) for P P^T, whose m2/m1^2 - 1 adds up over free factors: ~ t (ratio - 1).
    t = np.arange(1, 6)
    sigma = np.sqrt(2 * t * (m["ratio"] - 1) / (200 * 64))
    assert np.all(np.abs(probed["log_norm2"] - exact["log_norm2"]) < 5 * sigma)


def test_lstm_moments_report_every_sample_and_standard_errors():
    m = empirical_jacobian_moments("lstm", {"mu_f": 2.0}, width=60, burn_in=20, samples=3, kind="full")
    assert m["N"] == 120 and m["states"] == ("c", "h") and m["singular_values_squared"].shape == (360,)
    assert np.all(np.diff(m["singular_values_squared"]) >= 0)
    assert m["m1"] == pytest.approx(m["m1_samples"].mean()) and m["m1_stderr"] > 0
    one = empirical_jacobian_moments("lstm", {"mu_f": 2.0}, width=60, burn_in=20)
    assert one["N"] == 60 and one["m1_stderr"] is None


def test_bad_options_and_cells_name_the_problem(tmp_path: Path):
    with pytest.raises(HyperparameterError, match="kind"):
        empirical_jacobian_moments("vanilla_rnn", width=10, kind="backward")
    with pytest.raises(HyperparameterError, match="burn_in"):
        empirical_jacobian_moments("vanilla_rnn", width=10, burn_in=0)
    path = tmp_path / "twins.py"
    path.write_text('STATE = ("a", "b")\n\n\ndef step(x, a, b, ops):\n    y = ops.tanh(ops.affine("y", x, a))\n'
                    '    return y, y\n')
    with pytest.raises(CellDefinitionError, match="no state is primary"):
        primary_states(path)


def test_spectrum_never_imports_the_theory():
    code = "import sys, symmft.network.spectrum; print(sorted(m for m in sys.modules if m.startswith('symmft.')))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for theory in ("meanfield", "dynamics", "compile", "population", "expectation", "gaussian"):
        assert f"symmft.{theory}'" not in loaded
