"""The spread criterion against the real (tied) network: the relative variance of the squared singular values of
the T-step Jacobian product of finite-width tied networks at the stored critical rules, against the criterion's
value (docs/criteria.md, "spread").

What is compared, per rule (tests/data: LSTM and GRU T = 20, LSTM and the user's JANET T = 200, LSTM T = 1000):

* the untied criterion, T (m2/m1^2 - 1) at the untied fixed point (``evaluate_points(..., length=T)``: what the
  search judges);
* the tied check, sum_t (m2(t)/m1(t)^2 - 1) with the free-probability m1(t), m2(t) at the tied theory's moments
  of steps t = 1..T (``symmft.init.tied_check.tied_criteria``, input size = the networks' width). For free
  factors this sum is the product's m2/m1^2 - 1 *exactly*, not only to first order: for free positive a, b,
  phi((ab)^2) = phi(a^2) phi(b)^2 + phi(a)^2 phi(b^2) - phi(a)^2 phi(b)^2, so m2/m1^2 - 1 adds over free factors
  (T free Marchenko-Pastur factors: Fuss-Catalan, m2/m1^2 - 1 = T). What grows faster than the sum when it is
  large is the higher moments and the spectrum's log-width, not this ratio;
* the networks: ``symmft.network.spectrum.jacobian_product_spectrum`` -- one tied network per seed (orthogonal
  recurrent weights, as the rules), a sequence of iid standard inputs from the zero state, the exact product
  P = J_{T+1} ... J_2 of the memory Jacobians (identity tangents, O(n^3) per step), its squared singular values
  by SVD; mean and standard error of m2/m1^2 - 1 over networks. The product is the one the tied gain
  (``symmft.theory.tangent.tied_gain``) predicts, so its log m1 is reported beside the tied check's log gain.
  Untied networks (weights redrawn every step) measure the free-probability value itself.

Run from the repository root, e.g. ``python benchmarks/tied_spread.py --rules lstm20 gru20 --networks 4`` (about
a minute of CPU), ``--quick`` (the T = 20 LSTM rule at width 300, seconds), ``--rules lstm1000`` (about 6 CPU
minutes per network at width 1000). Writes ``benchmarks/results/tied_spread.json`` after every rule. CPU seconds
(process_time) per part are recorded; the machine is shared, so record the load too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmft import Criteria, load_cell  # noqa: E402
from symmft.cell.params import resolve  # noqa: E402
from symmft.init.evaluate import evaluate_points  # noqa: E402
from symmft.init.tied_check import tied_criteria  # noqa: E402
from symmft.network.spectrum import jacobian_product_spectrum  # noqa: E402

DATA = ROOT / "tests" / "data"
#: name -> (stored rule, the cell file when the rule's cell is not built in)
RULES = {"lstm20": ("export_client_lstm_T20.json", None), "gru20": ("export_client_gru_T20.json", None),
         "lstm200": ("tied_search_lstm_T200.json", None),
         "janet200": ("janet_rule_T200.json", DATA / "janet_one_state.py"),
         "lstm1000": ("export_client_lstm_T1000.json", None)}


def mean_and_error(values: list[float]) -> tuple[float, float]:
    """Mean and its standard error over independent networks (NaN error for one)."""
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan


def networks(cell, h: dict, T: int, width: int, count: int, tied: bool, first_seed: int = 0) -> dict:
    """The measured product spectra of ``count`` networks: per-network values, means, standard errors, CPU s."""
    t0 = time.process_time()
    runs = [jacobian_product_spectrum(cell, h, width=width, steps=T, tied=tied, weights="orthogonal", seed=s)
            for s in range(first_seed, first_seed + count)]
    out = {"count": count, "width": width, "cpu_seconds": time.process_time() - t0,
           "status": sorted({r["status"].name for r in runs})}
    for key in ("spread", "log_m1", "log_spread_variance"):
        out[key] = [float(r[key]) for r in runs]
        out[f"{key}_mean"], out[f"{key}_stderr"] = mean_and_error(out[key])
    out["largest_singular_value_squared"] = [float(r["singular_values_squared"][-1]) for r in runs]
    return out


def compare(name: str, width: int, count: int, untied_count: int, population: int) -> dict:
    rule_file, cell_file = RULES[name]
    rule = json.loads((DATA / rule_file).read_text())
    cell = load_cell(cell_file or rule["cell"])
    T = int(rule["length"])
    h = {k: float(v) for k, v in resolve(cell, rule["hyperparameters"]).items()}
    t0 = time.process_time()
    untied = evaluate_points(cell, h, weights="orthogonal", length=T)
    t1 = time.process_time()
    check = tied_criteria(cell, h, T, Criteria(T), input_dim=width, population=population)
    t2 = time.process_time()
    row = {"rule": name, "rule_file": f"tests/data/{rule_file}", "cell": rule["cell"], "T": T, "width": width,
           "untied_criterion": float(untied["spread"][0]), "stored_criterion": rule["criteria"]["spread"],
           "tied_check": {"spread": check["values"]["spread"], "standard_error": check["standard_error"]["spread"],
                          "log_gain": check["values"]["log_gain"], "log_gain_error": check["standard_error"]["log_gain"],
                          "log_gain_free": check["values"]["log_gain_free"], "population": population,
                          "input_dim": width, "fails": check["fails"], "uncertain": check["uncertain"]},
           "theory_cpu_seconds": {"untied": t1 - t0, "tied_check": t2 - t1}}
    row["tied_networks"] = networks(cell, h, T, width, count, tied=True)
    if untied_count:
        row["untied_networks"] = networks(cell, h, T, width, untied_count, tied=False, first_seed=100)
    m, e = row["tied_networks"]["spread_mean"], row["tied_networks"]["spread_stderr"]
    row["tied_over_check"] = m / row["tied_check"]["spread"]
    row["tied_over_check_error"] = e / row["tied_check"]["spread"]
    return row


def width_dependence(name: str, widths: list[int], count: int) -> list[dict]:
    """The tied networks' spread at several widths (the theory is the infinite-width limit)."""
    rule_file, cell_file = RULES[name]
    rule = json.loads((DATA / rule_file).read_text())
    cell = load_cell(cell_file or rule["cell"])
    h = {k: float(v) for k, v in resolve(cell, rule["hyperparameters"]).items()}
    return [{"rule": name, **networks(cell, h, int(rule["length"]), w, count, tied=True)} for w in widths]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python benchmarks/tied_spread.py --rules lstm20 gru20 --networks 4")
    ap.add_argument("--rules", nargs="+", choices=sorted(RULES), default=["lstm20", "gru20", "lstm200", "janet200"])
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--networks", type=int, default=4, help="tied networks per rule (default 4)")
    ap.add_argument("--untied-networks", type=int, default=0, help="untied networks per rule (default 0)")
    ap.add_argument("--widths", type=int, nargs="*", default=[],
                    help="extra widths for the first rule's tied networks (width dependence)")
    ap.add_argument("--population", type=int, default=4000, help="the tied check's population (default 4000)")
    ap.add_argument("--quick", action="store_true", help="the T = 20 LSTM rule, width 300, 3 networks")
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/tied_spread.json"))
    args = ap.parse_args()
    if args.quick:
        args.rules, args.width, args.networks, args.widths = ["lstm20"], 300, 3, []
    out = {"machine": machine(), "source": source_version(), "options": vars(args), "load": os.getloadavg(),
           "rows": []}
    for name in args.rules:
        row = compare(name, args.width, args.networks, args.untied_networks, args.population)
        out["rows"].append(row)
        tn, tc = row["tied_networks"], row["tied_check"]
        un = row.get("untied_networks")
        print(f"{name}: untied criterion {row['untied_criterion']:.5g}, tied check {tc['spread']:.5g}"
              f"({tc['standard_error']:.1g}); tied networks {tn['spread_mean']:.5g}({tn['spread_stderr']:.2g}) "
              f"= {row['tied_over_check']:.3f}({row['tied_over_check_error']:.3f}) x check; log m1 "
              f"{tn['log_m1_mean']:.4f}({tn['log_m1_stderr']:.1g}) vs tied gain {tc['log_gain']:.4f}"
              + (f"; untied networks {un['spread_mean']:.5g}({un['spread_stderr']:.2g})" if un else "")
              + f"; CPU {tn['cpu_seconds']:.0f} s", flush=True)
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    if args.widths:
        out["width_dependence"] = width_dependence(args.rules[0], args.widths, args.networks)
        for r in out["width_dependence"]:
            print(f"{r['rule']} width {r['width']}: tied networks {r['spread_mean']:.5g}({r['spread_stderr']:.2g})",
                  flush=True)
    out["load_after"] = os.getloadavg()
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
