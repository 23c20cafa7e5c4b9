"""The stationary solver at the T = 1000 LSTM rule against the networks' two-time function (RESULTS.md §7.2a).

What: ``solve_stationary`` at the rule of tests/data/lstm_rule_T1064_networks.json (rho2 = 0 on every map, c_x = 1)
from a given starting lag range, every pass's Q_c, Q_h logged, and the fields' covariance gamma_h it settled on set
beside the networks' C_h(tau) from ``long_network.py --two-time``
(benchmarks/results/long_network_two_time_T1000_w500.json).
CPU seconds are process time (all threads; run it under ``nice`` with one BLAS thread: OMP_NUM_THREADS=1);
``main_thread_cpu_seconds`` is the solver's own thread (the rest: the random numbers drawn a block ahead and
the FFT workers), a bound on the wall time of an idle machine with a core for each; ``wall_seconds`` as run.

Run: ``python benchmarks/stationary_rule.py --lags 64 --population 1000 --max-steps 2097152 --output out.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from symmft import load_cell  # noqa: E402
from symmft.cell.params import resolve  # noqa: E402
from symmft.theory.stationary import solve_stationary  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--lags", type=int, default=64, help="starting lag range")
    p.add_argument("--max-lags", type=int, default=2 ** 20)
    p.add_argument("--population", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=2 ** 21)
    p.add_argument("--networks", default=str(ROOT / "benchmarks/results/long_network_two_time_T1000_w500.json"))
    p.add_argument("--output", required=True)
    a = p.parse_args()
    cell = load_cell("lstm")
    rule = json.loads((ROOT / "tests/data/lstm_rule_T1064_networks.json").read_text())
    h = {k: float(v) for k, v in resolve(cell, rule["hyperparameters"]).items()}
    passes = []

    def progress(q: dict) -> None:
        passes.append({k: q[k] for k in ("pass", "steps", "lags", "stride", "filling", "population", "Q",
                                         "standard_error_Q", "short", "drifting", "clipped", "seconds")})
        print(q["pass"], q["steps"], q["lags"], "Q_c %.2f(%.2f) Q_h %.4f" % (q["Q"][0], q["standard_error_Q"][0],
              q["Q"][1]), "cpu %.1f" % q["seconds"], flush=True)

    start, wall, main_thread = time.process_time(), time.perf_counter(), time.thread_time()
    res = solve_stationary(cell, h, lags=a.lags, population=a.population, seed=a.seed, max_lags=a.max_lags,
                           max_steps=a.max_steps, progress=progress)
    cpu, main_thread, wall = time.process_time() - start, time.thread_time() - main_thread, time.perf_counter() - wall
    networks = json.loads(Path(a.networks).read_text())
    h_node = [node for node, g in res["gamma"].items()][0]  # the LSTM's one recurrent vector, h
    fine, _, coarse, _ = res["gamma"][h_node]
    stride = res["stride"]
    beside = [{"lag": lag, "networks": c, "networks_error": e,
               "solver": float(coarse[lag // stride]) if stride > 1 and lag // stride < len(coarse)
               else float(fine[lag]) if lag < len(fine) else None}
              for lag, c, e in zip(networks["lags"], networks["C_h"], networks["standard_error_C_h"])]
    out = {"rule": "tests/data/lstm_rule_T1064_networks.json", "lags": a.lags, "population": res["population"],
           "seed": a.seed, "cpu_seconds": cpu,
           "main_thread_cpu_seconds": main_thread, "wall_seconds": wall, "load": os.getloadavg()[0], "converged": res["converged"],
           "reason": res["reason"], "Q": res["mean"][:, 1].tolist(),
           "standard_error_Q": res["standard_error"][:, 1].tolist(),
           "final_lags": res["lags"], "stride": stride, "steps": res["steps"], "ranges": res["ranges"],
           "static_fraction": res["static_fraction"], "passes": passes, "gamma_h_vs_networks": beside}
    Path(a.output).write_text(json.dumps(out, indent=1))
    print("converged", res["converged"], res["reason"], "Q", out["Q"], "se", out["standard_error_Q"], "cpu %.1f main thread %.1f wall %.1f" % (cpu, main_thread, wall))


if __name__ == "__main__":
    main()
