"""The tied network's response over a sequence: the window xi and the mean gain (docs/tied.md §2 and §6,
docs/criteria.md "On the tied network"), theory against width-W tied networks, the same quantity on both sides.

Sections:

* ``xi``: the kicked response followed over a whole window. Theory: ``analyze_tied(steps=T, response=T,
  input_dim=W)``: after T steps from the zero state the b copies of replicas are kicked by KICK sqrt(Q_s) of
  fresh noise (c_x = 1) and the distance D(t) = sum_s <(a - b)^2>_s / (2 Q_s(T)) is followed for T steps;
  ``extras["response"]`` gives log(D(T + tau)/D(T + 1)). Networks: :class:`symmft.network.simulate.Network` of width
  W (input size W, as the simulator's default), one reference column and ``kicks`` kicked columns, the same kick
  and the same D, identical inputs for all columns; several networks. Points: the T = 1000 LSTM rule (untied xi
  ~ 4000) and the T = 200 rule.
* ``gain``: log G(T) = log(||J_{T+1} ... J_2 delta||^2 / ||delta||^2) for the memory Jacobians from step 1 of a
  sequence. Theory: :func:`symmft.theory.tangent.tied_gain` (tangent DMFT) and, beside it, the free product
  sum_t log m1(t) the tied check used before; networks: ``jacobian_product_growth(burn_in=1, steps=T,
  tied=True, probes=64)`` (exact forward-mode tangents). Points: the T = 200 rule and mu_f lowered by 2, Gaussian
  weights (the process is exact for them).

Run from the repository root: ``python benchmarks/tied_response.py [--width 1000] [--networks 3] [--sections xi
gain]``; writes ``benchmarks/results/tied_response.json``. CPU seconds (time.process_time, one BLAS thread
recommended) per part; the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmft import Criteria, analyze_tied, load_cell  # noqa: E402
from symmft.cell import params  # noqa: E402
from symmft.init.tied_check import tied_criteria  # noqa: E402
from symmft.network.simulate import Network  # noqa: E402
from symmft.network.spectrum import jacobian_product_growth  # noqa: E402
from symmft.theory.tangent import tied_gain  # noqa: E402
from symmft.theory.tied import KICK  # noqa: E402

TAUS = (1, 10, 50, 100, 200, 500, 1000)


def network_response(cell, h: dict, width: int, steps: int, follow: int, seed: int, kicks: int = 4) -> np.ndarray:
    """log(D(T + tau)/D(T + 1)) for tau = 1..follow, one row per kicked column, of one tied network."""
    net = Network(cell, h, width=width, tied=True, rng=seed)
    rng = np.random.default_rng(10_000 + seed)
    scale = math.sqrt(net.hyperparameters["q_x"])
    states = {s: np.zeros((width, 1)) for s in cell.states}
    for _ in range(steps):
        states = net.step(scale * rng.standard_normal((net.input_dim, 1)), states)
    q = {s: float(np.mean(v ** 2)) for s, v in states.items()}
    cols = {s: np.repeat(v, kicks + 1, axis=1) for s, v in states.items()}
    for s in cell.states:  # Transient.kick with c_x = 1: KICK sqrt(Q_s) times fresh noise, every state
        cols[s][:, 1:] += KICK * math.sqrt(q[s]) * rng.standard_normal((width, kicks))
    D = []
    for _ in range(follow):
        x = scale * rng.standard_normal((net.input_dim, 1))
        cols = net.step(np.repeat(x, kicks + 1, axis=1), cols)
        D.append(sum(np.mean((cols[s][:, 1:] - cols[s][:, :1]) ** 2, axis=0) / (2 * q[s]) for s in cell.states))
    D = np.array(D)  # (follow, kicks)
    return np.log(D / D[0]).T


def xi_section(width: int, networks: int, population: int, which: tuple[str, ...] = ("T1000", "T200")) -> list[dict]:
    cell, rows = load_cell("lstm"), []
    rules = (("T1000", json.loads((ROOT / "benchmarks/results/tied_search_T1000.json").read_text())
              ["m8"]["tied"]["untied_hyperparameters"], 1000),
             ("T200", json.loads((ROOT / "tests/data/tied_search_lstm_T200.json").read_text())["hyperparameters"], 200))
    for name, h, T in (r for r in rules if r[0] in which):
        t0 = time.process_time()
        # infinite m at T = 1000, as stored (finite m held 16 per-group factors of (4T)^2 floats, ~4 GB, before
        # the input's factor kept only its live pivots' columns: RESULTS.md §7, "Cost in the tied check")
        m = width if T <= 200 else None
        a = analyze_tied(cell, h, steps=T, response=T, input_dim=m, population=population, stationary=False)
        t1 = time.process_time()
        r = a.extras["response"]
        curve = r.pop("log_survival_curve")
        nets = np.concatenate([network_response(cell, h, width, T, T, seed=s) for s in range(networks)])
        t2 = time.process_time()
        per_net = nets.reshape(networks, -1, nets.shape[1]).mean(axis=1)
        row = {"rule": name, "length": T, "width": width, "theory_input_dim": m, "population": population, "theory": r,
               "theory_lambda_least_squares": [a.lambda_, a.standard_error["lambda"]],
               "taus": [t for t in TAUS if t < T],
               "theory_log_survival": [float(curve[t]) for t in TAUS if t < T],
               "network_log_survival": [float(per_net[:, t].mean()) for t in TAUS if t < T],
               "network_standard_error": [float(per_net[:, t].std(ddof=1) / math.sqrt(networks)) for t in TAUS if t < T],
               "network_log_survival_end": [float(per_net[:, -1].mean()),
                                            float(per_net[:, -1].std(ddof=1) / math.sqrt(networks))],
               "network_xi": float(-(T - 1) / per_net[:, -1].mean()) if per_net[:, -1].mean() < 0 else math.inf,
               "theory_seconds": t1 - t0, "network_seconds": t2 - t1}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def gain_section(width: int, networks: int, population: int) -> list[dict]:
    cell, rows = load_cell("lstm"), []
    rule = json.loads((ROOT / "tests/data/tied_search_lstm_T200.json").read_text())
    T = rule["length"]
    for shift in (0.0, -2.0):
        h = {**rule["hyperparameters"], "mu_f": rule["hyperparameters"]["mu_f"] + shift}
        t0 = time.process_time()
        g = tied_gain(cell, {k: float(v) for k, v in params.resolve(cell, h).items()}, T, input_dim=width,
                      population=population)
        t1 = time.process_time()
        free = tied_criteria(cell, h, T, Criteria(T), input_dim=width, population=population)["values"]
        nets = [jacobian_product_growth(cell, h, width=width, steps=T, burn_in=1, tied=True, seed=s,
                                        probes=64)["log_norm2"][-1] for s in range(networks)]
        t2 = time.process_time()
        row = {"mu_f_shift": shift, "length": T, "width": width, "population": population,
               "tied_gain": list(g.total), "free_product": T * math.log(free["m1_free"]),
               "network": [float(np.mean(nets)), float(np.std(nets, ddof=1) / math.sqrt(networks))],
               "theory_seconds": t1 - t0, "network_seconds": t2 - t1}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--networks", type=int, default=3)
    ap.add_argument("--population", type=int, default=4000)
    ap.add_argument("--sections", nargs="+", default=["xi", "gain"])
    ap.add_argument("--rules", nargs="+", default=["T1000", "T200"], help="the xi section's points")
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/tied_response.json"))
    args = ap.parse_args()
    out = {"machine": machine(), "source": source_version(), "options": vars(args)}
    if "gain" in args.sections:
        out["gain"] = gain_section(args.width, args.networks, args.population)
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    if "xi" in args.sections:
        out["xi"] = xi_section(args.width, args.networks, args.population, tuple(args.rules))
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
