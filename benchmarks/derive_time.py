"""Derivation time: load_cell + derive + compile_map for the built-in LSTM and GRU, cold, one fresh process each.

What is measured. In a new Python process (nothing cached: symmft caches derivations and compiled maps in memory
only), per cell: ``import symmft`` (with sympy, networkx, scipy), ``load_cell`` (trace the cell file),
``derive`` (sympy mean-field map, Gaussian closure), ``compile_map`` for numpy (Jacobians by differentiation,
code generation), ``compile_map`` for mpmath, and a first ``analyze`` at the default point. Each cell is run in
``--repeat`` separate processes; the median and the maximum are reported. Goal: derivation (load_cell + derive)
under 2 s per cell. The alternative a user has is writing and checking the maps by hand (grid_throughput.py's
hand-written LSTM is ~150 lines), so there is no ratio here, only the absolute time.

Run from the repository root: ``python benchmarks/derive_time.py [--quick]``; writes
``benchmarks/results/derive_time.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
CELLS = ("lstm", "gru")
STAGES = ("import", "load_cell", "derive", "compile_numpy", "compile_mpmath", "first_analyze")

# Runs in the fresh process; prints one JSON line of stage -> seconds.
CHILD = r"""
import json, sys, time
t = time.perf_counter()
from symmft import load_cell, derive, analyze
from symmft.theory.compile import compile_map
out = {"import": time.perf_counter() - t}
t = time.perf_counter(); cell = load_cell(sys.argv[1]); out["load_cell"] = time.perf_counter() - t
t = time.perf_counter(); mf = derive(cell); out["derive"] = time.perf_counter() - t
t = time.perf_counter(); compile_map(mf, "numpy"); out["compile_numpy"] = time.perf_counter() - t
t = time.perf_counter(); compile_map(mf, "mpmath"); out["compile_mpmath"] = time.perf_counter() - t
t = time.perf_counter(); a = analyze(cell); out["first_analyze"] = time.perf_counter() - t
out["keys"] = [s.name for s in mf.diagonal + mf.cross]
out["status"] = int(a.status)
print(json.dumps(out))
"""



def run(cell: str) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-c", CHILD, cell], capture_output=True, text=True, cwd=ROOT, env=env,
                          check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="one process per cell")
    p.add_argument("--repeat", type=int, default=5, help="fresh processes per cell (default 5)")
    p.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "derive_time.json"))
    a = p.parse_args(argv)
    repeat = 1 if a.quick else a.repeat

    results = {}
    print(f"{'cell':6} {'stage':32} {'median s':>9} {'max s':>7}   (fresh process each, {repeat} runs)")
    for cell in CELLS:
        runs = [run(cell) for _ in range(repeat)]
        summary = {s: {"median": statistics.median(r[s] for r in runs), "max": max(r[s] for r in runs)}
                   for s in STAGES}
        derivation = [r["load_cell"] + r["derive"] for r in runs]
        summary["derivation (load_cell + derive)"] = {"median": statistics.median(derivation), "max": max(derivation)}
        total = [sum(r[s] for s in STAGES) for r in runs]
        summary["total"] = {"median": statistics.median(total), "max": max(total)}
        for s, v in summary.items():
            print(f"{cell:6} {s:32} {v['median']:9.3f} {v['max']:7.3f}")
        results[cell] = {"runs": runs, "summary": summary, "keys": runs[0]["keys"],
                         "goal_derivation_under_2s": summary["derivation (load_cell + derive)"]["max"] < 2.0}
        print()

    out = {"benchmark": "derive_time", "machine": machine(), "source": source_version(),
           "command": " ".join(["python"] + sys.argv),
           "repeat": repeat, "cells": results}
    path = Path(a.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
