"""Jacobian spectral moments m1, m2 from the theory (symmft/jacobian.py) against the exact Jacobian of the
finite-width untied network (symmft/spectrum.py, which never imports the theory)."""

from __future__ import annotations

import numpy as np
import pytest

from symmft import load_cell, analyze, jacobian_moments
from symmft.theory.jacobian import derive_jacobian, primary_states
from symmft.network import spectrum

from tolerances import JACOBIAN_RELATIVE, SIMULATION_SIGMAS

#: Near-critical points (m1 = 0.6-0.85) of every cell the Jacobian derivation covers.
POINTS = {
    "vanilla_rnn": {"nu2_h": 1.2, "sigma2_h": 0.3, "rho2_h": 0.05},
    "minimal_rnn": {"mu_u": 2.0, "nu2_u_h": 0.8},
    "gru_reset_before": {"mu_z": 2.0, "nu2_n": 1.5, "mu_r": 1.0},
    "gru": {"mu_z": 2.0, "nu2_hn": 1.5, "mu_r": 1.0, "mu_hn": 0.3},
    "lstm": {"mu_f": 2.5, "nu2_f": 0.5, "nu2_g": 2.0},
}


#: Closer to criticality (m1 = 0.95-0.98; theory and width-1000 simulation measured within 0.1%). Memory decays
#: slowly here, so the simulation needs a longer burn-in to reach the stationary state.
NEAR_CRITICAL = {
    "vanilla_rnn": {"nu2_h": 1.0, "sigma2_h": 0.0, "rho2_h": 1e-3},
    "minimal_rnn": {"mu_u": 4.0, "nu2_u_h": 0.3},
    "gru_reset_before": {"mu_z": 4.0, "nu2_n": 1.0, "mu_r": 1.0},
    "gru": {"mu_z": 4.0, "nu2_hn": 1.0, "mu_r": 1.0},
    "lstm": {"mu_f": 5.0, "nu2_f": 0.3, "nu2_g": 1.0, "mu_i": -2.0},
}

#: Far from criticality, strongly contracting (m1 = 0.36-0.48) or, for the vanilla RNN, chaotic (m1 > 1).
FAR = {
    "vanilla_rnn": {"nu2_h": 2.0, "sigma2_h": 0.0, "rho2_h": 0.01},
    "minimal_rnn": {"mu_u": 0.0, "nu2_u_h": 2.0, "sigma2_z": 2.0},
    "gru_reset_before": {"mu_z": 0.0, "nu2_n": 3.0, "nu2_z": 2.0},
    "gru": {"mu_z": 0.0, "nu2_hn": 3.0, "nu2_z": 2.0},
    "lstm": {"mu_f": 0.0, "nu2_g": 3.0, "nu2_f": 2.0},
}


def _compare_moments(name: str, h: dict, weights: str, burn_in: int, samples: int, seed: int) -> None:
    cell = load_cell(name)
    theory = jacobian_moments(analyze(cell, h), weights=weights)
    sim = spectrum.empirical_jacobian_moments(cell, h, width=1000, burn_in=burn_in, weights=weights, samples=samples, seed=seed)
    for key in ("m1", "m2"):
        tol = SIMULATION_SIGMAS * sim[f"{key}_stderr"] + JACOBIAN_RELATIVE * theory[key]
        assert abs(float(theory[key]) - sim[key]) <= tol, (key, float(theory[key]), sim[key], sim[f"{key}_stderr"])


@pytest.mark.parametrize("weights", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("name", sorted(POINTS))
def test_m1_and_m2_match_the_exact_jacobian_of_the_untied_network(name, weights):
    _compare_moments(name, POINTS[name], weights, burn_in=60, samples=3, seed=5)


@pytest.mark.parametrize("name", sorted(NEAR_CRITICAL))
def test_m1_and_m2_near_criticality(name):
    _compare_moments(name, NEAR_CRITICAL[name], "orthogonal", burn_in=250, samples=2, seed=7)


@pytest.mark.slow
@pytest.mark.parametrize("weights", ["gaussian", "orthogonal"])
@pytest.mark.parametrize("name", sorted(FAR))
def test_m1_and_m2_far_from_criticality(name, weights):
    _compare_moments(name, FAR[name], weights, burn_in=60, samples=3, seed=11)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NEAR_CRITICAL))
