"""The tied-weight theory (docs/tied.md): cost, and accuracy against the tied network and the untied theory.

Sections (each writes its part of the JSON):

* ``transient``: ``analyze_tied("lstm", mu_f=3, steps=T, population=P)`` wall time (goal: T = 400, P = 2e4 in
  < 30 s on 2 cores), and its cost at smaller T and P (O(P T^2)).
* ``accuracy``: LSTM points (mu_f in {0, 2, 3, 4}, and rho2 = 0.1 on every map at mu_f = 2), c_x = 0.5: the tied
  theory's Q_c, Q_h and c*_c (stationary: the transient's tail, else the spectral solver) vs the tied network
  (``simulate(tied=True)``, width W, several independent networks, time average over the last quarter of the
  run) vs the untied theory (Gaussian closure); relative errors; and the cost ratio for the same error:
  (simulation seconds x its standard error^2) / (theory seconds x its standard error^2).
* ``stationary``: the streamed spectral solver (``solve_stationary``) on LSTM points of growing memory
  (mu_f = 3, 4, 5 at c_x = 0.5; populations P) and at the T ~ 1000 critical LSTM rule
  (benchmarks/results/trainability_T1000/lstm_T1064_qx1_rule.json, untied xi = 4262): CPU seconds, steps,
  final lag range, status, Q_c and its standard error; and, in the same run, width-2000 tied networks
  (``simulate(tied=True)``, 3 seeds) with the CPU seconds they need for the same standard error
  (seconds x (their SE / theory SE)^2, their SE from the spread of the networks' time averages).

Every time is CPU time of this process (``time.process_time``; BLAS and FFTs single-threaded with
OMP_NUM_THREADS=1), with the load average beside it.

Run from the repository root: ``python benchmarks/tied_theory.py [--quick] [--sections transient accuracy
stationary]``; writes ``benchmarks/results/tied_theory.json`` (``--output`` to change). The machine is shared:
compare times only within one run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmft.cell.params import resolve  # noqa: E402
from symmft import load_cell  # noqa: E402
from symmft import simulate  # noqa: E402
from symmft import analyze  # noqa: E402
from symmft.theory.stationary import solve_stationary  # noqa: E402
from symmft import analyze_tied  # noqa: E402

RULE = ROOT / "benchmarks/results/trainability_T1000/lstm_T1064_qx1_rule.json"
POINTS = ({"mu_f": 0.0}, {"mu_f": 2.0}, {"mu_f": 3.0}, {"mu_f": 4.0},
          {"mu_f": 2.0, "rho2_i": 0.1, "rho2_f": 0.1, "rho2_g": 0.1, "rho2_o": 0.1})


def transient(quick: bool) -> list[dict]:
    runs = [(100, 4000), (200, 4000)] if quick else [(100, 4000), (200, 4000), (400, 4000), (400, 20000)]
    out = []
    for T, P in runs:
        start = time.perf_counter()
        a = analyze_tied("lstm", {"mu_f": 3.0}, steps=T, population=P, stationary=False)
        out.append({"steps": T, "population": P, "seconds": time.perf_counter() - start,
                    "Q_c": a.fixed_point["Q_c"], "standard_error_Q_c": a.standard_error["Q_c"]})
        print(out[-1], flush=True)
    return out


def _simulated(h: dict, width: int, steps: int, seeds: int) -> dict:
    start = time.perf_counter()
    per = []
    for s in range(seeds):
        r = simulate("lstm", h, width=width, steps=steps, tied=True, seed=s, batch=4)
        tail = slice(-max(2, steps // 4), None)
        c = r.states["c"]
        per.append([c.second_moment[tail].mean(), r.states["h"].second_moment[tail].mean(),
                    c.cross_moment[tail].mean() / c.second_moment[tail].mean()])
    per = np.array(per)
    return {"mean": per.mean(axis=0).tolist(), "standard_error": (per.std(axis=0, ddof=1) / math.sqrt(seeds)).tolist(),
            "seconds": time.perf_counter() - start, "width": width, "steps": steps, "networks": seeds}


def accuracy(quick: bool) -> list[dict]:
    width, seeds, population = (1000, 2, 4000) if quick else (2000, 3, 8000)
    cell, out = load_cell("lstm"), []
    for point in POINTS[:3] if quick else POINTS:
        h = {**point, "c_x": 0.5}
        start = time.perf_counter()
        a = analyze_tied(cell, h, steps=400, population=population)
        seconds = time.perf_counter() - start
        theory = [a.fixed_point["Q_c"], a.fixed_point["Q_h"], a.correlation["c"]]
        theory_se = [a.standard_error["Q_c"], a.standard_error["Q_h"], a.standard_error["correlation_c"]]
        memory = 1 / max(1 - 1 / (1 + math.exp(-point["mu_f"])), 1e-3)
        sim = _simulated(h, width, int(max(400, 20 * memory)), seeds)
        u = analyze(cell, h)
        untied = [float(u.fixed_point["Q_c"]), float(u.fixed_point["Q_h"]), float(u.correlation["c"])]
        row = {"point": point, "theory": theory, "theory_standard_error": theory_se, "theory_seconds": seconds,
               "solver": a.extras["solver"], "status": a.status.name, "simulation": sim, "untied": untied,
               "tied_error": [t / s - 1 for t, s in zip(theory, sim["mean"])],
               "untied_error": [t / s - 1 for t, s in zip(untied, sim["mean"])],
               "cost_ratio_same_error": (sim["seconds"] * sim["standard_error"][0] ** 2)
               / (seconds * theory_se[0] ** 2)}
        out.append(row)
        print(json.dumps(row), flush=True)
    return out


def _load() -> float:
    return os.getloadavg()[0]


def _simulated_cpu(h: dict, width: int, steps: int, seeds: int, tail: int) -> dict:
    """Width-``width`` tied networks: Q_c averaged over the last ``tail`` steps, per network; CPU seconds."""
    start, per = time.process_time(), []
    for s in range(seeds):
        r = simulate("lstm", h, width=width, steps=steps, tied=True, seed=s, batch=4)
        per.append(float(r.states["c"].second_moment[-tail:].mean()))
    per = np.array(per)
    return {"Q_c": float(per.mean()), "standard_error": float(per.std(ddof=1) / math.sqrt(seeds)),
            "per_network": per.tolist(), "cpu_seconds": time.process_time() - start, "width": width,
            "steps": steps, "tail": tail, "networks": seeds, "load": _load()}


def stationary(quick: bool) -> list[dict]:
    cell, out = load_cell("lstm"), []
    rule = json.loads(RULE.read_text())
    points = [({"mu_f": 3.0, "c_x": 0.5}, 1000), ({"mu_f": 3.0, "c_x": 0.5}, 4000),
              ({"mu_f": 4.0, "c_x": 0.5}, 1000), ({"mu_f": 4.0, "c_x": 0.5}, 4000),
              ({"mu_f": 5.0, "c_x": 0.5}, 2000), (rule["hyperparameters"], 4000)]
    for point, population in points[:3] if quick else points:
        h = {k: float(v) for k, v in resolve(cell, point).items()}
        name = "T1000 rule" if point is rule["hyperparameters"] else f"mu_f={point['mu_f']:g}"
        passes = []
        start = time.process_time()
        res = solve_stationary(cell, h, lags=64, population=population, seed=0, max_steps=2 ** 17,
                               progress=passes.append)
        row = {"point": name, "population": population, "cpu_seconds": time.process_time() - start,
               "load": _load(), "converged": res["converged"], "reason": res["reason"], "steps": res["steps"],
               "lags": res["lags"], "population_used": res["population"], "Q_c": float(res["mean"][0, 1]),
               "standard_error_Q_c": float(res["standard_error"][0, 1]), "Q_h": float(res["mean"][1, 1]),
               "correlation_c": float(res["mean"][0, 2] / res["mean"][0, 1]), "passes": passes}
        print(json.dumps({k: v for k, v in row.items() if k != "passes"}), flush=True)
        out.append(row)
    return out


def simulation(quick: bool) -> list[dict]:
    """The alternative: width-2000 tied networks, for the cost at the theory's standard error."""
    runs = [({"mu_f": 3.0, "c_x": 0.5}, 600, 300), ({"mu_f": 4.0, "c_x": 0.5}, 1200, 600)]
    out = []
    for point, steps, tail in runs[:1] if quick else runs:
        row = {"point": point, **_simulated_cpu(point, 2000, steps, 3, tail)}
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def transient_cpu(quick: bool) -> list[dict]:
    """CPU seconds of the causal transient (analyze_tied with stationary=False, lambda's replicas included)."""
    out = []
    for T, P in [(100, 4000), (400, 4000)] + ([] if quick else [(400, 20000)]):
        start = time.process_time()
        a = analyze_tied("lstm", {"mu_f": 3.0}, steps=T, population=P, stationary=False)
        out.append({"steps": T, "population": P, "cpu_seconds": time.process_time() - start, "load": _load(),
                    "Q_c": a.fixed_point["Q_c"], "standard_error_Q_c": a.standard_error["Q_c"]})
        print(out[-1], flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--sections", nargs="+",
                   default=["transient", "transient_cpu", "accuracy", "stationary", "simulation"])
    p.add_argument("--output", default=str(ROOT / "benchmarks/results/tied_theory.json"))
    args = p.parse_args()
    result = {"machine": machine(), "source": source_version(), "quick": args.quick}
    for section in args.sections:
        result[section] = globals()[section](args.quick)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
