"""The tied-weight gap (docs/theory.md §5): LSTM mean-field theory vs untied and tied finite networks.

What is compared, at mu_f in {0, 2, 4} and (mu_f = 2, rho2_f = 0.1), every other hyperparameter at its default,
two input sequences with correlation c_x = 0.5 (the state second moments do not depend on c_x; c* does):

* theory, Gaussian closure: ``analyze(cell, h)`` (numpy);
* theory, population closure: ``symmft.theory.population.analyze_population`` (exact under the untied approximation, with
  its Monte Carlo standard error);
* untied simulation: ``simulate(..., tied=False)``, weights redrawn every step -- what the theory describes;
* tied simulation: ``simulate(..., tied=True)``, the real network (one draw of weights and biases).

Reported per point: Q_c, Q_h and the memory correlation c*_c = C_c/Q_c (and c*_h), each with its standard error,
and the relative gaps tied/untied - 1 and theory/untied - 1. A simulation value is the time average over an
``average`` window after ``burn_in`` steps from the zero state, per independent network (``--seeds``; each seed
draws its own weights, initial state and inputs, ``--batch`` sequence pairs each); the standard error is the
spread of the per-seed averages / sqrt(seeds), so it includes network-to-network variation. The window length
scales with the memory time 1/(1 - E[f]) (not 1/(1 - E[f^2]): in the tied network the writes to the memory add
up coherently, and the tied c* was measured to settle much more slowly than Q: see MIN_BURN_IN). The drift
column is (second half - first half of the window) / value, and that difference in standard errors (3 networks
give a t-statistic with 2 degrees of freedom: values up to ~4 are not alarming).

Run from the repository root: ``python benchmarks/tied_gap.py [--quick] [--width 3000] [--points mu_f=3 ...]``;
writes ``benchmarks/results/tied_gap.json`` (``--output`` to change).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmft import load_cell  # noqa: E402
from symmft import analyze  # noqa: E402
from symmft.theory.gaussian import expect1  # noqa: E402
from symmft.cell.params import resolve  # noqa: E402
from symmft import analyze_population  # noqa: E402
from symmft import simulate  # noqa: E402

C_X = 0.5
# The tied network's c* settles slowly: at mu_f = 2 (memory time 6 steps) the width-2000 c_c drifted from 0.404
# (steps 50-100) to 0.397 (after 150), while Q_c was stationary after 50 steps; at mu_f = 4 (33 steps) c_c took
# ~300 steps. Hence a floor of 150 steps and 10 memory times.
MIN_BURN_IN, MIN_AVERAGE = 150, 100
DEFAULT_POINTS = ("mu_f=0", "mu_f=2", "mu_f=4", "mu_f=2,rho2_f=0.1")


def parse_point(text: str) -> dict:
    """"NAME=VALUE,NAME=VALUE" -> hyperparameters (c_x = C_X unless given)."""
    h = {"c_x": C_X}
    for part in text.split(","):
        name, _, value = part.partition("=")
        h[name.strip()] = float(value)
    return h


def label(h: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in h.items() if k != "c_x" or v != C_X)


def memory_time(cell, h, Q_h) -> float:
    """1/(1 - E[f]) at the Gaussian-closure fixed point: the slowest (coherent) relaxation of the memory."""
    r = resolve(cell, h)
    var = r["sigma2_f"] * r["q_x"] + r["nu2_f"] * Q_h + r["rho2_f"]
    Ef = float(expect1(lambda u: 0.5 * (1 + np.tanh(0.5 * u)), r["mu_f"], var))
    return 1.0 / (1.0 - Ef)


def simulate_point(cell, h, *, tied, width, batch, seeds, burn_in, average) -> dict:
    """Per-seed time averages over [burn_in, burn_in + average]; mean and standard error across seeds."""
    per_seed = []
    t0 = time.perf_counter()
    for seed in range(seeds):
        r = simulate(cell, h, width=width, steps=burn_in + average, tied=tied, batch=batch, seed=seed)
        row = {}
        for s in ("c", "h"):
            tr = r.states[s]
            win = slice(burn_in + 1, burn_in + average + 1)
            q, c = tr.second_moment[win], tr.cross_moment[win]
            half = len(q) // 2
            row[f"Q_{s}"] = float(q.mean())
            row[f"c_{s}"] = float(c.mean() / q.mean())
            row[f"Q_{s}_halves"] = (float(q[:half].mean()), float(q[half:].mean()))
            row[f"c_{s}_halves"] = (float(c[:half].mean() / q[:half].mean()), float(c[half:].mean() / q[half:].mean()))
        per_seed.append(row)
    out = {"seconds": time.perf_counter() - t0, "per_seed": per_seed}
    for k in ("Q_c", "Q_h", "c_c", "c_h"):
        v = np.array([r[k] for r in per_seed])
        se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
        halves = np.array([r[k + "_halves"] for r in per_seed])
        d = halves[:, 1] - halves[:, 0]
        d_se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else float("nan")
        out[k] = {"mean": float(v.mean()), "se": se, "drift": float(d.mean()), "drift_relative": float(d.mean() / v.mean()),
                  "drift_in_se": float(abs(d.mean()) / d_se) if d_se > 0 else float("nan")}
    return out


def gap(a: dict, b: dict) -> dict:
    """a/b - 1 with its standard error (independent a, b)."""
    r = a["mean"] / b["mean"]
    se = abs(r) * math.sqrt((a["se"] / a["mean"]) ** 2 + (b["se"] / b["mean"]) ** 2)
    return {"value": r - 1, "se": se}



def fmt(v: dict, digits=4) -> str:
    return f"{v['mean']:.{digits}f}({v['se']:.{digits}f})" if np.isfinite(v.get("se", np.nan)) else f"{v['mean']:.{digits}f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="width 1000, 2 seeds, population 40,000, half windows")
    p.add_argument("--points", nargs="+", default=list(DEFAULT_POINTS),
                   help="points as NAME=VALUE[,NAME=VALUE...] (default: mu_f=0 mu_f=2 mu_f=4 mu_f=2,rho2_f=0.1)")
    p.add_argument("--width", type=int, default=None, help="network width n (default 2000)")
    p.add_argument("--batch", type=int, default=8, help="sequence pairs per network (default 8: the tied step is a "
                   "memory-bound matrix product, so columns are nearly free)")
    p.add_argument("--seeds", type=int, default=None, help="independent networks per simulation (default 3)")
    p.add_argument("--population", type=int, default=None, help="population-closure units (default 60,000)")
    p.add_argument("--burn-in-times", type=float, default=10.0, help="burn-in in memory times 1/(1-E[f]) (>= 150 steps)")
    p.add_argument("--average-times", type=float, default=3.0, help="averaging window in memory times (>= 100 steps)")
    p.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "tied_gap.json"))
    a = p.parse_args(argv)
    width = a.width or (1000 if a.quick else 2000)
    seeds = a.seeds or (2 if a.quick else 3)
    population = a.population or (40_000 if a.quick else 60_000)
    scale = 0.5 if a.quick else 1.0
    cell = load_cell("lstm")

    results = []
    t_start = time.perf_counter()
    for text in a.points:
        h = parse_point(text)
        g = analyze(cell, h)
        theory_g = {"Q_c": float(g.fixed_point["Q_c"]), "Q_h": float(g.fixed_point["Q_h"]),
                    "c_c": float(g.correlation["c"]), "c_h": float(g.correlation["h"]), "lambda": float(g.lambda_),
                    "status": int(g.status)}
        tau = memory_time(cell, h, theory_g["Q_h"])
        burn_in = max(int(scale * MIN_BURN_IN), int(math.ceil(scale * a.burn_in_times * tau)))
        average = max(int(scale * MIN_AVERAGE), int(math.ceil(scale * a.average_times * tau)))
        t0 = time.perf_counter()
        pop = analyze_population(cell, resolve(cell, h), population=population)
        ex = pop.extras
        theory_p = {"Q_c": {"mean": float(pop.fixed_point["Q_c"]), "se": float(ex["standard_error_Q_c"])},
                    "Q_h": {"mean": float(pop.fixed_point["Q_h"]), "se": float(ex["standard_error_Q_h"])},
                    "c_c": {"mean": float(pop.correlation["c"]), "se": float("nan")},
                    "c_h": {"mean": float(pop.correlation["h"]), "se": float("nan")},
                    "status": int(pop.status), "seconds": time.perf_counter() - t0}
        # c* = C/Q: standard error from those of C and Q (first order, correlation between them ignored)
        for s in ("c", "h"):
            q, c, seq, sec = (float(pop.fixed_point[f"Q_{s}"]), float(pop.cross_fixed_point[f"C_{s}"]),
                              float(ex[f"standard_error_Q_{s}"]), float(ex[f"standard_error_C_{s}"]))
            theory_p[f"c_{s}"]["se"] = abs(c / q) * math.sqrt((seq / q) ** 2 + (sec / c) ** 2)
        kw = dict(width=width, batch=a.batch, seeds=seeds, burn_in=burn_in, average=average)
        untied = simulate_point(cell, h, tied=False, **kw)
        tied = simulate_point(cell, h, tied=True, **kw)
        row = {"point": label(h), "hyperparameters": h, "memory_time": tau, "burn_in": burn_in, "average": average,
               "theory_gaussian": theory_g, "theory_population": theory_p, "untied": untied, "tied": tied, "gaps": {}}
        for k in ("Q_c", "Q_h", "c_c", "c_h"):
            row["gaps"][k] = {
                "tied_vs_untied": gap(tied[k], untied[k]),
                "tied_vs_population": gap(tied[k], theory_p[k]),
                "population_vs_untied": gap(theory_p[k], untied[k]),
                "gaussian_vs_untied": gap({"mean": theory_g[k], "se": 0.0}, untied[k]),
                "gaussian_vs_population": gap({"mean": theory_g[k], "se": 0.0}, theory_p[k]),
            }
        results.append(row)
        print(f"[{label(h)}] memory time {tau:.1f} steps, burn-in {burn_in}, window {average}; population "
              f"{theory_p['seconds']:.0f} s, untied {untied['seconds']:.0f} s, tied {tied['seconds']:.0f} s", flush=True)

    print(f"\nLSTM, c_x = {C_X}, width {width}, {seeds} networks x {a.batch} sequence pairs; values (standard error)")
    print(f"{'point':24} {'key':4} {'gaussian':>9} {'population':>17} {'untied':>17} {'tied':>17} "
          f"{'tied/untied-1':>15} {'gauss/untied-1':>15} {'pop/untied-1':>15} {'tied drift':>16}")
    for row in results:
        for k in ("Q_c", "Q_h", "c_c", "c_h"):
            gp = row["gaps"][k]
            tg, pg, gg = gp["tied_vs_untied"], gp["population_vs_untied"], gp["gaussian_vs_untied"]
            print(f"{row['point']:24} {k:4} {row['theory_gaussian'][k]:9.4f} {fmt(row['theory_population'][k]):>17} "
                  f"{fmt(row['untied'][k]):>17} {fmt(row['tied'][k]):>17} "
                  f"{100 * tg['value']:+7.1f}({100 * tg['se']:.1f})% {100 * gg['value']:+7.1f}({100 * gg['se']:.1f})% "
                  f"{100 * pg['value']:+7.1f}({100 * pg['se']:.1f})% "
                  f"{100 * row['tied'][k]['drift_relative']:+6.1f}% ({row['tied'][k]['drift_in_se']:4.1f} se)")
    total = time.perf_counter() - t_start
    print(f"total {total:.0f} s")

    out = {"benchmark": "tied_gap", "machine": machine(), "source": source_version(),
           "command": " ".join(["python"] + sys.argv),
           "cell": "lstm", "c_x": C_X, "width": width, "input_dim": width, "batch": a.batch, "seeds": seeds,
           "population": population, "seconds": total, "points": results}
    path = Path(a.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
