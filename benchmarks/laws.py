"""The default laws (docs/laws.md): accuracy and cost against the alternatives a user has.

* The reset-after GRU at c_x = 0.5: the exact conditional law (default at a point) against the old default (the
  moment closure) and the population closure (the Monte Carlo way to the same exact untied answer), in one run.
* Grids: a 16 x 16 GRU and LSTM grid under the default ``auto`` against ``gaussian`` (the old default), one run.

Run: ``python benchmarks/laws.py``; prints a Markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import time

import numpy as np

from symmft import load_cell, analyze, analyze_grid


def timed(f):
    start = time.perf_counter()
    out = f()
    return out, time.perf_counter() - start


def point() -> None:
    cell, h = load_cell("gru"), {"c_x": 0.5}
    analyze(cell, h, closure="exact")  # derive and compile once (sympy), not part of the per-point cost
    rows = []
    for closure in ("gaussian", "exact", "population"):
        a, seconds = timed(lambda: analyze(cell, h, closure=closure))
        rows.append((closure, float(a.fixed_point["Q_h"]), float(a.correlation["h"]), float(a.lambda_), seconds,
                     float(a.extras.get("standard_error_lambda", 0.0))))
    exact = rows[1]
    print("| closure | Q* | c* | lambda | lambda - exact | seconds |")
    print("|---|---|---|---|---|---|")
    for name, q, c, lam, seconds, se in rows:
        err = f"{lam - exact[3]:+.2e}" + (f" (se {se:.1e})" if se else "")
        print(f"| {name} | {q:.10f} | {c:.10f} | {lam:.10f} | {err} | {seconds:.1f} |")


def grids() -> None:
    print("\n| cell, 16 x 16 grid | auto (s) | gaussian (s) | ratio |")
    print("|---|---|---|---|")
    for name, axes in (("gru", {"nu2_hn": (0.5, 2), "mu_z": (-1, 2)}), ("lstm", {"nu2_g": (0.5, 2), "mu_f": (-1, 3)})):
        cell = load_cell(name)
        mesh = dict(zip(axes, np.meshgrid(*(np.linspace(a, b, 16) for a, b in axes.values()), indexing="ij")))
        times = {}
        for closure in ("auto", "gaussian"):
            analyze_grid(cell, {}, {k: v[:1, :1] for k, v in mesh.items()}, closure=closure, progress=False)  # compile
            _, times[closure] = timed(lambda: analyze_grid(cell, {}, mesh, closure=closure, progress=False))
        print(f"| {name} | {times['auto']:.2f} | {times['gaussian']:.2f} | {times['auto'] / times['gaussian']:.2f} |")


if __name__ == "__main__":
    point()
    grids()
