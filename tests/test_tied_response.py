"""The tied network's response over a sequence (docs/tied.md §2 "lambda, xi" and §6): the mean squared gain of
the product of the memory Jacobians (symmft.theory.tangent) and the survival of a kick over a window (xi).

The reference side is the finite tied network: exact forward-mode Jacobian products of width-1000 networks
(symmft.network.spectrum, which shares only the cell file with the theory) and kicked copies of width-1000
networks stepped by symmft.network.simulate.Network. The networks' standard error is the spread over
independent networks; the theory's is the spread of its independent parts (docs/tied.md §2).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from symmft import Criteria, HyperparameterError, analyze, analyze_tied, load_cell
from symmft.cell.params import resolve
from symmft.init.tied_check import tied_criteria
from symmft.network.simulate import Network
from symmft.network.spectrum import jacobian_product_growth
from symmft.theory.tangent import tied_gain
from symmft.theory.tied import KICK

from tolerances import SIMULATION_SIGMAS

DATA = Path(__file__).parent / "data"

#: log G of width-1000 networks against the infinite-width theory: besides both standard errors, a finite-width
#: allowance. The product's log gain is a sum over T steps of per-step gains each O(1/n) off their limit, so the
#: allowance is T/n times a per-step constant. No such bias is resolved at width 1000: every measured gap (LSTM,
#: GRU, minimalRNN, T = 30-200, benchmarks/RESULTS.md §7 "the tied response") is within 1.5 combined standard
#: errors, the best resolved 0.002-0.009 at T = 200 (standard error 0.004-0.006); 0.05 T/n (0.01 at T = 200) is
#: of that size.
GAIN_WIDTH_ALLOWANCE = 0.05


def _network_log_gain(cell, h, T, networks, width=1000):
    g = [jacobian_product_growth(cell, h, width=width, steps=T, burn_in=1, tied=True, seed=s, probes=64)["log_norm2"][-1]
         for s in range(networks)]
    return float(np.mean(g)), float(np.std(g, ddof=1) / math.sqrt(networks))


def _gain_agrees(theory, theory_se, net, net_se, T, width=1000):
    bar = SIMULATION_SIGMAS * math.hypot(theory_se, net_se) + GAIN_WIDTH_ALLOWANCE * T / width
    return abs(theory - net) <= bar, bar


def test_tied_gain_matches_exact_jacobian_products_at_a_short_length():
    # LSTM at mu_f = 4 from the zero state: the memory fills over the sequence, so the product's gain is far from
    # 1 (log G ~ +1.6 over 30 steps) and the per-step m1(t) changes with t.
    cell, T = load_cell("lstm"), 30
    hp = {"mu_f": 4.0}
    g = tied_gain(cell, {k: float(v) for k, v in resolve(cell, hp).items()}, T, input_dim=1000, population=4000)
    theory, theory_se = g.total
    net, net_se = _network_log_gain(cell, hp, T, networks=3)
    ok, bar = _gain_agrees(theory, theory_se, net, net_se, T)
    assert ok, f"tied gain {theory:.4f}+-{theory_se:.4f}, networks {net:.4f}+-{net_se:.4f}, bar {bar:.3f}"
    assert len(g.log_gain) == T and np.all(np.isfinite(g.standard_error))
    # the population split into 32 independent parts instead of 8 (smaller parts: the spread benchmark's
    # fluctuation estimate) is the same process: the same networks' gain within the same bar
    g32 = tied_gain(cell, {k: float(v) for k, v in resolve(cell, hp).items()}, T, input_dim=1000, population=4000,
                    parts=32)
    ok, bar = _gain_agrees(*g32.total, net, net_se, T)
    assert ok, f"32 parts: tied gain {g32.total[0]:.4f}+-{g32.total[1]:.4f}, networks {net:.4f}+-{net_se:.4f}"
    with pytest.raises(HyperparameterError, match="length"):
        tied_gain(cell, {k: float(v) for k, v in resolve(cell, hp).items()}, 0)
    with pytest.raises(HyperparameterError, match="parts"):
        tied_gain(cell, {k: float(v) for k, v in resolve(cell, hp).items()}, T, parts=1)


@pytest.mark.slow
def test_tied_check_gain_matches_tied_networks_where_the_free_product_does_not():
    # The stored T = 200 rule and mu_f lowered by 2 (the points of docs/criteria.md): the tied check's log gain
    # (tangent DMFT) against exact products of width-1000 tied networks; the free product sum_t log m1(t), which
    # the check used before, is ~0.06 below the networks -- outside the same bar, so this test fails on it.
    cell = load_cell("lstm")
    rule = json.loads((DATA / "tied_search_lstm_T200.json").read_text())
    T = rule["length"]
    for shift in (0.0, -2.0):
        hp = {**rule["hyperparameters"], "mu_f": rule["hyperparameters"]["mu_f"] + shift}
        v = tied_criteria(cell, hp, T, Criteria(T), input_dim=1000, population=16000)
        theory, theory_se = v["values"]["log_gain"], v["standard_error"]["log_gain"]
        net, net_se = _network_log_gain(cell, hp, T, networks=3)
        ok, bar = _gain_agrees(theory, theory_se, net, net_se, T)
        assert ok, f"mu_f shift {shift}: tied gain {theory:.4f}+-{theory_se:.4f}, networks {net:.4f}+-{net_se:.4f}"
        free = v["values"]["log_gain_free"]
        assert abs(free - net) > bar, f"the free product {free:.4f} would pass too (networks {net:.4f}, bar {bar:.3f})"
        assert v["values"]["m1"] == pytest.approx(math.exp(theory / T))


def test_window_xi_of_the_vanilla_rnn_is_the_untied_rate():
    # Vanilla RNN at c_x = 1 without bias variance: a distance between two copies decays like chi_1^t, the untied
    # lambda (independent code: the untied maps). The window's survival, followed until it decays by e^-10,
    # must give the same rate.
    h = {"nu2_h": 0.8, "c_x": 1.0}
    a = analyze_tied("vanilla_rnn", h, steps=60, population=4000, response=200)
    r = a.extras["response"]
    untied = float(analyze(load_cell("vanilla_rnn"), h).lambda_)
    rate = r["log_survival"] / r["steps"]
    assert r["resolved"] and r["steps"] < 200  # decayed by e^-10 inside the window
    assert abs(rate - math.log(untied)) <= max(0.03, SIMULATION_SIGMAS * r["standard_error"] / r["steps"])
    assert r["xi"] == pytest.approx(-r["steps"] / r["log_survival"])
    with pytest.raises(HyperparameterError, match="response"):
        analyze_tied("vanilla_rnn", h, steps=5, response=3)


def _network_survival(cell, h, steps, follow, seed, width=1000, kicks=4):
    """log(D(T + tau)/D(T + 1)), tau = 1..follow, of one tied network: the kick of Transient.kick at c_x = 1."""
    net = Network(cell, h, width=width, tied=True, rng=seed)
    rng = np.random.default_rng(10_000 + seed)
    states = {s: np.zeros((width, 1)) for s in cell.states}
    for _ in range(steps):
        states = net.step(rng.standard_normal((net.input_dim, 1)), states)
    q = {s: float(np.mean(v ** 2)) for s, v in states.items()}
    cols = {s: np.repeat(v, kicks + 1, axis=1) for s, v in states.items()}
    for s in cell.states:
        cols[s][:, 1:] += KICK * math.sqrt(q[s]) * rng.standard_normal((width, kicks))
    D = []
    for _ in range(follow):
        cols = net.step(np.repeat(rng.standard_normal((net.input_dim, 1)), kicks + 1, axis=1), cols)
        D.append(sum(np.mean((cols[s][:, 1:] - cols[s][:, :1]) ** 2, axis=0) / (2 * q[s]) for s in cell.states))
    D = np.array(D).mean(axis=1)
    return np.log(D / D[0])


@pytest.mark.slow
def test_window_survival_matches_tied_networks_at_a_long_memory():
    # LSTM at the stored T = 200 rule (untied xi ~ 800): after T steps from zero a kick is followed for T steps.
    # The survival over the window, theory (input size 1000, as the networks) against 3 width-1000 networks.
    cell = load_cell("lstm")
    rule = json.loads((DATA / "tied_search_lstm_T200.json").read_text())
    T, hp = rule["length"], rule["hyperparameters"]
    a = analyze_tied(cell, hp, steps=T, response=T, input_dim=1000, population=8000, stationary=False)
    r = a.extras["response"]
    nets = np.array([_network_survival(cell, hp, T, T, seed=s) for s in range(3)])
    net, net_se = nets[:, -1].mean(), nets[:, -1].std(ddof=1) / math.sqrt(len(nets))
    bar = SIMULATION_SIGMAS * math.hypot(r["standard_error"], net_se)
    assert r["steps"] == T - 1
    assert abs(r["log_survival"] - net) <= max(bar, 0.03 * abs(net)), (r, net, net_se)


@pytest.mark.slow
def test_window_survival_resolves_the_T1000_rule_like_tied_networks():
    # The T = 1000 LSTM rule (untied xi ~ 4000), where a 60-step fit gave lambda = 1.011(11): followed for the
    # whole 1000-step window, the kicked distance does not decay but grows (log S ~ +0.4 on width-1000 and 2000
    # networks, benchmarks/RESULTS.md §7): the window must resolve that (xi = inf, criterion passed) and agree with
    # 3 width-1000 networks. Theory at infinite input size (a finite m would need ~4 GB at this length), networks
    # with 1000 inputs: measured gap 0.06 (1.3 combined standard errors), so the bar adds no allowance for m.
    cell = load_cell("lstm")
    rule = json.loads((DATA / "export_client_lstm_T1000.json").read_text())
    T, hp = rule["length"], rule["hyperparameters"]
    a = analyze_tied(cell, hp, steps=T, response=T, population=4000, stationary=False)
    r = a.extras["response"]
    nets = np.array([_network_survival(cell, hp, T, T, seed=s) for s in range(3)])
    net, net_se = nets[:, -1].mean(), nets[:, -1].std(ddof=1) / math.sqrt(len(nets))
    bar = SIMULATION_SIGMAS * math.hypot(r["standard_error"], net_se)
    assert r["steps"] == T - 1 and r["resolved"] and r["xi"] == math.inf
    assert abs(r["log_survival"] - net) <= bar, (r, net, net_se)


def _input_fields_after_fork(c_x: float, steps: int = 40, m: int = 3):
    """A finite-m LSTM transient stepped, forked and stepped on; every step's input fields of every group
    (maps, copy, group, unit) and the groups' input vectors (copy, group, m), from the site operations."""
    from symmft.theory.site import input_node
    from symmft.theory.transient import Transient

    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, {"c_x": c_x}).items()}
    run = Transient(cell, h, 2 * steps, population=256, seed=3, input_dim=m)
    x_node, fields, inputs, replicas = input_node(cell), [], [], []
    for t in range(2 * steps):
        if t == steps:
            run.fork()
        run.advance(1)
        f, B = run.ops._fields[x_node], run.draws.groups
        fields.append(f[:, :, :B].copy())
        inputs.append(np.array(run.ops._inputs)[:, :B])
        if t >= steps:
            replicas.append(f[:, :, B:].copy())
    # (t, maps, copy, group, unit) of the reference groups, (t, copy, group, m), the replicas' after the fork
    return np.array(fields), np.array(inputs), np.array(replicas)


