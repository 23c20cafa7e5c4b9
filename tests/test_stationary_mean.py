"""The stationary solver at points whose multiplied vector has a nonzero mean without quenched biases.

With Gaussian U and mean(v) = m != 0, every unit's field U v holds a fixed part (U 1) m, so the units' long-time
averages differ and a field's static part is nu2 mean_i(v_bar_i^2) >= nu2 m^2 (docs/tied.md §4, "What is
static"). The solver treats a measured mean as a quenched source and draws the covariance's plateau. References
are independent of the solver: finite tied networks (``simulate(tied=True)``), and the solver itself with the
switch disabled for the point without a mean.
"""

from __future__ import annotations

import numpy as np
import pytest

import symmft.theory.stationary as stationary
from symmft import Status, analyze_tied, load_cell, simulate
from symmft.cell.params import resolve
from symmft.theory.stationary import solve_stationary
from tolerances import SIMULATION_SIGMAS, TIED_RELATIVE


MEAN_POINT = {"mu_f": 4.0, "mu_g": 1.0, "c_x": 0.5}  # the LSTM with a candidate bias mean, rho2 = 0 on every map


def _networks(hp: dict) -> tuple[np.ndarray, np.ndarray]:
    """Q_c, C_c, Q_h, C_h of three width-1000 tied networks (4 input pairs each) averaged over t = 200..400
    (memory ~55 steps at mu_f = 4): their mean and standard error over the seeds."""
    per = []
    for seed in range(3):
        states = simulate("lstm", hp, width=1000, steps=400, tied=True, seed=seed, batch=4).states
        per.append([getattr(states[s], moment)[200:].mean() for s in ("c", "h")
                    for moment in ("second_moment", "cross_moment")])
    per = np.array(per)
    return per.mean(axis=0), per.std(axis=0, ddof=1) / np.sqrt(len(per))


def _assert_matches(values: list, errors: list, reference: tuple) -> None:
    """Within 3% (TIED_RELATIVE) or 5 combined standard errors of the networks: they carry an O(1/n) finite-width
    bias and Q_c still creeps ~1% over their window, which the seeds' spread does not show."""
    for t, t_se, m, s, what in zip(values, errors, *reference, ("Q_c", "C_c", "Q_h", "C_h")):
        assert abs(t - m) <= max(TIED_RELATIVE * abs(m), SIMULATION_SIGMAS * np.hypot(t_se, s)), (what, t, m, s)


def _assert_analysis_matches(a, hp: dict) -> None:
    """An analyze_tied result's Q and C of c and h against tied networks at ``hp`` (:func:`_assert_matches`)."""
    values = [a.fixed_point[f"Q_{s}"] * (1.0 if k == "Q" else a.correlation[s]) for s in ("c", "h") for k in ("Q", "C")]
    errors = [a.standard_error[f"{k}_{s}"] for s in ("c", "h") for k in ("Q", "C")]
    _assert_matches(values, errors, _networks(hp))


def test_nonzero_mean_is_a_quenched_source_and_matches_tied_networks():
    # LSTM mu_f = 4, mu_g = 1, c_x = 0.5: mean(h) ~0.47, mean(h)^2 ~0.22 of Q_h ~0.29, and the units' static parts
    # hold ~88% of h's variance. Before, the solver drew only mean(h)^2, the rest never decayed, and it doubled
    # its range to 2.6x10^5 lags and ended NOT_CONVERGED after 1.3x10^5 steps (59 s CPU; benchmarks/RESULTS.md
    # §7.2e); now it ends OK at 64 lags in ~8x10^3 steps (~2.5 s). Networks: width 1000 (t = 200..400) give
    # Q_c 160.2(1.6), Q_h 0.2933(14); width 2000 (t = 1000..2000) 159.7(3.2), 0.2922(23); the solver 161.8(6.6),
    # 0.2885(24).
    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, MEAN_POINT).items()}
    res = solve_stationary(cell, h, lags=64, population=1000, seed=0, max_steps=2 ** 15)
    assert res["converged"], res["reason"]
    assert res["mean_source"] is not None and res["lags"] <= 1024
    rows = [(cell.states.index(s), k) for s in ("c", "h") for k in (1, 2)]
    _assert_matches([res["mean"][r] for r in rows], [res["standard_error"][r] for r in rows], _networks(MEAN_POINT))


