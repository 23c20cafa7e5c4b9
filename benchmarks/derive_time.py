"""Cold derivation time of every built-in cell: CPU seconds of sympy's work in a fresh process, with no cache.

What is measured. In a new Python process with ``SYMMFT_CACHE=off`` (nothing on disk is read or written), per
cell, the CPU time (``time.process_time``) of each stage a first use pays: ``import symmft`` (sympy, networkx,
scipy), ``load_cell`` (trace the cell file), ``derive`` (the mean-field maps: exact and Gaussian closures),
``compile_numpy`` (both maps: their Jacobians by differentiation, code generation), ``compile_mpmath`` (the
Gaussian-closure map), ``first_analyze`` (the numbers at the default point: quadrature, no sympy), and the Jacobian
moments m1, m2 for Gaussian and for orthogonal weights (derivation and code generation: the GRU's dominate).
*Derivation* is the sympy stages: derive + compile_numpy + compile_mpmath + jacobian_gaussian +
jacobian_orthogonal.

``--before PATH`` runs the same child against another source tree (e.g. ``/work/main``) in the same run,
alternating with this tree cell by cell, so both see the same machine load; the ratio before/after of the CPU
times is the speed-up. CPU time, not wall time: the machine this was written on is shared.

Run from the repository root: ``python benchmarks/derive_time.py [--before PATH] [--repeat N] [--cells ...]``;
writes ``benchmarks/results/derive_time.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
CELLS = ("vanilla_rnn", "minimal_rnn", "lstm", "gru_reset_before", "gru")
STAGES = ("import", "load_cell", "derive", "compile_numpy", "compile_mpmath", "first_analyze", "jacobian_gaussian",
          "jacobian_orthogonal")
DERIVATION = ("derive", "compile_numpy", "compile_mpmath", "jacobian_gaussian", "jacobian_orthogonal")

# Runs in the fresh process; prints one JSON line of stage -> CPU seconds (and the numbers, to compare trees).
CHILD = r"""
import json, sys, time
T = time.process_time
t = T()
from symmft import load_cell, derive, analyze, jacobian_moments
from symmft.theory.compile import compile_map
out = {"import": T() - t}
t = T(); cell = load_cell(sys.argv[1]); out["load_cell"] = T() - t
t = T(); maps = [derive(cell, closure) for closure in ("exact", "gaussian")]; out["derive"] = T() - t
t = T(); [compile_map(mf, "numpy") for mf in maps]; out["compile_numpy"] = T() - t
t = T(); compile_map(maps[1], "mpmath"); out["compile_mpmath"] = T() - t
t = T(); a = analyze(cell); out["first_analyze"] = T() - t
numbers = {"Q": [float(v) for v in a.fixed_point.values()], "lambda": float(a.lambda_)}
for weights in ("gaussian", "orthogonal"):
    t = T(); m = jacobian_moments(a, weights=weights); out["jacobian_" + weights] = T() - t
    numbers[weights] = [float(m["m1"]), float(m["m2"])]
out["numbers"] = numbers
print(json.dumps(out))
"""


def run(tree: Path, cell: str) -> dict:
    """One fresh process on ``tree``'s symmft (run from an empty folder: ``python -c`` puts the cwd first)."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONDONTWRITEBYTECODE="1", SYMMFT_CACHE="off",
               OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as empty:
        proc = subprocess.run([sys.executable, "-c", CHILD, cell], capture_output=True, text=True, cwd=empty, env=env,
                              check=True)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["derivation"] = sum(out[s] for s in DERIVATION)
    out["total"] = sum(out[s] for s in STAGES)
    return out


def _relative_gap(a: dict, b: dict) -> float:
    """Largest relative difference between two runs' numbers (zero where both are zero)."""
    flat = lambda d: [x for v in d.values() for x in (v if isinstance(v, list) else [v])]
    return max((abs(x - y) / max(abs(x), abs(y)) for x, y in zip(flat(a), flat(b)) if x != y), default=0.0)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", help="another source tree to time in the same run (e.g. /work/main)")
    p.add_argument("--repeat", type=int, default=1, help="fresh processes per cell and tree (default 1)")
    p.add_argument("--cells", nargs="+", default=list(CELLS), help="cells to time (default: every built-in one)")
    p.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "derive_time.json"))
    a = p.parse_args(argv)

    trees = {"after": ROOT} | ({"before": Path(a.before).resolve()} if a.before else {})
    columns = (*STAGES, "derivation", "total")
    results = {}
    print(f"CPU seconds, fresh process, SYMMFT_CACHE=off, median of {a.repeat}; derivation = {' + '.join(DERIVATION)}")
    print(f"{'cell':17} {'tree':6} " + " ".join(f"{c[:12]:>12}" for c in columns))
    for cell in a.cells:
        runs: dict = {name: [] for name in trees}
        for _ in range(a.repeat):
            for name, tree in reversed(trees.items()):  # alternating, so both trees see the same load
                runs[name].append(run(tree, cell))
        results[cell] = {}
        for name in trees:
            median = {c: statistics.median(r[c] for r in runs[name]) for c in columns}
            results[cell][name] = {"runs": runs[name], "median": median}
            print(f"{cell:17} {name:6} " + " ".join(f"{median[c]:12.2f}" for c in columns))
        if a.before:
            before, after = (results[cell][n]["median"] for n in ("before", "after"))
            ratio = {c: before[c] / after[c] for c in ("derivation", "total")}
            results[cell]["faster_by"] = ratio
            results[cell]["numbers_differ_by"] = gap = _relative_gap(*(results[cell][n]["runs"][0]["numbers"]
                                                                        for n in ("before", "after")))
            print(f"{cell:17} {'ratio':6} derivation {ratio['derivation']:.1f}x, total {ratio['total']:.1f}x; "
                  f"numbers (fixed point, lambda, m1, m2) agree to {gap:.1e} relative")

    out = {"benchmark": "derive_time", "machine": machine(), "source": source_version(),
           "trees": {k: str(v) for k, v in trees.items()}, "load_average": os.getloadavg(),
           "command": " ".join(["python"] + sys.argv), "repeat": a.repeat, "cells": results}
    path = Path(a.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