def test_m1_and_m2_near_criticality_gaussian_weights(name):
    _compare_moments(name, NEAR_CRITICAL[name], "gaussian", burn_in=250, samples=2, seed=13)


def test_moments_on_a_grid_equal_the_same_points_one_by_one():
    """Vectorized evaluation over a grid, including the reset-after GRU's nested conditional quadrature, whose
    integrands hold grid-shaped arrays (they once failed to broadcast). One closure for the fixed points of both, as
    before the default became "auto", which takes the exact law at a point and the moment closure on a grid
    (docs/laws.md); the Jacobian map's own nested quadrature is the same either way."""
    cell = load_cell("gru")
    grid = {"mu_n": np.array([0.0, 0.5, 1.0]), "sigma2_n": np.array([0.5, 1.0, 1.5]), "mu_z": 2.0}
    together = jacobian_moments(analyze(cell, grid, closure="gaussian"), weights="orthogonal")
    for j in range(3):
        point = {k: (v[j] if np.ndim(v) else v) for k, v in grid.items()}
        alone = jacobian_moments(analyze(cell, point, closure="gaussian"), weights="orthogonal")
        for key in ("m1", "m2"):
            assert float(together[key][j]) == pytest.approx(float(alone[key]), rel=1e-12, abs=1e-14)


def test_gaussian_and_orthogonal_weights_differ_only_in_m2():
    """Free probability: the first moment is the same for both ensembles; orthogonal removes the Wishart term."""
    a = analyze(load_cell("vanilla_rnn"), POINTS["vanilla_rnn"])
    g, o = jacobian_moments(a, weights="gaussian"), jacobian_moments(a, weights="orthogonal")
    assert abs(float(g["m1"]) - float(o["m1"])) < 1e-12
    assert float(g["m2"]) - float(o["m2"]) == pytest.approx(float(g["m1"]) ** 2, rel=1e-9)  # J = D U: + <D^2>^2 nu2^2


def test_vanilla_m1_is_the_classical_chi1():
    a = analyze(load_cell("vanilla_rnn"), POINTS["vanilla_rnn"])
    assert float(jacobian_moments(a)["m1"]) == pytest.approx(float(a.extras["chi_1"]), rel=1e-12)


def test_log_norm_growth_of_a_product_of_50_jacobians_follows_m1():
    """Near criticality (LSTM, m1 ~ 0.95): log tr(P_T P_T^T)/N grows like T log m1."""
    cell = load_cell("lstm")
    h = {"mu_f": 4.0, "nu2_f": 0.3, "nu2_g": 1.0}
    m1 = float(jacobian_moments(analyze(cell, h), weights="orthogonal")["m1"])
    growth = spectrum.jacobian_product_growth(cell, h, width=600, steps=50, burn_in=60, weights="orthogonal", seed=2)
    assert 0.9 < m1 < 0.99
    assert abs(growth["slope"] - np.log(m1)) <= 0.1 * abs(np.log(m1)) + 0.003, (growth["slope"], np.log(m1))


def test_empirical_m1_fluctuation_shrinks_like_inverse_sqrt_width():
    """The finite-width error behind the tolerances: m1's spread over independent networks ~ 1/sqrt(n)."""
    cell, h = load_cell("minimal_rnn"), POINTS["minimal_rnn"]
    spread = {}
    for width in (100, 900):
        runs = spectrum.empirical_jacobian_moments(cell, h, width=width, burn_in=40, weights="orthogonal", samples=8, seed=1)
        spread[width] = float(np.std(runs["m1_samples"], ddof=1))
    assert 1.5 < spread[100] / spread[900] < 8, spread  # sqrt(9) = 3, with the scatter of 8-sample spreads


def test_memory_jacobian_is_taken_over_the_primary_states():
    """One definition (symmft.cell.trace.primary_states) serves theory and simulator; the LSTM's memory Jacobian is on c."""
    assert primary_states(load_cell("lstm")) == ("c",)
    assert derive_jacobian(load_cell("lstm")).primary == ("c",)
