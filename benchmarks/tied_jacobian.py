"""Jacobian moments with tied statistics (``symmft analyze CELL --theory tied --weights W``) against the exact
Jacobian of finite-width *tied* networks (docs/tied.md §1, benchmarks/RESULTS.md §7).

What is compared, at each point (LSTM mu_f = 0, 2, 4; the PyTorch-layout GRU at its defaults):

* theory: the free-probability m1, m2 of :func:`symmft.theory.jacobian.jacobian_moments` evaluated at the tied
  theory's moments of step B (``analyze_tied(steps=B, input_dim=width)``, the transient's last step: the state the
  Jacobian of step B + 1 acts on), and, beside it, at the untied fixed point (``analyze``);
* network: :func:`symmft.network.spectrum.empirical_jacobian_moments` with ``tied=True`` -- one weight draw kept
  for B steps from the zero state, then the exact n x n memory Jacobian of step B + 1 and its singular values --
  several independent networks (mean and standard error over networks). The input size is the width (the
  simulator's default), so the theory is run with ``input_dim = width``.

``--sections product``: the mean gain over a whole sequence, which the tied critical search judges as
sum_t log m1(t) (free steps): at the stored T = 200 LSTM rule (tests/data/tied_search_lstm_T200.json) and at
mu_f lowered by 2, the theory's sum against log(tr(P P^T)/N) for the product P of the 200 exact step Jacobians
of width-1000 tied and untied networks from the zero state (64 probes, 3 networks).

Run from the repository root: ``python benchmarks/tied_jacobian.py [--width 1000] [--samples 3] [--sections
moments product]``; writes ``benchmarks/results/tied_jacobian.json``. CPU seconds per part are recorded; the
machine is shared.
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

from symmft import Criteria, analyze, analyze_tied, load_cell  # noqa: E402
from symmft.init.tied_check import moments_at_step, tied_criteria  # noqa: E402
from symmft.network.spectrum import empirical_jacobian_moments, jacobian_product_growth  # noqa: E402
from symmft.theory.jacobian import jacobian_moments  # noqa: E402

POINTS = (("lstm", {"mu_f": 0.0}), ("lstm", {"mu_f": 2.0}), ("lstm", {"mu_f": 4.0}), ("gru", {}))


def compare(cell_name: str, h: dict, weights: str, width: int, samples: int, steps: int, population: int) -> dict:
    cell = load_cell(cell_name)
    t0 = time.process_time()
    tied = moments_at_step(analyze_tied(cell, h, steps=steps, input_dim=width, population=population,
                                        stationary=False), steps)
    theory = {k: float(v) for k, v in jacobian_moments(tied, weights=weights).items() if k in ("m1", "m2")}
    t1 = time.process_time()
    untied = {k: float(v) for k, v in jacobian_moments(analyze(cell, h), weights=weights).items()
              if k in ("m1", "m2")}
    net = empirical_jacobian_moments(cell, h, width=width, burn_in=steps, tied=True, weights=weights,
                                     samples=samples, seed=1)
    t2 = time.process_time()
    row = {"cell": cell_name, "point": h, "weights": weights, "width": width, "samples": samples, "steps": steps,
           "population": population, "tied_moments": {k: v for k, v in tied.fixed_point.items()},
           "theory_seconds": t1 - t0, "network_seconds": t2 - t1}
    for key in ("m1", "m2"):
        row[key] = {"tied_theory": theory[key], "untied_theory": untied[key], "network": net[key],
                    "network_stderr": net[f"{key}_stderr"],
                    "tied_error": theory[key] / net[key] - 1, "untied_error": untied[key] / net[key] - 1}
    return row


def product(width: int, samples: int, population: int) -> list[dict]:
    cell = load_cell("lstm")
    rule = json.loads((ROOT / "tests/data/tied_search_lstm_T200.json").read_text())
    T, rows = rule["length"], []
    for shift in (0.0, -2.0):
        h = {**rule["hyperparameters"], "mu_f": rule["hyperparameters"]["mu_f"] + shift}
        v = tied_criteria(cell, h, T, Criteria(T), input_dim=width, population=population)
        row = {"mu_f_shift": shift, "theory_T_log_m1": T * math.log(v["values"]["m1"]),
               "theory_standard_error": T * v["standard_error"]["m1"] / v["values"]["m1"]}
        for tied in (True, False):
            g = [jacobian_product_growth(cell, h, width=width, steps=T, burn_in=1, tied=tied, weights="orthogonal",
                                         seed=s, probes=64)["log_norm2"][-1] for s in range(samples)]
            row["tied_network" if tied else "untied_network"] = [float(np.mean(g)), float(np.std(g, ddof=1) / math.sqrt(samples))]
        rows.append(row)
        print(row, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=3)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--population", type=int, default=4000)
    ap.add_argument("--weights", nargs="+", default=["gaussian", "orthogonal"])
    ap.add_argument("--sections", nargs="+", default=["moments", "product"])
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/tied_jacobian.json"))
    args = ap.parse_args()
    rows, out = [], {"machine": machine(), "source": source_version(), "options": vars(args)}
    if "product" in args.sections:
        out["product"] = product(args.width, args.samples, 2000)
    for weights in args.weights if "moments" in args.sections else ():
        for name, h in POINTS:
            rows.append(compare(name, h, weights, args.width, args.samples, args.steps, args.population))
            r = rows[-1]
            print(f"{name} {h} {weights}: m1 tied {r['m1']['tied_theory']:.5f} untied {r['m1']['untied_theory']:.5f} "
                  f"net {r['m1']['network']:.5f}+-{r['m1']['network_stderr']:.1e}; m2 tied {r['m2']['tied_theory']:.5f} "
                  f"untied {r['m2']['untied_theory']:.5f} net {r['m2']['network']:.5f}+-{r['m2']['network_stderr']:.1e}",
                  flush=True)
            out["rows"] = rows
            Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
