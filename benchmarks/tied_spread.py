"""The spread criterion against the real (tied) network: the relative variance of the squared singular values of
the T-step Jacobian product of finite-width tied networks at the stored critical rules, against the criterion's
value (docs/criteria.md, "spread").

What is compared, per rule (tests/data: LSTM and GRU T = 20, LSTM and the user's JANET T = 200, LSTM T = 1000):

* the untied criterion, T (m2/m1^2 - 1) at the untied fixed point (``evaluate_points(..., length=T)``: what the
  search judges);
* the tied check's free sum, sum_t (m2(t)/m1(t)^2 - 1) with the free-probability m1(t), m2(t) at the tied
  theory's moments of steps t = 1..T (``symmft.init.tied_check.tied_criteria``'s ``spread_free``, input size =
  the networks' width; the check itself now judges the spread on networks of its own, recorded as ``networks``);
* two closed forms for the product of T factors with per-step relative variance s_t: free factors add it
  exactly (for free positive a, b, phi((ab)^2) = phi(a^2) phi(b)^2 + phi(a)^2 phi(b^2) - phi(a)^2 phi(b)^2, so
  m2/m1^2 - 1 is additive: the criterion's sum); commuting independent factors (diagonal matrices, the gates'
  part of a gated cell's Jacobian, all in the units' basis) multiply 1 + s_t: prod_t (1 + s_t) - 1, reported
  with the mean s_t, ``(1 + S/T)^T - 1``. The two agree to first order in S;
* the networks: ``symmft.network.spectrum.jacobian_product_spectrum`` -- one tied network per seed (orthogonal
  recurrent weights, as the rules), a sequence of iid standard inputs from the zero state, the exact product
  P = J_{T+1} ... J_2 of the memory Jacobians (identity tangents, O(n^3) per step), its squared singular values
  by SVD; mean and standard error of m2/m1^2 - 1 over networks (and of its single-site part, ``spread_diagonal``:
  benchmarks/tied_spread_sites.py). The product is the one the tied gain
  (``symmft.theory.tangent.tied_gain``) predicts, so its log m1 is reported beside the tied check's log gain.
  Untied networks (weights redrawn every step) measure what the untied theory's product is;
* ``--off-rule``: the T = 20 LSTM rule with mu_f lowered by 2, 3.5 and 4.5, where the criterion's value reaches
  0.16-3.8, tied and untied networks: which closed form the product follows where the spread is not small;
* ``spread_at``: the tied networks' m2/m1^2 - 1 after T/4, T/2 and 3T/4 steps (how it grows with t).

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
    record = tuple(sorted({max(1, T * k // 4) for k in (1, 2, 3)} - {T}))
    runs = [jacobian_product_spectrum(cell, h, width=width, steps=T, tied=tied, weights="orthogonal", seed=s,
                                      record=record) for s in range(first_seed, first_seed + count)]
    out = {"count": count, "width": width, "cpu_seconds": time.process_time() - t0,
           "status": sorted({r["status"].name for r in runs})}
    for key in ("spread", "spread_diagonal", "log_m1", "log_spread_variance"):
        out[key] = [float(r[key]) for r in runs]
        out[f"{key}_mean"], out[f"{key}_stderr"] = mean_and_error(out[key])
    out["largest_singular_value_squared"] = [float(r["singular_values_squared"][-1]) for r in runs]
    out["spread_at"] = {t: mean_and_error([r["spread_at"][t] for r in runs]) for t in (*record, T)}
    return out


def commuting(total: float, T: int) -> float:
    """m2/m1^2 - 1 of a product of T commuting independent factors whose relative variances sum to ``total``,
    each taken as total/T: (1 + total/T)^T - 1."""
    return (1 + total / T) ** T - 1


def load_rule(name: str):
    """(cell, resolved hyperparameters, T) of a stored rule."""
    rule_file, cell_file = RULES[name]
    rule = json.loads((DATA / rule_file).read_text())
    cell = load_cell(cell_file or rule["cell"])
    return cell, {k: float(v) for k, v in resolve(cell, rule["hyperparameters"]).items()}, int(rule["length"]), rule


def compare(name: str, width: int, count: int, untied_count: int, population: int, shift: dict | None = None) -> dict:
    """One rule (with ``shift`` added to its hyperparameters, if given): criterion, tied check and networks."""
    cell, h, T, rule = load_rule(name)
    h = {k: v + (shift or {}).get(k, 0.0) for k, v in h.items()}
    t0 = time.process_time()
    untied = evaluate_points(cell, h, weights="orthogonal", length=T)
    t1 = time.process_time()
    check = tied_criteria(cell, h, T, Criteria(T), input_dim=width, population=population)
    t2 = time.process_time()
    row = {"rule": name, "rule_file": f"tests/data/{RULES[name][0]}", "cell": rule["cell"], "T": T, "width": width,
           "shift": shift or {}, "hyperparameters": h,
           "untied_criterion": float(untied["spread"][0]), "stored_criterion": rule["criteria"]["spread"],
           "untied_commuting": commuting(float(untied["spread"][0]), T),
           # the check's free sum (what it judged before it judged its own networks, now "spread")
           "tied_check": {"spread": check["values"]["spread_free"], "standard_error": check["standard_error"]["spread_free"],
                          "networks": check["values"]["spread"],
                          "log_gain": check["values"]["log_gain"], "log_gain_error": check["standard_error"]["log_gain"],
                          "log_gain_free": check["values"]["log_gain_free"], "population": population,
                          "input_dim": width, "fails": check["fails"], "uncertain": check["uncertain"],
                          "commuting": commuting(check["values"]["spread"], T)},
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
    cell, h, T, _ = load_rule(name)
    return [{"rule": name, **networks(cell, h, T, w, count, tied=True)} for w in widths]


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
    ap.add_argument("--off-rule", action="store_true",
                    help="also the T = 20 LSTM rule with mu_f lowered by 2, 3.5, 4.5 (3 tied, 3 untied networks each)")
    ap.add_argument("--quick", action="store_true", help="the T = 20 LSTM rule, width 300, 3 networks")
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/tied_spread.json"))
    args = ap.parse_args()
    if args.quick:
        args.rules, args.width, args.networks, args.widths, args.off_rule = ["lstm20"], 300, 3, [], False
    out = {"machine": machine(), "source": source_version(), "options": vars(args), "load": os.getloadavg(),
           "rows": []}
    jobs = [(name, args.networks, args.untied_networks, None) for name in args.rules]
    jobs += [("lstm20", 3, 3, {"mu_f": d}) for d in ((-2.0, -3.5, -4.5) if args.off_rule else ())]
    for name, count, untied_count, shift in jobs:
        row = compare(name, args.width, count, untied_count, args.population, shift)
        out["rows" if shift is None else "off_rule"] = [*out.get("rows" if shift is None else "off_rule", []), row]
        tn, tc = row["tied_networks"], row["tied_check"]
        un = row.get("untied_networks")
        print(f"{name} {shift or ''}: untied criterion {row['untied_criterion']:.5g}, tied check {tc['spread']:.5g}"
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
