"""The tied theory's causal transient on CuPy vs numpy, in one run on the same machine (docs/tied.md §2).

The issue's case: the LSTM at mu_f = 3, T = 400 steps, population P = 2x10^4 -- the transient alone
(``Transient.advance``), then ``analyze_tied`` with lambda's kicked replicas; a larger population on the GPU
only. numpy's times are CPU seconds (``time.process_time``) and wall seconds; CuPy's are wall seconds after a
device synchronize (a warm-up run compiles its kernels first). The numbers must agree within their standard
errors (CuPy draws with cuRAND: another population of the same process), and, with ``host_draws`` (numpy's
draws copied to the GPU), to rounding. Run on a machine with a CUDA GPU:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 python benchmarks/gpu_tied.py      # benchmarks/results/gpu_tied.json
    python benchmarks/gpu_tied.py --quick -o $OUT/gpu_tied.json                 # T = 100: a smoke test

``--cpu-only`` runs the numpy rows alone (for a machine without a GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from symmft import analyze_tied, load_cell
from symmft.backend import get_xp
from symmft.cell.params import resolve
from symmft.theory.transient import Transient

POINT = {"mu_f": 3.0}  # benchmarks/RESULTS.md §7.1's point


def _sync(backend: str) -> None:
    if backend == "cupy":
        get_xp("cupy").cuda.Device().synchronize()


def timed(backend: str, fn):
    """(result, wall seconds, CPU seconds of this process)."""
    _sync(backend)
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    _sync(backend)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def transient(backend: str, steps: int, population: int, host_draws: bool = False) -> dict:
    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, POINT).items()}

    def work():
        run = Transient(cell, h, steps, population=population, seed=1, backend=backend, host_draws=host_draws)
        return run.advance(steps)

    record, wall, cpu = timed(backend, work)
    q = record[-1, :, 0, 1]  # Q_c at t = T per group
    return {"what": "Transient.advance", "backend": backend, "host_draws": host_draws, "T": steps, "P": population,
            "wall_s": wall, "cpu_s": cpu, "Q_c_T": float(q.mean()), "se_Q_c_T": float(q.std(ddof=1) / np.sqrt(len(q))),
            "record": record}


def analysis(backend: str, steps: int, population: int) -> dict:
    a, wall, cpu = timed(backend, lambda: analyze_tied("lstm", POINT, steps=steps, population=population, seed=1,
                                                        stationary=False, backend=backend))
    se = a.standard_error
    return {"what": "analyze_tied (lambda included, no stationary solve)", "backend": backend, "T": steps,
            "P": population, "wall_s": wall, "cpu_s": cpu, "status": a.status.name,
            "Q_c": a.fixed_point["Q_c"], "se_Q_c": se["Q_c"], "lambda": a.lambda_, "se_lambda": se["lambda"]}


def _agreement(a: dict, b: dict, key: str) -> float:
    """|a - b| in combined standard errors."""
    return abs(a[key] - b[key]) / float(np.hypot(a[f"se_{key}"], b[f"se_{key}"]))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="T = 100 (a smoke test of the script)")
    p.add_argument("--cpu-only", action="store_true", help="numpy rows only")
    p.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "gpu_tied.json"))
    args = p.parse_args()
    T, P, P_big = (100, 20_000, 100_000) if args.quick else (400, 20_000, 100_000)
    backends = ("numpy",) if args.cpu_only else ("numpy", "cupy")
    rows = []
    if "cupy" in backends:
        transient("cupy", 20, 2000)  # compile CuPy's kernels, warm cuBLAS and the memory pool
        transient("cupy", 20, 2000, host_draws=True)
    runs = {b: transient(b, T, P) for b in backends}
    if "cupy" in backends:
        runs["cupy_host_draws"] = transient("cupy", T, P, host_draws=True)
    base = runs["numpy"]
    records = {name: r.pop("record") for name, r in runs.items()}
    for name, r in runs.items():
        r["speedup_wall"] = base["wall_s"] / r["wall_s"]
        if name == "cupy":
            r["agreement_Q_c_T_in_se"] = _agreement(base, r, "Q_c_T")
        if name == "cupy_host_draws":  # the same draws: rounding only
            ref = records["numpy"]
            r["max_rel_diff_moments"] = float(np.max(np.abs(records[name] - ref) / np.maximum(np.abs(ref), 1e-3)))
        rows.append(r)
        print(json.dumps(r), flush=True)
    full = {b: analysis(b, T, P) for b in backends}
    for b, r in full.items():
        r["speedup_wall"] = full["numpy"]["wall_s"] / r["wall_s"]
        if b == "cupy":
            r["agreement_in_se"] = {k: _agreement(full["numpy"], r, k) for k in ("Q_c", "lambda")}
        rows.append(r)
        print(json.dumps(r), flush=True)
    if "cupy" in backends:  # what the GPU makes affordable: 5x the population
        big = transient("cupy", T, P_big)
        big.pop("record")
        rows.append(big)
        print(json.dumps(big), flush=True)
    gpu = "none"
    if "cupy" in backends:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                             text=True).stdout.strip()
    out = {"machine": {"gpu": gpu, "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                       "load": os.getloadavg()[0], "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                       "OPENBLAS_NUM_THREADS": os.environ.get("OPENBLAS_NUM_THREADS")},
           "point": {"cell": "lstm", **POINT}, "rows": rows}
    path = Path(args.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
