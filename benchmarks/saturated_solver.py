"""Fixed points of a saturated memory: the LSTM over mu_f = 0..30, and the solver's cost there.

The alternative a user had before the stretched step (docs/errors.md): raise ``max_iterations`` until the slow
points converge (mu_f = 12 needed ~400; mu_f >= 24 did not converge at 2000). This script times the default solve
point by point and as one grid, and the same solve with ``max_iterations=2000`` (what a user would have tried),
in one run. Usage: python benchmarks/saturated_solver.py
"""

import time

import numpy as np

from symmft import load_cell, Status, analyze


def main() -> None:
    cell = load_cell("lstm")
    analyze(cell, {"mu_f": 1.0})  # derive and compile once
    for budget in (200, 2000):
        print(f"max_iterations={budget}")
        for mu_f in (3.0, 9.0, 12.0, 20.0, 30.0, 35.0, 1e6):
            start = time.perf_counter()
            a = analyze(cell, {"mu_f": mu_f}, max_iterations=budget)
            print(f"  mu_f={mu_f:<8g} {Status(int(a.status)).name:<14} Q_c={float(a.fixed_point['Q_c']):<12.6g} "
                  f"{time.perf_counter() - start:6.2f} s")
    grid = np.linspace(0, 30, 31)
    start = time.perf_counter()
    a = analyze(cell, {"mu_f": grid})
    counts = {s.name: int(np.sum(a.status == s)) for s in Status if np.any(a.status == s)}
    print(f"grid mu_f = 0..30 (31 points): {time.perf_counter() - start:.2f} s, {counts}")


if __name__ == "__main__":
    main()
