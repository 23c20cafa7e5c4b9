"""The tied-weight theory (symmft.theory.tied, docs/tied.md) against the tied finite network.

The simulator (symmft.network.simulate) draws one set of weights and reuses it; it shares nothing with the theory
but the cell file. Trajectories are compared as window averages; a comparison with symmft's simulator allows
TIED_RELATIVE or SIMULATION_SIGMAS standard errors of the simulation (the spread between independent networks),
whichever is larger. The theory's own Monte Carlo error is not added (so the bar is the stricter one): at
population 8000 its 16 groups scatter by 0.1-1% of Q without bias variance and up to 2.6% with rho2 = 0.1 on
every map, and its estimate of the field covariance from its own 8000 units biases it by O(1/8000) (<= 0.3%,
minimalRNN at mu_u = 4), both measured in benchmarks/RESULTS.md §7; the 3% covers them. The torch comparisons
at small input size, where both sides scatter by several per cent, combine the two standard errors.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from symmft.cell.params import resolve
from symmft import load_cell, HyperparameterError, Status, simulate, analyze, analyze_tied
from symmft.theory.transient import Transient

from tied_cells import MEMORY_BIAS, matrix_cell
from tolerances import FINITE_WIDTH_BIAS, SIMULATION_SIGMAS, TIED_RELATIVE


def _simulated(cell, h, steps, width, seeds, input_dim=None, weights="gaussian"):
    """Per state: (seeds, steps) second moments at t = 1..steps of independent tied networks."""
    runs = [simulate(cell, h, width=width, steps=steps, tied=True, seed=s, batch=4, input_dim=input_dim,
                     weights=weights) for s in range(seeds)]
    return {s: np.array([r.states[s].second_moment[1:] for r in runs]) for s in cell.states}


def _window_means(per, windows=4):
    """(samples, T) trajectories -> window means (windows,) and their standard errors over the samples."""
    w = np.array([[x.mean() for x in np.array_split(row, windows)] for row in per])
    return w.mean(axis=0), w.std(axis=0, ddof=1) / np.sqrt(len(w))


def _assert_close(theory, sim, what, windows=4):
    """Window averages of a theory trajectory (T,) vs simulated ones (seeds, T)."""
    th = np.array([w.mean() for w in np.array_split(theory, windows)])
    per = np.array([[w.mean() for w in np.array_split(row, windows)] for row in sim])
    mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / np.sqrt(len(per))
    allowed = np.maximum(TIED_RELATIVE * np.abs(mean), SIMULATION_SIGMAS * se)
    assert np.all(np.abs(th - mean) <= allowed), f"{what}: theory {th} vs simulation {mean} +- {se}"


@pytest.mark.parametrize("name", ["vanilla_rnn", "minimal_rnn"])
def test_redrawn_fields_reproduce_untied_maps(name):
    # Cells whose Gaussian closure is exact under the untied law (every nonlinearity acts on an affine output).
    cell = load_cell(name)
    h = {k: float(v) for k, v in resolve(cell, {"c_x": 0.5, "rho2_" + MEMORY_BIAS[name][3:]: 0.1}).items()}
    record = Transient(cell, h, 120, population=8000, seed=1, tied=False).advance(120)[60:]
    per = record.mean(axis=0)  # (groups, state, 3): time averages per independent group
    mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / np.sqrt(len(per))
    untied = analyze(cell, h)
    for i, s in enumerate(cell.states):
        q, c = float(untied.fixed_point[f"Q_{s}"]), float(untied.cross_fixed_point[f"C_{s}"])
        for got, err, want in ((mean[i, 1], se[i, 1], q), (mean[i, 2], se[i, 2], c)):
            assert abs(got - want) <= SIMULATION_SIGMAS * err + FINITE_WIDTH_BIAS * q / 500, (s, got, want, err)


@pytest.mark.parametrize("name, h", [
    ("lstm", {"mu_f": 2.0, "rho2_i": 0.1, "rho2_f": 0.1, "rho2_g": 0.1, "rho2_o": 0.1, "c_x": 0.5}),
    ("gru", {"mu_z": 2.0, "rho2_r": 0.1, "rho2_z": 0.1, "rho2_n": 0.1, "rho2_hn": 0.1, "c_x": 0.5}),
    ("user", {"mu_f": 1.0, "rho2_f": 0.1, "rho2_g": 0.5}),  # (1 - f)^2 is heavy-tailed at large mu_f
])
def test_second_moment_trajectory_matches_tied_simulation(name, h):
    cell, steps = matrix_cell(name), 40
    # Only the trajectory is compared: its tail may still relax at t = 40, and the stationary solver is not needed.
    theory = analyze_tied(cell, h, steps=steps, population=4000, stationary=False)
    sim = _simulated(cell, h, steps, width=1000, seeds=3)
    untied = analyze(cell, h)  # the Gaussian closure: within ~1% of the untied network here (RESULTS.md §3)
    for s in cell.states:
        _assert_close(theory.trajectory[s]["second_moment"], sim[s], f"{name} Q_{s}")
    # The point is chosen where the untied theory is measurably wrong for the tied network.
    s = cell.states[0]
    assert float(untied.fixed_point[f"Q_{s}"]) < 0.9 * sim[s][:, -10:].mean()


def test_finite_input_size_matches_tied_simulation():
    # m = 4: fewer input coordinates than the LSTM has maps reading x; m = 16.
    cell, h, steps = load_cell("lstm"), {"mu_f": 2.0, "c_x": 0.5}, 40
    late = {}
    for m in (4, 16):
        theory = analyze_tied(cell, h, steps=steps, input_dim=m, population=4000)
        sim = _simulated(cell, h, steps, width=1000, seeds=3, input_dim=m)
        _assert_close(theory.trajectory["c"]["second_moment"], sim["c"], f"LSTM Q_c at m = {m}")
        late[m] = sim["c"][:, -10:].mean()
    infinite = analyze_tied(cell, h, steps=steps, population=4000)
    # ... and the input size matters: the infinite-m theory misses the small-m network.
    assert infinite.trajectory["c"]["second_moment"][-10:].mean() < 0.9 * late[4]


def test_small_population_is_not_biased_by_its_own_covariance_noise():
    # The population estimates the field covariance C it feeds back into the fields. With each of 16 groups
    # drawing its fields from its own C (125 units each at P = 2000) the minimalRNN at mu_u = 4 came out +7 / +11
    # / +14% high at t = 26-50 / 51-75 / 76-100, mostly each unit's own past in the law of its own fields; now
    # each half of an independent part draws from the other half's C, and what is left is small
    # (benchmarks/RESULTS.md §7f: +0.2% or less at P = 2000, 200 runs). Reference: one run
    # of 32000 units, within 2% of width-2000 tied networks there (about their own O(1/n) excess, measured
    # from width 1000 to 2000). The small population's error comes from 16 independent runs, the reference's
    # from the spread of its 8 independent parts. 16 x 0.1 + 1 CPU s.
    cell = load_cell("minimal_rnn")
    h = {k: float(v) for k, v in resolve(cell, {"mu_u": 4.0, "c_x": 0.5}).items()}

    def windows(population, seed):  # Q_h at t = 26-50, 51-75, 76-100: (group, window)
        q = Transient(cell, h, 100, population=population, seed=seed).advance(100)[25:, :, 0, 1]
        return np.array([w.mean(axis=0) for w in np.array_split(q, 3)]).T

    small = np.array([windows(2000, seed).mean(axis=0) for seed in range(1, 17)])
    small_mean, small_se = small.mean(axis=0), small.std(axis=0, ddof=1) / np.sqrt(len(small))
    large = windows(32000, 0)
    large_mean = large.mean(axis=0)
    large_se = large.std(axis=0, ddof=1) / np.sqrt(len(large))
    allowed = SIMULATION_SIGMAS * np.hypot(small_se, large_se)
    assert np.all(np.abs(small_mean - large_mean) <= allowed), \
        f"population 2000: {small_mean} +- {small_se} vs 32000: {large_mean} +- {large_se}"
    assert np.all(allowed < 0.05 * large_mean)  # tight enough to see the old +6 to +12%


def test_reported_errors_match_the_spread_of_independent_seeds():
    """Every reported standard error must be the run-to-run scatter, including the noise of the field covariance C
    that the population estimates and feeds back into its own fields. SEEDS independent runs at the chaotic
    vanilla point (nu2_h = 3, sigma2_h = 0.5, c_x = 0.5; c* = 0.34, lambda ~ 0.7), population 2000: for the
    transient Q(t) at t = 20, 40, 60, the stationary Q and c*, lambda, and the tangent gain log G(t) at t = 20, 40
    (symmft.theory.tangent), the seeds' spread s over the root-mean-square reported error e must lie where an
    honest error puts it with probability 0.999: (SEEDS - 1) s^2 / sigma^2 is chi-square with SEEDS - 1 degrees
    of freedom, so s / e in [0.61, 1.40] for 32 seeds (e, averaged over 32 runs of 7 degrees of freedom each, is
    good to ~5%, small beside that). With one C pooled over the population (the groups' spread as the error,
    blind to C's noise) the ratios were 1.56 (Q), 2.38 (c*) and 4.1-5.6 (log G) on these seeds, and 2 of the 32
    runs were NOT_CONVERGED (the drift test judged by those errors); now 0.73-1.13 here and 0.85-1.26 on seeds
    32-127 (three more sets of 32). ~2 s CPU."""
    from scipy.stats import chi2

    from symmft.theory.tangent import tied_gain

    cell, seeds = load_cell("vanilla_rnn"), 32
    h = {k: float(v) for k, v in resolve(cell, {"nu2_h": 3.0, "sigma2_h": 0.5, "c_x": 0.5}).items()}
    runs = [analyze_tied(cell, h, steps=60, population=2000, seed=s, stationary=False) for s in range(seeds)]
    gains = [tied_gain(cell, h, 40, population=2000, seed=s) for s in range(seeds)]
    assert all(a.status == Status.OK for a in runs) and all(g.status == Status.OK for g in gains)
    numbers = {"lambda": [(a.lambda_, a.standard_error["lambda"]) for a in runs],
               "Q_h": [(a.fixed_point["Q_h"], a.standard_error["Q_h"]) for a in runs],
               "c*_h": [(a.correlation["h"], a.standard_error["correlation_h"]) for a in runs]}
    for t in (20, 40, 60):
        traj = [a.trajectory["h"] for a in runs]
        numbers[f"Q_h({t})"] = [(r["second_moment"][t - 1], r["standard_error_second_moment"][t - 1]) for r in traj]
    for t in (20, 40):
        numbers[f"log G({t})"] = [(g.log_gain[t - 1], g.standard_error[t - 1]) for g in gains]
    low, high = np.sqrt(chi2.ppf([0.0005, 0.9995], seeds - 1) / (seeds - 1))
    for key, pairs in numbers.items():
        values, errors = np.array(pairs).T
        ratio = values.std(ddof=1) / np.sqrt(np.mean(errors ** 2))
        assert low <= ratio <= high, f"{key}: seeds' spread / reported error {ratio:.2f} not in [{low:.2f}, {high:.2f}]"


@pytest.mark.parametrize("horizon", [6, 30])  # 12 variables <= 2 x 20 units a group: solved; 60: whitened pasts
def test_each_half_draws_its_fields_from_the_other_halfs_covariance(horizon):
    # Cross-fitting (docs/tied.md §2): the Cholesky factor whose rows group 2r's fields use (collected step by step
    # from the sampler, by either of its two ways of computing them) is that of the covariance of group 2r + 1's
    # own history, and vice versa, so no unit's past enters the law of its own fields. Reference: numpy's product
    # of the stored histories. The first step's two variables (the zero state) are degenerate (unit pivots, no
    # past), so the comparison starts at variable 2.
    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, {"mu_f": 2.0, "c_x": 0.5}).items()}
    run, steps = Transient(cell, h, horizon, population=320, seed=2), 6
    source = run.source
    assert source.whiten == (horizon == 30)
    L = np.zeros((source.G, 2 * steps, 2 * steps))
    whitened, solved = source._whitened_rows, source._solved_rows

    def collect(rows, j):
        L[:, j:j + 2, :j + 2] = rows
        return rows

    def solved_and_collect(node, vt, j):
        rows, width = solved(node, vt, j)
        collect(rows, j)
        return rows, width

    source._whitened_rows = lambda node, vt, j: collect(whitened(node, vt, j), j)
    source._solved_rows = solved_and_collect
    run.advance(steps)
    (node,) = [node for node in source.history]  # the LSTM's one vector node, h
    V = source.history[node][:, :2 * steps]  # (group, 12, units)
    for g in range(len(L)):
        partner, own = V[g ^ 1], V[g]
        law = (L[g] @ L[g].T)[2:, 2:]
        np.testing.assert_allclose(law, (partner @ partner.T / partner.shape[1])[2:, 2:], rtol=1e-10, atol=1e-14)
        assert not np.allclose(law, (own @ own.T / own.shape[1])[2:, 2:], rtol=1e-3)


def test_whitened_pasts_give_the_solved_factors_rows():
    # The two ways of computing a new factor row (docs/tied.md §2) are the same arithmetic up to rounding: the
    # same seed run with solved factors (horizon 40: 80 variables <= 2 x 40 units a group) and with whitened
    # pasts (horizon 60) must give the same moments to float32 rounding of the fields (measured <= 1e-6 relative
    # here; 1e-8 for the T = 1064 rule over 600 steps, RESULTS §7f), through the fork and kick.
    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, {"mu_f": 3.0, "c_x": 0.5}).items()}
    records = []
    for horizon in (40, 60):
        run = Transient(cell, h, horizon, population=640, seed=4)
        assert run.source.whiten == (horizon == 60)
        before = run.advance(30)
        run.fork()
        run.kick(0.05, np.random.default_rng(0))
        records.append((before, run.advance(10)))
    for solved, whitened in zip(*records):
        np.testing.assert_allclose(whitened, solved, rtol=0, atol=1e-6 * np.abs(solved).max())


def test_tied_analysis_reports_errors_and_status():
    a = analyze_tied("vanilla_rnn", {"c_x": 0.5}, steps=30, population=2000)
    assert a.status == Status.OK
    assert set(a.standard_error) >= set(a.fixed_point) | {"lambda"}
    assert all(0 < v < 0.05 for k, v in a.standard_error.items() if k.startswith("Q_"))
    assert len(a.trajectory["h"]["second_moment"]) == 30
    assert a.two_time["h"][0] == pytest.approx(a.fixed_point["Q_h"], rel=0.05)
    with pytest.raises(HyperparameterError, match="input_dim"):
        analyze_tied("lstm", input_dim=0)
    with pytest.raises(HyperparameterError, match="weights"):
        analyze_tied("lstm", weights="uniform")


#: LSTM mu_f = 5, c_x = 0.5: the stationary Q_c of width-2000 tied networks (benchmarks/long_network.py, three
#: networks of 8 sequences, infinite input size, t = 2000-8000: 145.9 / 150.1 / 147.8; benchmarks/RESULTS.md §7.2a),
#: independent of the theory's code; its standard error over the three.
LSTM_MU_F5_STATIONARY_Q_C, LSTM_MU_F5_STATIONARY_SE = 147.9, 1.2


def test_a_tail_still_rising_is_not_called_stationary():
    """The transient's tail must not pass for the stationary state while Q is still rising. LSTM mu_f = 5
    (c_x = 0.5): its memory (~150 steps untied, longer tied) outlasts the default 300 steps, and the last quarter
    averages Q_c ~ 110, 28% below the stationary value. Its two halves differ by ~8% of Q_c, which at P = 1000
    (125 units a part) is within 5 of their standard errors on 6 seeds of 16: the old test (halves > 5 standard
    errors and > 1%) called seeds 1, 4, 7 and 8 of these OK at Q_c = 100-116. The drift over the last two
    quarters and its geometric projection (tied._still_relaxing) flag all 16. The premise is checked against the
    independent stationary value (the tail is > 15% below it); LSTM mu_f = 3 (memory ~21 steps, settled by
    t ~ 100) must stay OK on the same seeds. ~4 s CPU."""
    for seed in range(8):
        rising = analyze_tied("lstm", {"mu_f": 5.0, "c_x": 0.5}, population=1000, seed=seed, stationary=False,
                              response=6)
        assert rising.fixed_point["Q_c"] < 0.85 * LSTM_MU_F5_STATIONARY_Q_C  # the premise: far from stationary
        assert rising.status == Status.NOT_CONVERGED, (seed, rising.fixed_point["Q_c"])
        settled = analyze_tied("lstm", {"mu_f": 3.0, "c_x": 0.5}, population=1000, seed=seed, stationary=False,
                               response=6)
        assert settled.status == Status.OK, (seed, settled.fixed_point["Q_c"])


@pytest.mark.slow
def test_a_rising_tail_hands_over_to_the_stationary_solver():
    """With the stationary solver allowed (the default), the mu_f = 5 point at P = 2000 must end at the stationary
    value, not the transient's ~110: the solver runs (``extras["solver"]``) and its Q_c is within 3% (the issue's
    bar, TIED_RELATIVE) or 5 combined standard errors of the width-2000 tied networks' 147.9(1.2) (above).
    Measured at P = 2000: 148.05(97), OK (ranges 4096, 8192, 16384: 153.3, 147.5, 148.1), 66 s CPU. (At P = 1000,
    seed 1, where the old tail test reported 111.4 as OK, the solver's range confirmation never settles -- the
    cross moment creeps -- and it ends NOT_CONVERGED (drift) at 137: honest, but not the point of this test.)"""
    a = analyze_tied("lstm", {"mu_f": 5.0, "c_x": 0.5}, population=2000, seed=1)
    assert a.extras["solver"] == "stationary" and a.status == Status.OK
    err = max(TIED_RELATIVE * LSTM_MU_F5_STATIONARY_Q_C, SIMULATION_SIGMAS * np.hypot(a.standard_error["Q_c"],
                                                                           LSTM_MU_F5_STATIONARY_SE))
    assert abs(a.fixed_point["Q_c"] - LSTM_MU_F5_STATIONARY_Q_C) <= err, (a.fixed_point["Q_c"], a.standard_error["Q_c"])


def test_vanilla_rnn_tied_lambda_matches_simulated_decay():
    # Vanilla RNN at c_x = 1: a distance between two copies of the state decays like chi_1^t (order phase).
    h = {"nu2_h": 0.8, "c_x": 1.0}
    a = analyze_tied("vanilla_rnn", h, steps=60, population=4000)
    untied = analyze(load_cell("vanilla_rnn"), h)
    assert abs(a.lambda_ - float(untied.lambda_)) <= max(0.03, SIMULATION_SIGMAS * a.standard_error["lambda"])


def test_cli_analyze_tied_json():
    out = subprocess.run([sys.executable, "-m", "symmft", "analyze", "vanilla_rnn", "--theory", "tied", "--steps",
                          "5", "--population", "256", "--weights", "gaussian", "--json"],
                         capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result["theory"] == "tied" and len(result["trajectory"]["h"]["second_moment"]) == 5
    assert {"standard_error_Q_h", "two_time", "lambda", "xi", "jacobian"} <= set(result)
    bad = subprocess.run([sys.executable, "-m", "symmft", "analyze", "lstm", "--steps", "5"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--theory tied" in bad.stderr


@pytest.mark.parametrize("rho2_h", [0.2, 0.0])
def test_stationary_solver_agrees_with_the_transient_tail(rho2_h):
    # Two solvers of the same theory, sharing only site.py: the spectral sampler of the stationary fields vs the
    # causal sampler run until stationary (vanilla RNN, short memory, partly correlated inputs). rho2_h = 0.2: a
    # quenched bias, whose plateau the spectral sampler draws as a static field; 0: nothing quenched, no static
    # part (docs/tied.md §4), each result confirmed on twice the lag range.
    h = {"nu2_h": 1.5, "rho2_h": rho2_h, "c_x": 0.5}
    causal = analyze_tied("vanilla_rnn", h, steps=60, population=4000, stationary=False)
    spectral = analyze_tied("vanilla_rnn", h, steps=10, population=2000, window=128)
    assert causal.status == spectral.status == Status.OK and spectral.extras["solver"] == "stationary"
    for key in ("Q_h",):
        err = np.hypot(causal.standard_error[key], spectral.standard_error[key])
        assert abs(causal.fixed_point[key] - spectral.fixed_point[key]) <= SIMULATION_SIGMAS * err + 1e-3
    err = np.hypot(causal.standard_error["correlation_h"], spectral.standard_error["correlation_h"])
    assert abs(causal.correlation["h"] - spectral.correlation["h"]) <= SIMULATION_SIGMAS * err + 2e-3


# ---------------------------------------------------------------- slow: the full matrix


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(MEMORY_BIAS))
@pytest.mark.parametrize("bias", [0.0, 2.0, 3.0, 4.0])
@pytest.mark.parametrize("rho2", [0.0, 0.1])
def test_tied_theory_matrix_matches_tied_simulation(name, bias, rho2):
    cell, steps = matrix_cell(name), 100
    h = {MEMORY_BIAS[name]: bias, "c_x": 0.5, **{a.bias_variance: rho2 for a in cell.affines}}
    theory = analyze_tied(cell, h, steps=steps, population=8000, stationary=False)
    sim = _simulated(cell, h, steps, width=2000, seeds=3)
    for s in cell.states:
        _assert_close(theory.trajectory[s]["second_moment"], sim[s], f"{name} {h} Q_{s}")


@pytest.mark.slow  # ~15 CPU s, nearly all the networks
def test_small_population_matches_tied_networks():
    # The point of test_small_population_is_not_biased_by_its_own_covariance_noise against the independent
    # simulator: a population of 2000 (16 runs: the theory's error, its C's noise included) against four tied
    # networks of width 2000. With a covariance per group it was +6 to +12% high here (RESULTS §7b).
    cell, steps = load_cell("minimal_rnn"), 100
    h = {k: float(v) for k, v in resolve(cell, {"mu_u": 4.0, "c_x": 0.5}).items()}
    runs = np.array([Transient(cell, h, steps, population=2000, seed=s).advance(steps)[:, :, 0, 1].mean(axis=1)
                     for s in range(1, 17)])
    theory, theory_se = _window_means(runs[:, 25:], windows=3)
    net, net_se = _window_means(_simulated(cell, h, steps, width=2000, seeds=4)["h"][:, 25:], windows=3)
    allowed = np.maximum(TIED_RELATIVE * net, SIMULATION_SIGMAS * np.hypot(theory_se, net_se))
    assert np.all(np.abs(theory - net) <= allowed), f"theory {theory} +- {theory_se} vs networks {net} +- {net_se}"


@pytest.mark.slow
def test_orthogonal_weights_follow_the_same_process():
    # docs/tied.md §1: the Haar-orthogonal tied network follows the Gaussian process of the Gaussian one.
    cell, steps = load_cell("lstm"), 60
    h = {"mu_f": 3.0, "rho2_i": 0.1, "rho2_f": 0.1, "rho2_g": 0.1, "rho2_o": 0.1, "c_x": 0.5}
    theory = analyze_tied(cell, h, steps=steps, population=8000, weights="orthogonal", stationary=False)
    sim = _simulated(cell, h, steps, width=2000, seeds=3, weights="orthogonal")
    for s in cell.states:
        _assert_close(theory.trajectory[s]["second_moment"], sim[s], f"orthogonal LSTM Q_{s}")


@pytest.mark.slow
def test_stationary_solver_matches_tied_simulation():
    # LSTM mu_f = 2: tied Q_c 0.5885(24) at width 2000 and 0.5903(15) at width 3000 (benchmarks/RESULTS.md §3).
    a = analyze_tied("lstm", {"mu_f": 2.0, "c_x": 0.5}, steps=20, population=2000, window=512)
    assert a.status == Status.OK
    assert abs(a.fixed_point["Q_c"] / 0.5903 - 1) <= TIED_RELATIVE
    assert abs(a.correlation["c"] / 0.400 - 1) <= 2 * TIED_RELATIVE


@pytest.mark.slow  # ~2 min here, most of it the GRU's Jacobian derivation
def test_rule_is_judged_on_the_tied_transient_when_memory_exceeds_the_length():
    # The T = 20 GRU rule of tests/test_export_client.py: memory ~80 steps > T, so the criteria are judged on
    # t <= 20 from the zero state. m1 depends on the instantaneous gate laws (tied = untied to < 1e-3, measured
    # on torch.nn.GRU in test_export_client); its search tolerance was 0.05.
    from pathlib import Path
    from symmft.init.criteria import Criteria
    from symmft.init.tied_check import tied_criteria

    rule = json.loads((Path(__file__).parent / "data/export_client_gru_T20.json").read_text())
    verdict = tied_criteria(load_cell("gru"), rule["hyperparameters"], 20, Criteria(20, max_log_gain=1.0),
                            weights=rule["weights"], population=1000)
    assert verdict["judged_on"] == "transient" and verdict["values"]["xi"] > 20
    assert abs(verdict["values"]["m1"] - rule["criteria"]["m1"]) < 1e-3
    assert verdict["fails"] == []


#: Finite input size against torch: the issue's bar, 5% of the value, or SIMULATION_SIGMAS combined standard errors.
#: Both sides are noisy at small m: one network (16 sequences) scatters by ~9% at m = 8 (the input power
#: |x_t|^2/m and the per-unit Gram terms of only 8 coordinates, summed over a ~260-step memory), and the theory's
#: 8 parts (one input sequence each) by as much, so the sample sizes below are set for a combined standard error
#: of ~2-3% at m = 8 (1.3-2.6% at m >= 32). An earlier version compared 2 networks with one theory run: its "4-12%
#: above torch" at m = 8 was that noise (theory runs with seeds 0 and 1 differ by up to 10%).
TORCH_RELATIVE = 0.05
TORCH_NETWORKS = {8: 32, 32: 16, 512: 8, 2048: 8}  # torch.nn layers (16 sequences each) per input size
THEORY_RUNS = {8: 8, 32: 4, 512: 2, 2048: 2}  # tied-theory seeds (8 parts of 500 units each) per input size


@pytest.mark.slow  # 7-27 CPU s each (1-4 min wall under load ~15)
@pytest.mark.parametrize("cell_name", ["lstm", "gru"])
@pytest.mark.parametrize("input_size", [8, 32, 512, 2048])
def test_finite_input_size_matches_torch_built_by_an_exported_rule(cell_name, input_size, tmp_path):
    # Real torch.nn.LSTM / nn.GRU layers (width 512) initialized by the emitted module of the T = 20 rules of
    # tests/test_export_client.py (memory ~260 steps), from the zero state: the primary state's Q(t), t <= 200, in
    # four windows, against the tied theory's transient at the same input size (its 8 parts x THEORY_RUNS seeds:
    # analyze_tied's trajectory is their mean).
    import torch
    from torch_support import build_layer, exported, run_layer

    torch.set_num_threads(1)
    _, module, cell, h = exported(f"export_client_{cell_name}_T20.json", tmp_path)
    steps, state = 200, "c" if cell_name == "lstm" else "h"
    primary = cell.states.index(state)
    net = []  # (networks, steps): Q of the primary state, 16 standard-normal input sequences (q_x = 1) each
    for seed in range(TORCH_NETWORKS[input_size]):
        x = torch.randn(steps, 16, input_size, generator=torch.Generator().manual_seed(seed + 1000))
        net.append(run_layer(build_layer(module, cell_name, input_size, 512, seed), x)[0][state])
    net = np.array(net)
    groups = np.concatenate([Transient(cell, h, steps, population=4000, seed=seed, input_dim=input_size)
                             .advance(steps)[:, :, primary, 1].T for seed in range(THEORY_RUNS[input_size])])
    (th, th_se), (mean, se) = _window_means(groups), _window_means(net)
    allowed = np.maximum(TORCH_RELATIVE * mean, SIMULATION_SIGMAS * np.hypot(th_se, se))
    assert np.all(np.abs(th - mean) <= allowed), (cell_name, input_size, th, th_se, mean, se)
    if input_size <= 32:  # ... and the input size matters there: the infinite-m theory misses the network
        infinite = Transient(cell, h, steps, population=4000, seed=0).advance(steps)[:, :, primary, 1].T
        assert _window_means(infinite)[0][-1] < 0.8 * mean[-1], (input_size, _window_means(infinite)[0], mean)
