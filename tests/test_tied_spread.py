"""The spread criterion (docs/criteria.md: m2/m1^2 - 1 of the T-step Jacobian product's squared singular values)
against the network people train: tied finite-width networks at the stored critical rules.

The measured side is :func:`symmft.network.spectrum.jacobian_product_spectrum` (the exact product of the memory
Jacobians, by forward tangents over the cell graph). It is first checked against torch autograd on the same
network (an independent implementation: the LSTM's step written out by hand with the output gate held, the GRU's
cell file run on torch tensors), then used to judge the criterion's value: the untied networks against the
untied criterion (free factors: the sum over steps is the product's m2/m1^2 - 1 exactly), the tied networks
against the tied check (:func:`symmft.init.tied_check.tied_criteria`). benchmarks/tied_spread.py has the full
measurement and benchmarks/RESULTS.md its table.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from symmft import Criteria, load_cell
from symmft.cell.params import resolve
from symmft.init.evaluate import evaluate_points
from symmft.init.tied_check import tied_criteria
from symmft.network.simulate import Network
from symmft.network.spectrum import jacobian_product_spectrum

DATA = Path(__file__).parent / "data"


def _rule(name: str):
    rule = json.loads((DATA / name).read_text())
    cell = load_cell(rule["cell"])
    return cell, {k: float(v) for k, v in resolve(cell, rule["hyperparameters"]).items()}, int(rule["length"])


def _network_and_inputs(cell, h: dict, width: int, seed: int, steps: int):
    """The tied network and the inputs x_1..x_{steps+1} jacobian_product_spectrum(seed=seed) draws (its
    documented seeding: jacobian_product_growth's network and inputs, from the spawned seed sequences)."""
    run, _ = np.random.SeedSequence(seed).spawn(2)
    weight_seed, input_seed = run.spawn(2)
    net = Network(cell, h, width=width, weights="orthogonal", tied=True, rng=np.random.default_rng(weight_seed))
    input_rng = np.random.default_rng(input_seed)
    xs = [math.sqrt(h["q_x"]) * input_rng.standard_normal(net.input_dim) for _ in range(steps + 1)]
    return net, xs


def _torch_product(net: Network, xs: list, steps: int) -> np.ndarray:
    """d p_{T+1} / d p_1 by torch autograd, float64: the LSTM written out (memory Jacobian: h_t = o_t tanh(c_t)
    with the output gate o_t held), any one-state cell by running its own cell file on torch tensors."""
    torch = pytest.importorskip("torch")
    W = {k: torch.tensor(np.asarray(v)) for k, v in net.matrices.items()}
    b = {k: torch.tensor(np.asarray(v)[:, 0]) for k, v in net.biases.items()}
    x = [torch.tensor(v) for v in xs]
    n = net.width
    if net.cell.name == "lstm":
        def gates(t, hidden):
            return {k: W[k, "x"] @ x[t] + W[k, "h"] @ hidden + b[k] for k in "ifgo"}

        u = gates(0, torch.zeros(n, dtype=torch.float64))
        c1, o1 = torch.sigmoid(u["i"]) * torch.tanh(u["g"]), torch.sigmoid(u["o"])

        def forward(c):
            o = o1
            for t in range(1, steps + 1):
                u = gates(t, o * torch.tanh(c))
                c = torch.sigmoid(u["f"]) * c + torch.sigmoid(u["i"]) * torch.tanh(u["g"])
                o = torch.sigmoid(u["o"]).detach()  # held: the memory Jacobian's o_t is a constant of step t
            return c

        return torch.autograd.functional.jacobian(forward, c1).numpy()
    assert len(net.cell.states) == 1, "the generic path is for one-state cells (no derived state to hold)"
    maps = {a.name: a for a in net.cell.affines}

    class TorchOps:
        tanh, sigmoid = staticmethod(torch.tanh), staticmethod(torch.sigmoid)

        def __init__(self, t):
            self.t = t

        def affine(self, name, *vectors, **named):
            u = b[name]
            for inp, v in zip(maps[name].inputs, (*vectors, *named.values())):
                u = u + W[name, inp.vector] @ (x[self.t] if v is None else v)
            return u

    def step(t, hidden):
        # the cell file's x enters only through ops.affine: pass None and let TorchOps supply x_t
        return net.cell.step(None, hidden, TorchOps(t))

    h1 = step(0, torch.zeros(n, dtype=torch.float64))

    def forward(hidden):
        for t in range(1, steps + 1):
            hidden = step(t, hidden)
        return hidden

    return torch.autograd.functional.jacobian(forward, h1).numpy()


@pytest.mark.parametrize("rule", ["export_client_lstm_T20.json", "export_client_gru_T20.json"])
def test_product_spectrum_is_the_autograd_product(rule):
    """jacobian_product_spectrum's product is the network's: its m1 and m2/m1^2 - 1 equal those of torch
    autograd's d p_{T+1}/d p_1 on the same width-40 tied network and inputs, to rounding (1e-9 relative: both are
    float64 and differ only in the order of the operations)."""
    cell, h, T = _rule(rule)
    width, seed = 40, 3
    measured = jacobian_product_spectrum(cell, h, width=width, steps=T, tied=True, weights="orthogonal", seed=seed)
    net, xs = _network_and_inputs(cell, h, width, seed, T)
    s2 = np.linalg.svd(_torch_product(net, xs, T), compute_uv=False) ** 2
    assert measured["m1"] == pytest.approx(s2.mean(), rel=1e-9)
    assert measured["spread"] == pytest.approx(np.mean(s2 ** 2) / s2.mean() ** 2 - 1, rel=1e-9)
    assert measured["spread"] > 1e-4  # a non-trivial spectrum: the comparison can fail
    P = _torch_product(net, xs, T)  # d p_{T+1} / d p_1: rows the units at T + 1
    per_unit = np.sum(P ** 2, axis=1)  # (P P^T)_ii
    assert measured["spread_diagonal"] == pytest.approx(np.mean(per_unit ** 2) / per_unit.mean() ** 2 - 1, rel=1e-9)

def _network_spreads(cell, h: dict, T: int, width: int, count: int, tied: bool, first_seed: int = 0) -> np.ndarray:
    return np.array([jacobian_product_spectrum(cell, h, width=width, steps=T, tied=tied, weights="orthogonal",
                                               seed=s)["spread"] for s in range(first_seed, first_seed + count)])


def test_spread_at_the_T20_rule_against_networks():
    """At the T = 20 LSTM rule the criterion's value (0.0053) is the untied networks' spread and 0.75-0.85 of the tied
    networks'; both are far below the threshold 1, so the verdict (holds) is the networks'.

    Measured (benchmarks/RESULTS.md, "The spread criterion against the tied network"): untied networks
    0.00503(21) at width 1000, 0.00515(21) at width 300; tied networks 1.18(3) x the tied check at width 1000,
    1.21(2) at 2000, 1.26(6) at 300 (no width trend: an infinite-width gap). Tolerances: untied within 15% (3.5
    standard errors of 6 width-300 networks); tied between 1.0 and 1.5 times the check (the measured 1.2-1.26
    with 3 standard errors of 8 networks either side)."""
    cell, h, T = _rule("export_client_lstm_T20.json")
    criterion = float(evaluate_points(cell, h, weights="orthogonal", length=T)["spread"][0])
    check = tied_criteria(cell, h, T, Criteria(T), input_dim=300, population=2000)
    untied = _network_spreads(cell, h, T, 300, 6, tied=False, first_seed=100)
    tied = _network_spreads(cell, h, T, 300, 8, tied=True)
    assert untied.mean() / criterion == pytest.approx(1.0, abs=0.15)
    assert 1.0 < tied.mean() / check["values"]["spread"] < 1.5
    assert "spread" not in check["fails"] + check["uncertain"] and tied.max() < 0.1  # same verdict: holds


@pytest.mark.slow
def test_untied_product_spread_multiplies_where_it_is_large():
    """Where the per-step spreads add up to O(1), the product of the untied network's Jacobians spreads like a
    product of commuting factors, prod_t (1 + s_t) - 1, not like free ones (sum_t s_t, the criterion): the
    gates' diagonal part of every step's Jacobian is in the same (units') basis, so the factors are not free.
    The criterion's value is the first-order term and errs low; the threshold 1 is met by the sum while the
    product's spread is already ~2.

    T = 20 LSTM rule with mu_f lowered by 3.5: criterion T s = 1.246, (1 + s)^T - 1 = 2.35; measured on 3
    width-1000 untied networks 2.21(17) (~110 CPU s). Asserted: the networks exceed the sum by more than 40% and
    agree with the commuting form within 25% (2 standard errors of 3 networks is ~15%; the rest is the uniform
    s_t of the closed form)."""
    cell, h, T = _rule("export_client_lstm_T20.json")
    h = {**h, "mu_f": h["mu_f"] - 3.5}
    total = float(evaluate_points(cell, h, weights="orthogonal", length=T)["spread"][0])
    untied = _network_spreads(cell, h, T, 1000, 3, tied=False, first_seed=100)
    assert untied.mean() > 1.4 * total
    assert untied.mean() == pytest.approx((1 + total / T) ** T - 1, rel=0.25)


@pytest.mark.slow
def test_spread_at_the_T200_rule_is_18_times_the_tied_check():
    """At the T = 200 LSTM rule the tied networks' product spreads 18 times more than the tied check's sum
    (0.1246(4) at width 1000, 0.1248(7) at width 500, against 0.00682): a tied network reuses U and every unit
    keeps its gates over the sequence, so the steps' Jacobians are correlated and their spreads add coherently.
    The verdict (holds, < 1) is still the networks'. Asserted on 3 width-500 networks (~20 CPU s; no width
    trend): between 15 and 22 times the check (measured 18.3 with 0.5% standard error; the range leaves room
    for the check's Monte Carlo population, not for a different relation).

    Where it lives: not in the units' own gains. The diagonal of P P^T (each unit's squared gain over probes)
    spreads by 0.0014(1) at width 500 (0.0018 at 300: finite-width noise included), 1.1% of the spread; the rest
    is the units' cross-correlations, (1/N) sum_{i != j} (P P^T)_ij^2 (benchmarks/RESULTS.md, "Where the tied
    spread lives"). Asserted: the diagonal part is below 5% of the spread (a per-unit mechanism, persistent gate
    rates spreading each unit's own gain, would put most of it there)."""
    cell, h, T = _rule("tied_search_lstm_T200.json")
    check = tied_criteria(cell, h, T, Criteria(T), input_dim=500, population=4000)
    runs = [jacobian_product_spectrum(cell, h, width=500, steps=T, tied=True, weights="orthogonal", seed=s)
            for s in range(3)]
    tied = np.array([r["spread"] for r in runs])
    assert 15 < tied.mean() / check["values"]["spread"] < 22
    assert "spread" not in check["fails"] and tied.max() < 1
    assert np.mean([r["spread_diagonal"] for r in runs]) < 0.05 * tied.mean()


@pytest.mark.slow
def test_spread_at_the_T1000_rule_fails_on_the_networks_while_the_criterion_holds():
    """The one wrong verdict measured: at the T = 1000 LSTM rule (tests/data/export_client_lstm_T1000.json) the
    tied check's spread is 0.028 (untied: 0.020) and the criterion holds, while the tied networks' product
    spreads 1.48(2) (width 500, 2 networks; 1.4824(17) at width 1000, 3), 53 times more, beyond the threshold 1.
    Asserted: the check holds the spread below 0.1 and does not flag it, the networks exceed 1.2 (measured
    1.466 and 1.495, standard error 1%). About 150 CPU s and 3 GB (the check's T = 1000 transient at
    population 1000). If the criterion is changed to see the tied spread, this test is the one to update."""
    cell, h, T = _rule("export_client_lstm_T1000.json")
    check = tied_criteria(cell, h, T, Criteria(T), input_dim=500, population=1000)
    assert check["values"]["spread"] < 0.1 and "spread" not in check["fails"] + check["uncertain"]
    tied = _network_spreads(cell, h, T, 500, 2, tied=True)
    assert tied.min() > 1.2


def test_product_spectrum_refuses_bad_options():
    """A recorded step must be a positive integer, as steps and seed must; the message names the option."""
    from symmft.errors import HyperparameterError

    with pytest.raises(HyperparameterError, match="record"):
        jacobian_product_spectrum("lstm", width=8, steps=3, record=(0,))
    with pytest.raises(HyperparameterError, match="steps"):
        jacobian_product_spectrum("lstm", width=8, steps=0)
