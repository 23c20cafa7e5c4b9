"""Real PyTorch layers as the measured side of the tied theory (tests/test_tied.py, benchmarks/torch_layers.py):
second-moment trajectories of ``torch.nn.LSTM`` / ``nn.GRU`` from the zero state, and the exact m1 of their
step Jacobian by autograd. Imports torch; symmft itself never does.

Which Jacobian (docs/tied.md §1, symmft.theory.jacobian): symmft's m1 (``analyze --weights W``, with or without
``--theory tied``; the critical search's criterion) is the *memory* Jacobian J = d p_t / d p_{t-1} over the
primary states, m1 = tr(J J^T)/n. LSTM: J = dc_t/dc_{t-1} with h_{t-1} = o_{t-1} tanh(c_{t-1}) recomputed from
c_{t-1} and the output gate o_{t-1} held; GRU: J = dh_t/dh_{t-1} (one state: memory = full). The *full*
Jacobian d(c_t, h_t)/d(c_{t-1}, h_{t-1}) (every state an independent input, m1 = tr(J J^T)/(2n)) is measured
here too, for the record: symmft's Gaussian closure refuses it for the LSTM (ClosureError).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import torch

from export_support import load_emitted
from symmft import load_cell
from symmft.cell.params import resolve
from symmft.export.spec import export_source

DATA = Path(__file__).parent / "data"


def exported(rule_file: str, directory: Path):
    """(rule, emitted torch module, cell, resolved hyperparameters) of a rule stored in tests/data, exported by
    symmft's torch exporter as a user would."""
    rule = json.loads((DATA / rule_file).read_text())
    cell = load_cell(rule["cell"])
    rule["cell_file_hash"] = cell.file_hash  # the numbers belong to the cell's function, not its comments
    module = load_emitted(export_source(rule, "torch"), directory, Path(rule_file).stem)
    return rule, module, cell, {k: float(v) for k, v in resolve(cell, rule["hyperparameters"]).items()}


def build_layer(module, cell: str, input_size: int, width: int, seed: int) -> torch.nn.Module:
    """A float32 ``nn.LSTM`` / ``nn.GRU`` initialized in place by the emitted ``module.init_``."""
    layer_type = torch.nn.LSTM if cell == "lstm" else torch.nn.GRU
    return module.init_(layer_type(input_size, width), generator=torch.Generator().manual_seed(seed))


def run_layer(layer: torch.nn.Module, x: torch.Tensor, keep: tuple[int, ...] = ()) -> tuple[dict, dict]:
    """Step ``layer`` over ``x`` (steps, batch, m) from the zero state, one call per step.

    Returns (Q, kept): Q maps each state ("c", "h" for the LSTM; "h" for the GRU) to its second moment at
    t = 1..steps, averaged over units and sequences (float64 sums); kept maps each t in ``keep`` (t >= 2) to what
    :func:`step_jacobian_m1` needs for the Jacobian of step t: x_{t-1}, x_t, h_{t-2} and the state after t-1."""
    lstm = isinstance(layer, torch.nn.LSTM)
    steps, batch, _ = x.shape
    n = layer.hidden_size
    h = torch.zeros(1, batch, n)
    state = (h, torch.zeros(1, batch, n)) if lstm else h
    q = {"c": [], "h": []} if lstm else {"h": []}
    kept, h_before = {}, h  # h_before: h_{t-2} when step t is about to run
    with torch.no_grad():
        for t in range(1, steps + 1):
            if t in keep:
                kept[t] = {"x_prev": x[t - 2], "x": x[t - 1], "h_before": h_before[0],
                           "h": (state[0] if lstm else state)[0], **({"c": state[1][0]} if lstm else {})}
            h_before = state[0] if lstm else state
            _, state = layer(x[t - 1: t], state)
            if lstm:
                q["h"].append(float((state[0].double() ** 2).mean()))
                q["c"].append(float((state[1].double() ** 2).mean()))
            else:
                q["h"].append(float((state.double() ** 2).mean()))
    return {s: np.array(v) for s, v in q.items()}, kept


def step_jacobian_m1(layer: torch.nn.Module, kept: dict, kind: str = "memory") -> np.ndarray:
    """Exact m1 = tr(J J^T)/N of the step-t Jacobian, one value per sequence of ``kept`` (from :func:`run_layer`).

    Exact, not a Hutchinson estimate: the step is run in float64 on N copies of the sequence's state, and copy
    i's gradient of its own output coordinate i is row i of J (one backward pass for all rows). ``kind``:
    "memory" (symmft's m1; see the module docstring) or "full"."""
    if kind not in ("memory", "full"):
        raise ValueError(f"kind must be 'memory' or 'full', got {kind!r}")
    layer = copy.deepcopy(layer).double()
    lstm = isinstance(layer, torch.nn.LSTM)
    n = layer.hidden_size
    out = []
    for b in range(kept["x"].shape[0]):
        x = kept["x"][b].double()
        h = kept["h"][b].double()
        if not lstm:
            prev = h.expand(n, -1).clone().requires_grad_(True)
            _, new = layer(x.expand(n, -1)[None], prev[None])
            (rows,) = torch.autograd.grad(torch.diagonal(new[0]).sum(), prev)
            out.append(float((rows ** 2).sum() / n))
            continue
        c = kept["c"][b].double()
        if kind == "memory":
            o = _output_gate(layer, kept["x_prev"][b].double(), kept["h_before"][b].double())
            # h_{t-1} recomputed from c_{t-1} with o_{t-1} held must be the layer's own h_{t-1} (float32 run)
            assert torch.allclose(o * torch.tanh(c), h, rtol=1e-4, atol=1e-6), "o_{t-1} does not reproduce h_{t-1}"
            prev = c.expand(n, -1).clone().requires_grad_(True)
            _, (_, new) = layer(x.expand(n, -1)[None], ((o * torch.tanh(prev))[None], prev[None]))
            (rows,) = torch.autograd.grad(torch.diagonal(new[0]).sum(), prev)
            out.append(float((rows ** 2).sum() / n))
            continue
        # full: copies 0..n-1 give the rows of c_t, copies n..2n-1 those of h_t (state order (c, h) as cells/lstm.py)
        c_prev = c.expand(2 * n, -1).clone().requires_grad_(True)
        h_prev = h.expand(2 * n, -1).clone().requires_grad_(True)
        _, (h_new, c_new) = layer(x.expand(2 * n, -1)[None], (h_prev[None], c_prev[None]))
        picked = torch.diagonal(c_new[0, :n]).sum() + torch.diagonal(h_new[0, n:]).sum()
        dc, dh = torch.autograd.grad(picked, (c_prev, h_prev))
        out.append(float(((dc ** 2).sum() + (dh ** 2).sum()) / (2 * n)))
    return np.array(out)


def _output_gate(layer: torch.nn.LSTM, x_prev: torch.Tensor, h_before: torch.Tensor) -> torch.Tensor:
    """o_{t-1} = sigmoid of the last of PyTorch's (i, f, g, o) gate blocks at step t-1."""
    n = layer.hidden_size
    u = (layer.weight_ih_l0 @ x_prev + layer.bias_ih_l0 + layer.weight_hh_l0 @ h_before + layer.bias_hh_l0)
    return torch.sigmoid(u[3 * n:])
