"""LSTM grids on numpy vs CuPy, in one run on the same machine: fixed point + lambda + xi (256x256) and the
phase-diagram quantities xi, m1, m2 (512x512). Run on a machine with a CUDA GPU:

    python benchmarks/gpu_grid.py            # writes benchmarks/results/gpu_grid.json
"""

from __future__ import annotations

import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np

from symmft import load_cell, analyze, jacobian_moments


def grid(n: int) -> dict:
    mu, nu = np.meshgrid(np.linspace(-2, 6, n), np.linspace(0.1, 4, n), indexing="ij")
    return {"mu_f": mu, "nu2_f": nu}


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    cell = load_cell("lstm")
    analyze(cell, grid(4)), analyze(cell, grid(4), backend="cupy")  # compile both backends, warm CuPy kernels
    rows = []
    for n, with_jacobian in ((256, False), (512, True)):
        run = {}
        for backend in ("numpy", "cupy"):
            def work():
                a = analyze(cell, grid(n), backend=backend)
                if with_jacobian:
                    jacobian_moments(a, weights="orthogonal")
                return a
            a, seconds = timed(work)
            run[backend] = (a, seconds)
        cpu, gpu = run["numpy"][0], run["cupy"][0]
        ok = cpu.status == 0
        rows.append({
            "grid": f"{n}x{n}",
            "quantities": "fixed point, lambda, xi" + (", m1, m2 (orthogonal)" if with_jacobian else ""),
            "numpy_s": run["numpy"][1],
            "cupy_s": run["cupy"][1],
            "speedup": run["numpy"][1] / run["cupy"][1],
            "max_rel_diff_Q_c": float(np.max(np.abs(gpu.fixed_point["Q_c"][ok] / cpu.fixed_point["Q_c"][ok] - 1))),
            "status_ok_fraction": float(ok.mean()),
        })
        print(rows[-1], flush=True)
    gpu_name = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True).stdout.strip()
    out = {"machine": {"gpu": gpu_name, "cpu": platform.processor() or platform.machine(), "cores": __import__("os").cpu_count()}, "rows": rows}
    path = Path(__file__).parent / "results" / "gpu_grid.json"
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