@pytest.mark.parametrize("c_x", [1.0, 0.6])
def test_finite_input_fields_are_one_fixed_matrix_applied_to_the_inputs_and_replicas_share_them(c_x):
    """At finite m the input term of unit i is W_i x_t / sqrt(m) with W_i drawn once, N(0, 1) entries, the same for
    both copies (the rows are the network's): check that law directly on the sampler's fields, through the fork
    (where the replicas share the input's factor) and past m steps (where the factor's solve keeps only its live
    pivots). Per group and map, a least-squares fit of the fields of both copies over all 80 steps on the inputs
    must leave a residual at float32 rounding (the innovations are float32: 1e-5 of the field's scale allows
    their ~1e-7 times the conditioning of 80 steps' Cholesky rows), and the fitted W, times sqrt(m), must have
    unit variance: a chi-square over 3 x 16 x 16 x 4 = 3072 entries, within 5 of its standard error sqrt(2/3072).
    After the fork a replica's input fields equal its original's exactly (the same x, the same W)."""
    fields, x, replicas = _input_fields_after_fork(c_x)
    steps, maps, _, B, units = fields.shape
    m = x.shape[-1]
    np.testing.assert_array_equal(replicas, fields[steps // 2:])
    coef = []
    for g in range(B):
        X = np.concatenate([x[:, 0, g], x[:, 1, g]])  # (2 steps, m): both copies see the same W
        for k in range(maps):
            F = np.concatenate([fields[:, k, 0, g], fields[:, k, 1, g]])  # (2 steps, units)
            w, *_ = np.linalg.lstsq(X, F, rcond=None)
            assert np.max(np.abs(X @ w - F)) < 1e-5 * np.sqrt(np.mean(F ** 2))
            coef.append(w * math.sqrt(m))
    coef = np.array(coef)
    assert abs(np.mean(coef ** 2) - 1) < 5 * math.sqrt(2 / coef.size)


def test_finite_input_factor_grows_when_its_live_pivots_need_more_columns():
    """The input's factor keeps 2m columns (its at most m live pivots come first: all m with c_x < 1) and grows
    if a live pivot lies beyond them. Starting it with a single column forces that growth in the first steps; the
    run must equal, bit for bit, the one
    that never grows (the same arithmetic on the same columns: a grown column is the zero column it stands for)."""
    from symmft.theory.site import input_node
    from symmft.theory.transient import Transient

    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, {"c_x": 0.6}).items()}
    runs = [Transient(cell, h, 30, population=128, seed=5, input_dim=4) for _ in range(2)]
    x_node = input_node(cell)
    assert runs[0].source.chol[x_node].shape[2] == 8
    runs[1].source.chol[x_node] = runs[1].source.chol[x_node][:, :, :1]
    records = [run.advance(30) for run in runs]
    assert runs[1].source.chol[x_node].shape[2] >= 4  # the m = 4 live pivots
    np.testing.assert_array_equal(records[1], records[0])
