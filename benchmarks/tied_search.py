"""Rules for the tied network (``symmft critical --theory tied``, docs/criteria.md "On the tied network"): what
the correction does, what it costs, and what width-1000 tied networks say about the rule before and after.

Cases (LSTM, stored untied rules of tests/data, so the untied search's time is not counted):

* ``T20``: the T = 20 rule at input sizes infinite, 4, 1 (expected: holds);
* ``T200``: the default-free T = 200 rule at input sizes infinite, 4, 1 with the default bound Q <= 10, and at
  m = 4 with a user's bound Q <= 0.3 (expected: corrected along mu_i), with 4 width-1000 tied networks (4
  sequences each) at the untied and at the corrected rule: the largest mean Q_c over t <= T.

Run from the repository root: ``python benchmarks/tied_search.py [--population 2000]``; writes
``benchmarks/results/tied_search.json``. CPU seconds (time.process_time) per case; the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmft import find_critical_tied, load_cell, simulate  # noqa: E402
from symmft.init.search import InfeasibleError  # noqa: E402

CASES = (("export_client_lstm_T20.json", None, {}), ("export_client_lstm_T20.json", 4, {}),
         ("export_client_lstm_T20.json", 1, {}), ("tied_search_lstm_T200.json", None, {}),
         ("tied_search_lstm_T200.json", 4, {}), ("tied_search_lstm_T200.json", 1, {}),
         ("tied_search_lstm_T200.json", 4, {"max_second_moment": 0.3}))


def networks(cell, h: dict, steps: int, input_dim: int | None, seeds: int = 4) -> dict:
    q = np.array([simulate(cell, h, width=1000, steps=steps, tied=True, seed=s, batch=4,
                           input_dim=input_dim).states["c"].second_moment[1:] for s in range(seeds)])
    worst = int(np.argmax(q.mean(axis=0)))
    return {"Q_c_max": float(q[:, worst].mean()), "standard_error": float(q[:, worst].std(ddof=1) / np.sqrt(seeds)),
            "at_step": worst + 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, default=2000)
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/tied_search.json"))
    args = ap.parse_args()
    cell, rows = load_cell("lstm"), []
    for name, m, thresholds in CASES:
        rule = json.loads((ROOT / "tests/data" / name).read_text())
        rule["cell_file_hash"] = cell.file_hash
        rule["thresholds"].update(thresholds)
        row = {"rule": name, "length": rule["length"], "input_dim": m, "thresholds": thresholds}
        start = time.process_time()
        try:
            out = find_critical_tied(cell, rule["length"], rule=rule, input_dim=m, population=args.population)
            t = out.tied
            row.update(status=t["status"], corrections=t["corrections"], values=t["values"],
                       standard_error=t["standard_error"], uncertain=t["uncertain"], evaluations=len(t["evaluations"]))
        except InfeasibleError as e:
            out, row["status"], row["reason"] = None, "refused", str(e)
        row["cpu_seconds"] = time.process_time() - start
        row["untied_Q_c"] = rule["criteria"]["Q_c"]
        if thresholds and out is not None:
            row["networks_untied_rule"] = networks(cell, rule["hyperparameters"], rule["length"], m)
            row["networks_tied_rule"] = networks(cell, out.hyperparameters, rule["length"], m)
        rows.append(row)
        print(json.dumps(row, default=float), flush=True)
        Path(args.output).write_text(json.dumps({"machine": machine(), "source": source_version(),
                                                 "options": vars(args), "rows": rows}, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
