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