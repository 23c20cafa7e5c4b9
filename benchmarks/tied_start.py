"""Where ``analyze_tied`` starts the stationary solver: the current rule (lags window/4) against a short start
(lags min(64, window/4), the transient's covariances truncated there) at one point (RESULTS.md §7.2f).

Run: ``python benchmarks/tied_start.py POINT MODE [SEED]`` with POINT one of the names in POINTS, MODE ``old``
(the code's own rule, as committed) or ``short`` (the solver's ``lags`` and ``initial`` cut to SHORT by a wrapper,
so the same code measures both). analyze_tied at its defaults otherwise. Prints one ``RESULT`` line of JSON.
CPU seconds are process time (all threads); run under ``nice`` with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import symmft.theory.tied as tied
from symmft import analyze_tied

SHORT = 64
RHO = {f"rho2_{g}": 0.1 for g in "ifgo"}
RULE = json.loads((Path(__file__).resolve().parents[1] / "tests/data/lstm_rule_T1064_networks.json").read_text())
POINTS = {
    "mean05": {"mu_f": 4.0, "mu_g": 0.5, "c_x": 0.5},
    "mean1": {"mu_f": 4.0, "mu_g": 1.0, "c_x": 0.5},
    "rule": RULE["hyperparameters"],
    "f3": {"mu_f": 3.0, "c_x": 0.5},
    "f4": {"mu_f": 4.0, "c_x": 0.5},
    "f3rho": {"mu_f": 3.0, "c_x": 0.5, **RHO},
    "f4rho": {"mu_f": 4.0, "c_x": 0.5, **RHO},
}


def main(point: str, mode: str, seed: int = 0) -> dict:
    solve, started_at = tied.solve_stationary, []

    def wrapped(cell, h, *, lags, initial, **kw):
        if mode == "short":
            lags = min(SHORT, lags)
            initial = {node: (a[:lags], c[:lags]) for node, (a, c) in initial.items()}
        started_at.append(lags)
        return solve(cell, h, lags=lags, initial=initial, **kw)

    tied.solve_stationary = wrapped
    start, wall = time.process_time(), time.perf_counter()
    a = analyze_tied("lstm", POINTS[point], seed=seed)
    st = a.extras["stationary_solver"] or {}
    return {"point": point, "mode": mode, "seed": seed, "status": a.status.name, "solver": a.extras["solver"],
            "start_lags": started_at[0] if started_at else None,
            **{f"Q_{s}": a.fixed_point[f"Q_{s}"] for s in ("c", "h")},
            **{f"se_Q_{s}": a.standard_error[f"Q_{s}"] for s in ("c", "h")},
            **{f"C_{s}": a.fixed_point[f"Q_{s}"] * a.correlation[s] for s in ("c", "h")},
            **{k: st.get(k) for k in ("reason", "steps", "lags", "population", "ranges", "mean_source")},
            "cpu_s": time.process_time() - start, "wall_s": time.perf_counter() - wall, "load": os.getloadavg()}


if __name__ == "__main__":
    print("RESULT", json.dumps(main(sys.argv[1], sys.argv[2], *map(int, sys.argv[3:])), default=str), flush=True)
