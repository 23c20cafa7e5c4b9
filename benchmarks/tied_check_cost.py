"""The tied check's cost (CPU seconds, peak memory) at a rule with a finite input size, for one or more source trees.

What: ``tied_criteria(lstm, rule, T, Criteria(T), input_dim=m, population=P)`` -- the transient with its T-step
response and the tangent run (benchmarks/RESULTS.md §7, "Cost in the tied check") -- run in a fresh process per
source tree, so that each tree's peak resident memory (resource.getrusage ru_maxrss) is its own. Give the tree
before a change as a directory (e.g. ``git archive <commit> symmft | tar -x -C /tmp/before``) to compare both in
one run; the judged values are printed beside the cost, so that a change of method shows as a change of numbers.

Run from the repository root: ``OMP_NUM_THREADS=1 python benchmarks/tied_check_cost.py --length 300
--trees before=/tmp/before after=.``; writes one JSON line per tree to stdout (and ``--output`` if given).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, time
import symmft
from symmft import Criteria, load_cell
from symmft.init.tied_check import tied_criteria
length, input_dim, population, rule = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
t0 = time.process_time()
r = tied_criteria(load_cell("lstm"), rule, length, Criteria(length), input_dim=input_dim, population=population)
cpu = time.process_time() - t0
keys = ("xi", "lambda", "log_gain", "Q_c", "m1")
print(json.dumps({"source": symmft.__file__, "cpu_seconds": cpu, "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
                  "values": {k: r["values"][k] for k in keys}, "standard_error": {k: r["standard_error"].get(k) for k in keys}}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--length", type=int, default=1000)
    ap.add_argument("--input-dim", type=int, default=8)
    ap.add_argument("--population", type=int, default=1000)
    ap.add_argument("--trees", nargs="+", default=[f"current={ROOT}"], help="name=path of a source tree")
    ap.add_argument("--output")
    args = ap.parse_args()
    rule = json.loads((ROOT / "benchmarks/results/tied_search_T1000.json").read_text())["m8"]["tied"]["untied_hyperparameters"]
    rows = []
    for spec in args.trees:
        name, path = spec.split("=", 1)
        env = {**os.environ, "PYTHONPATH": str(Path(path).resolve()), "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
        # cwd: ``python -c`` puts the working directory ahead of PYTHONPATH
        out = subprocess.run([sys.executable, "-c", CHILD, str(args.length), str(args.input_dim), str(args.population),
                              json.dumps(rule)], env=env, cwd=path, capture_output=True, text=True, check=True)
        row = {"tree": name, "length": args.length, "input_dim": args.input_dim, "population": args.population,
               "load": os.getloadavg()[0], **json.loads(out.stdout.strip().splitlines()[-1])}
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.output:
        Path(args.output).write_text("\n".join(json.dumps(r) for r in rows) + "\n")


if __name__ == "__main__":
    main()