@pytest.mark.slow
def test_analyze_tied_at_a_mean_point_is_ok_on_a_two_rate_range():
    # window=4096: analyze_tied's former automatic start (L = 1024; now 64, where this point stays one-rate, RESULTS
    # §7.2f), whose first passes take the range two-rate (8192), with a plateau of ~0.87 of h's variance, which
    # the `static` refusal used to turn into NOT_CONVERGED although the fine covariance is flat from half the fast
    # range to L (stationary._plateau_reached). Measured: Q_c 163.0(5.5), Q_h 0.2906(27), ~22 s CPU.
    a = analyze_tied("lstm", MEAN_POINT, population=2000, window=4096)
    assert a.status == Status.OK and a.extras["solver"] == "stationary", a.extras.get("stationary_solver")
    assert a.extras["stationary_solver"]["stride"] > 1
    _assert_analysis_matches(a, MEAN_POINT)


@pytest.mark.slow
def test_analyze_tied_at_a_small_mean_starts_short_and_is_ok():
    # LSTM mu_f = 4, mu_g = 0.5, c_x = 0.5 (rho2 = 0): the plateau (~0.8 of h's variance) is noisier than at
    # mu_g = 1. analyze_tied used to start the solver at 8 x the transient (L = 1024), whose first passes saw the
    # units' rise from zero as a long correlation and went two-rate, where the plateau's swing between passes never
    # let the range count as adequate: NOT_CONVERGED (`clipped`) at 2^18 lags after 5.3x10^5 steps (396 s CPU).
    # Started at 64 lags (tied.STATIONARY_WINDOW) it stays one-rate: OK at L = 512 after 13,312 steps (10 s CPU),
    # Q_c 65.2(2.5), Q_h 0.2665(23), C_h 0.2148 (benchmarks/RESULTS.md §7.2f). Width-2000 networks (t = 1000-2000):
    # Q_c 63.6(0.8), Q_h 0.2681(20), C_h 0.2164(20).
    hp = {**MEAN_POINT, "mu_g": 0.5}
    a = analyze_tied("lstm", hp, population=2000)
    assert a.status == Status.OK and a.extras["solver"] == "stationary", a.extras.get("stationary_solver")
    assert a.extras["stationary_solver"]["lags"] <= 4096  # one rate: not pushed into the two-rate regime
    _assert_analysis_matches(a, hp)


def test_no_mean_path_is_unchanged(monkeypatch):
    # LSTM mu_f = 3 at mu_g = 0: mean(h) = 0 by symmetry, so the switch must not fire and the run must be the
    # one without it, draw for draw (the same seed gives the same numbers: the group sums it adds draw nothing).
    # Checked against the code before the switch too (RESULTS §7.2e: identical to the last digit).
    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, {"mu_f": 3.0, "c_x": 0.5}).items()}
    run = lambda: solve_stationary(cell, h, lags=8, population=256, seed=1, max_steps=2 ** 12)  # noqa: E731
    default = run()
    monkeypatch.setattr(stationary, "MEAN_SHARE", np.inf)  # the switch off
    off = run()
    assert default["mean_source"] is None and off["mean_source"] is None
    assert np.array_equal(default["mean"], off["mean"]) and default["steps"] == off["steps"]
    assert default["static_fraction"] < 0.01  # mean(h)^2 / variance: a finite population's residual


@pytest.mark.slow
def test_gru_with_a_candidate_bias_mean_matches_tied_networks():
    # GRU mu_z = 3, mu_n = 1, c_x = 0.5 (rho2 = 0): mean(h) ~0.54, the plateau ~0.96 of the field's variance.
    # Before: NOT_CONVERGED (`clipped`) at 2^18 lags after 1.3x10^5 steps (42 s); now OK at 64 lags in ~8x10^3
    # steps (2 s): Q_h 0.3309(36), C_h 0.3172(37) against width-1000 tied networks (t = 300..600, 3 seeds x 4
    # pairs) 0.3312(13), 0.3177(13). Same tolerance as above (3% or 5 combined standard errors).
    cell = load_cell("gru")
    hp = {"mu_z": 3.0, "mu_n": 1.0, "c_x": 0.5}
    h = {k: float(v) for k, v in resolve(cell, hp).items()}
    res = solve_stationary(cell, h, lags=64, population=1000, seed=0, max_steps=2 ** 15)
    assert res["converged"] and res["mean_source"] is not None, res["reason"]
    per = []
    for seed in range(3):
        states = simulate("gru", hp, width=1000, steps=600, tied=True, seed=seed, batch=4).states
        per.append([states["h"].second_moment[300:].mean(), states["h"].cross_moment[300:].mean()])
    per = np.array(per)
    mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / np.sqrt(len(per))
    for k, what in ((1, "Q_h"), (2, "C_h")):
        t, t_se, m, s = res["mean"][0, k], res["standard_error"][0, k], mean[k - 1], se[k - 1]
        assert abs(t - m) <= max(TIED_RELATIVE * abs(m), SIMULATION_SIGMAS * np.hypot(t_se, s)), (what, t, m, s)
