"""The chrono initialization (Tallec & Ollivier 2018) as a bias *distribution*: b_f = log U, b_i = -b_f per unit,
U ~ Uniform[1, T-1]. The theory integrates over L = log U exactly (given L every gate law is Gaussian)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest

from symmft.theory import gaussian
from symmft import load_cell, analyze, HyperparameterError, simulate

from test_theory_vs_simulation import time_average, tolerance

CHRONO = {"beta_f": 1.0, "beta_i": -1.0, "chrono_length": 100.0, "nu2_f": 0.5, "c_x": 0.5}


@pytest.mark.parametrize("T", [3.5, 100.0, 1e5])
def test_loguniform_rule_matches_closed_form_and_mpmath(T):
    """E[L] = (T-1) log(T-1)/(T-2) - 1 in closed form; E[sigmoid(L - 2)^2] against mpmath.quad at 30 digits."""
    mean = gaussian.expect_loguniform(lambda l: l, T)
    assert abs(mean - ((T - 1) * math.log(T - 1) / (T - 2) - 1)) <= 1e-13 * max(1.0, mean)
    sig2 = lambda l: 1 / (1 + np.exp(-(l - 2))) ** 2
    ref = gaussian.expect_loguniform_mp(lambda l: 1 / (1 + mpmath.exp(-(l - 2))) ** 2, T, dps=30)
    assert abs(gaussian.expect_loguniform(sig2, T) - float(ref)) <= 1e-13


def test_loguniform_rule_on_a_grid_calls_f_once_on_every_node():
    """On a grid, f sees L with a leading node axis and broadcasts against the grid (as a compiled map's arrays
    do); every grid point matches its own mpmath value."""
    T, shift = np.array([10.0, 300.0, 1e4]), np.array([0.5, 2.0, 4.0])
    calls = []

    def f(l):
        calls.append(l.shape)
        return 1 / (1 + np.exp(-(l - shift)))

    got = gaussian.expect_loguniform(f, T)
    assert len(calls) == 1 and calls[0][1:] == T.shape
    for t, s, g in zip(T, shift, got):
        ref = gaussian.expect_loguniform_mp(lambda l: 1 / (1 + mpmath.exp(-(l - s))), t, dps=30)
        assert abs(g - float(ref)) <= 1e-13


def test_chrono_lstm_matches_untied_simulation_with_log_uniform_biases():
    cell = load_cell("lstm")
    theory = analyze(cell, CHRONO)
    assert int(theory.status) == 0
    width = 1000
    sim = simulate(cell, CHRONO, width=width, steps=80, batch=4, seed=4)
    for s in cell.states:
        q_sim, q_se = time_average(sim.states[s].second_moment)
        q_th = float(theory.fixed_point[f"Q_{s}"])
        # the LSTM's Gaussian closure of tanh(c') adds ~1-2% to Q_h (test_population measures it)
        closure = 0.02 * q_th if s == "h" else 0.0
        assert abs(q_th - q_sim) <= tolerance(q_se, q_th, width, closure), (s, q_th, q_sim, q_se)
        c_sim, c_se = time_average(sim.states[s].correlation)
        assert abs(float(theory.correlation[s]) - c_sim) <= tolerance(c_se, 1.0, width, 0.02), (s, c_sim)


def test_the_distribution_matters_a_moment_matched_gaussian_bias_predicts_otherwise():
    """Replacing log U by a Gaussian with its mean and variance moves Q_c by far more than the simulation error."""
    cell = load_cell("lstm")
    T = CHRONO["chrono_length"]
    m = gaussian.expect_loguniform(lambda l: l, T)
    v = gaussian.expect_loguniform(lambda l: l * l, T) - m * m
    matched = analyze(cell, {"mu_f": m, "rho2_f": v, "mu_i": -m, "rho2_i": v, "nu2_f": 0.5, "c_x": 0.5})
    exact = analyze(cell, CHRONO)
    assert abs(float(matched.fixed_point["Q_c"]) / float(exact.fixed_point["Q_c"]) - 1) > 0.05


def test_chrono_coefficients_without_a_length_are_refused():
    with pytest.raises(HyperparameterError, match="chrono_length"):
        analyze(load_cell("lstm"), {"beta_f": 1.0})
    with pytest.raises(HyperparameterError, match="chrono_length"):
        simulate(load_cell("lstm"), {"beta_f": 1.0}, width=10, steps=1)
