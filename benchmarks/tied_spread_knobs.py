"""Which knob corrects the tied network's spread: the criteria's quantities as one hyperparameter at a time moves
away from a stored LSTM rule (docs/criteria.md, "The correction").

At the T = 1000 LSTM rule (tests/data/export_client_lstm_T1000.json) finite tied networks give a spread (m2/m1^2 - 1
of the squared singular values of the product of the T memory Jacobians) of 1.48 > 1 (benchmarks/RESULTS.md). Per
point, this script measures

* the tied networks: ``symmft.network.spectrum.jacobian_product_spectrum`` (orthogonal weights, as the tied
  check; input size m = width), their spread and log m1 (the log mean squared gain log G of the product), mean
  and standard error over networks;
* the tied check, ``symmft.init.tied_check.tied_criteria`` at input size m = width: the tangent DMFT's log G
  (``log_gain``), xi, the largest second moment Q_s over t <= T, and its own spread (the free sum, or the
  networks' value once the check judges it there);

at the rule and with one change at a time: the memory gate's bias mu_f, the write gate's mu_i, a common factor on
every recurrent variance nu2_*, each nu2_k alone, the output gate's mu_o and nu2_o. ``--path KNOB`` adds a 1-D scan
of one knob (shifts, or factors for nu2); ``--rule-file`` a written rule's point (the corrected one). Every row
is cached in the output JSON by (rule, change): a rerun measures only the missing ones; ``--table`` prints them.

Run from the repository root, e.g. ``OMP_NUM_THREADS=1 nice -n 10 python benchmarks/tied_spread_knobs.py --rules
lstm200 lstm1000`` (T = 1000: ~10 s CPU a network at width 300, ~60 s a tied check at population 1000).
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
from symmft.init.tied_check import tied_criteria  # noqa: E402
from symmft.network.spectrum import jacobian_product_spectrum  # noqa: E402

DATA = ROOT / "tests" / "data"
RULES = {"lstm200": "tied_search_lstm_T200.json", "lstm1000": "export_client_lstm_T1000.json"}
GATES = "ifgo"
#: (label, {hyperparameter: ("+", shift) | ("*", factor)}) -- "nu2" alone means every recurrent variance
CHANGES = [("rule", {}),
           ("mu_i-0.5", {"mu_i": ("+", -0.5)}), ("mu_i-1", {"mu_i": ("+", -1.0)}),
           ("nu2*0.5", {"nu2": ("*", 0.5)}),
           ("mu_f-0.5", {"mu_f": ("+", -0.5)}), ("mu_f+0.3", {"mu_f": ("+", 0.3)}),
           *[(f"nu2_{k}*0.5", {f"nu2_{k}": ("*", 0.5)}) for k in GATES],
           ("mu_o-1", {"mu_o": ("+", -1.0)}), ("mu_o+1", {"mu_o": ("+", 1.0)})]


def changed(h: dict, change: dict) -> dict:
    """``h`` with ``change`` applied ("nu2" scales every nu2_k)."""
    out = dict(h)
    for name, (op, x) in change.items():
        for k in ([f"nu2_{g}" for g in GATES] if name == "nu2" else [name]):
            out[k] = out[k] + x if op == "+" else out[k] * x
    return out


def measure(cell, h: dict, T: int, width: int, networks: int, population: int) -> dict:
    """Networks' spread and log G, and the tied check's log G, xi, Q_max and spread, with CPU seconds."""
    t0 = time.process_time()
    runs = [jacobian_product_spectrum(cell, h, width=width, steps=T, tied=True, weights="orthogonal", seed=s)
            for s in range(networks)]
    t1 = time.process_time()
    check = tied_criteria(cell, h, T, Criteria(T), input_dim=width, population=population)
    t2 = time.process_time()
    v, se = check["values"], check["standard_error"]
    q_key = max((k for k in v if k.startswith("Q_")), key=lambda k: v[k])
    out = {"networks": {}, "check": {"log_gain": [v["log_gain"], se["log_gain"]], "xi": [v["xi"], se["xi"]],
                                     "Q_max": [v[q_key], se[q_key]], "Q_state": q_key,
                                     "spread": [v["spread"], se["spread"]],
                                     "spread_free": [v.get("spread_free", v["spread"]),
                                                     se.get("spread_free", se["spread"])],
                                     "fails": check["fails"], "uncertain": check["uncertain"],
                                     "status": check["status"]},
           "cpu_seconds": {"networks": t1 - t0, "check": t2 - t1}}
    for key in ("spread", "log_m1", "spread_diagonal"):
        x = np.array([float(r[key]) for r in runs])
        out["networks"][key] = [float(x.mean()), float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else math.nan]
    out["networks"]["status"] = sorted({r["status"].name for r in runs})
    return out


def table(rows: list[dict]) -> str:
    """The cached rows as Markdown: per rule and change, the networks' spread and log G, and the check's log G,
    xi and Q_max; beside each spread its ratio to the rule's."""
    lines = ["| rule | change | networks' spread | networks' log G | check's log G | check's xi | check's Q_max |",
             "|---|---|---|---|---|---|---|"]
    base = {r["rule"]: r for r in rows if r["change"] == "rule"}
    for r in rows:
        n, c, b = r["networks"], r["check"], base.get(r["rule"])
        ratio = f" (x{n['spread'][0] / b['networks']['spread'][0]:.2f})" if b and r is not b else ""
        lines.append(f"| T = {r['T']} | {r['change']} | {n['spread'][0]:.4g}({n['spread'][1]:.1g}){ratio} | "
                     f"{n['log_m1'][0]:+.3f} | {c['log_gain'][0]:+.3f}({c['log_gain'][1]:.1g}) | {c['xi'][0]:.4g} | "
                     f"{c['Q_max'][0]:.3g} ({c['Q_state']}) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: python benchmarks/tied_spread_knobs.py --rules lstm200 lstm1000")
    ap.add_argument("--rules", nargs="+", choices=sorted(RULES), default=["lstm200", "lstm1000"])
    ap.add_argument("--width", type=int, default=300)
    ap.add_argument("--networks", type=int, default=2)
    ap.add_argument("--population", type=int, default=1000, help="the tied check's population (default 1000)")
    ap.add_argument("--path", nargs=2, action="append", default=[], metavar=("KNOB", "VALUES"),
                    help="a 1-D scan: knob and comma-separated shifts (mu_*) or factors (nu2, nu2_*), "
                         "e.g. --path mu_i -1.5,-2")
    ap.add_argument("--only-path", action="store_true", help="measure only the --path points")
    ap.add_argument("--rule-file", action="append", default=[], metavar="RULE.json",
                    help="also measure the point of a written rule (e.g. the tied rule of `symmft critical --theory "
                         "tied -o`), as a row of the stored rule of the same T with change 'RULE.json'")
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/tied_spread_knobs.json"))
    ap.add_argument("--table", action="store_true", help="print the cached rows as a Markdown table and stop")
    args = ap.parse_args()
    path = Path(args.output)
    out = json.loads(path.read_text()) if path.exists() else {"rows": []}
    if args.table:
        print(table(out["rows"]))
        return
    out.update(machine=machine(), source=source_version(), options=vars(args))
    done = {(r["rule"], r["change"]) for r in out["rows"]}
    changes = [] if args.only_path else list(CHANGES)
    for knob, values in args.path:
        op = "*" if knob.startswith("nu2") else "+"
        changes += [(f"{knob}{op}{x}" if op == "*" else f"{knob}{float(x):+g}", {knob: (op, float(x))})
                    for x in values.split(",")]
    for name in args.rules:
        rule = json.loads((DATA / RULES[name]).read_text())
        cell = load_cell(rule["cell"])
        h0 = {k: float(v) for k, v in resolve(cell, rule["hyperparameters"]).items()}
        T = int(rule["length"])
        written = [Path(f) for f in args.rule_file if json.loads(Path(f).read_text())["length"] == T]
        for label, change in changes + [(f.name, f) for f in written]:
            if (name, label) in done:
                continue
            h = ({k: float(v) for k, v in resolve(cell, json.loads(change.read_text())["hyperparameters"]).items()}
                 if isinstance(change, Path) else changed(h0, change))
            row = {"rule": name, "T": T, "change": label, "width": args.width, "population": args.population,
                   "point": {k: h[k] for k in h if k.startswith(("mu_", "nu2_"))}, "load": os.getloadavg(),
                   **measure(cell, h, T, args.width, args.networks, args.population)}
            out["rows"].append(row)
            done.add((name, label))
            n, c = row["networks"], row["check"]
            print(f"{name} {label:>10}: networks spread {n['spread'][0]:.4g}({n['spread'][1]:.1g}) log G "
                  f"{n['log_m1'][0]:+.3f}; check log G {c['log_gain'][0]:+.3f}({c['log_gain'][1]:.1g}) xi "
                  f"{c['xi'][0]:.4g} {c['Q_state']} {c['Q_max'][0]:.3g} fails {c['fails']}; CPU "
                  f"{row['cpu_seconds']['networks']:.0f}+{row['cpu_seconds']['check']:.0f} s", flush=True)
            path.write_text(json.dumps(out, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
