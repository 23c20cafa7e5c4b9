"""The tied-weight theory (docs/tied.md): cost, and accuracy against the tied network and the untied theory.

Sections (each writes its part of the JSON):

* ``transient``: ``analyze_tied("lstm", mu_f=3, steps=T, population=P)`` wall time (goal: T = 400, P = 2e4 in
  < 30 s on 2 cores), and its cost at smaller T and P (O(P T^2)).
* ``accuracy``: LSTM points (mu_f in {0, 2, 3, 4}, and rho2 = 0.1 on every map at mu_f = 2), c_x = 0.5: the tied
  theory's Q_c, Q_h and c*_c (stationary: the transient's tail, else the spectral solver) vs the tied network
  (``simulate(tied=True)``, width W, several independent networks, time average over the last quarter of the
  run) vs the untied theory (Gaussian closure); relative errors; and the cost ratio for the same error:
  (simulation seconds x its standard error^2) / (theory seconds x its standard error^2).
* ``matrix``: the issue's matrix -- LSTM, both GRUs, minimalRNN, vanilla RNN and a user cell (tests/tied_cells.py),
  memory-gate bias in {0, 2, 3, 4}, bias variance 0 or 0.1 on every map, c_x = 0.5: second-moment trajectories t =
  1..T of the tied theory (causal transient) and of the untied law (the same site process with fields and biases
  redrawn every step: the paper's theory, from the zero state) against the tied network (``simulate(tied=True)``,
  width >= 2000, several networks), in four windows of T/4 steps; errors value/network - 1 with their standard errors
  (theory: spread of its 16 groups; network: spread between networks).
* ``widths``: the tied theory's error against networks of width 500 .. 3000 at a few long-memory points: the
  finite-width error, which must shrink as the width grows (4000 did not fit the free memory beside the other
  jobs: an LSTM of width 4000 holds 1 GB of float64 weights).
* ``late``: stationary values of every cell at memory-gate bias 2, rho2 = 0.1 (``analyze_tied``'s tail vs the
  networks' last quarter vs the untied fixed point).
* ``stationary``: the streamed spectral solver (``solve_stationary``) on LSTM points of growing memory
  (mu_f = 3, 4, 5 at c_x = 0.5; populations P) and at the T ~ 1000 critical LSTM rule
  (benchmarks/results/trainability_T1000/lstm_T1064_qx1_rule.json, untied xi = 4262; two-rate sampler, P = 1000
  and 2000): CPU seconds, steps, final lag range and stride, status, Q_c and its standard error; the rule's
  networks are long runs of ``benchmarks/long_network.py`` (10^5 steps and more); and, in the same run, width-2000 tied networks
  (``simulate(tied=True)``, 3 seeds) with the CPU seconds they need for the same standard error
  (seconds x (their SE / theory SE)^2, their SE from the spread of the networks' time averages).

Every time is CPU time of this process (``time.process_time``; BLAS and FFTs single-threaded with
OMP_NUM_THREADS=1), with the load average beside it.

Run from the repository root: ``python benchmarks/tied_theory.py [--quick] [--sections transient accuracy matrix
widths late stationary] [--tables JSON ...]``; writes ``benchmarks/results/tied_theory.json`` (``--output`` to
change) and prints the markdown tables of the matrix, widths and late sections. The machine is shared: compare
times only within one run.
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
sys.path.insert(0, str(ROOT / "tests"))

from tied_cells import MEMORY_BIAS, matrix_cell  # noqa: E402  (tests/)
from symmft.cell.params import resolve  # noqa: E402
from symmft import load_cell  # noqa: E402
from symmft import simulate  # noqa: E402
from symmft import analyze  # noqa: E402
from symmft.theory.stationary import solve_stationary  # noqa: E402
from symmft.theory.transient import Transient  # noqa: E402
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


WINDOWS = 4  # trajectories are compared as averages over WINDOWS windows of T / WINDOWS steps
SIGMAS = 5  # the bar: |error| <= max(3%, SIGMAS combined standard errors), as tests/test_tied.py


def _windows(per: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(samples, T) trajectories -> window means (WINDOWS,) and their standard errors over the samples."""
    w = np.array([[x.mean() for x in np.array_split(row, WINDOWS)] for row in per])
    return w.mean(axis=0), w.std(axis=0, ddof=1) / math.sqrt(len(w))


def _law(cell, h: dict, steps: int, population: int, tied: bool) -> tuple[dict, float]:
    """Per state, window means and standard errors (over the 16 groups) of Q(t), t = 1..steps, from the zero
    state: the tied theory (causal transient) or, tied=False, the untied law; and the CPU seconds."""
    start = time.process_time()
    record = Transient(cell, h, steps, population=population, seed=1, tied=tied).advance(steps)  # (T, G, S, 3)
    return ({s: _windows(record[:, :, i, 1].T) for i, s in enumerate(cell.states)}, time.process_time() - start)


def _network(cell, h: dict, steps: int, width: int, seeds: int) -> tuple[dict, float]:
    start = time.process_time()
    runs = [simulate(cell, h, width=width, steps=steps, tied=True, seed=s, batch=4) for s in range(seeds)]
    return ({s: _windows(np.array([r.states[s].second_moment[1:] for r in runs])) for s in cell.states},
            time.process_time() - start)


def _errors(value: tuple, network: tuple) -> dict:
    """value/network - 1 per window, its standard error, and whether it meets the bar."""
    (v, v_se), (n, n_se) = value, network
    err = v / n - 1
    se = np.abs(v / n) * np.hypot(v_se / v, n_se / n)
    return {"error": err.tolist(), "standard_error": se.tolist(),
            "within": bool(np.all(np.abs(err) <= np.maximum(0.03, SIGMAS * se)))}


def _point(cell, name: str, bias: float, rho2: float) -> dict:
    h = {MEMORY_BIAS[name]: bias, "c_x": 0.5, **{a.bias_variance: rho2 for a in cell.affines}}
    return {k: float(v) for k, v in resolve(cell, h).items()}


def matrix(quick: bool, networks_from: str | None = None) -> list[dict]:
    """The issue's matrix (module docstring); --quick: two cells, biases 0 and 4, width 1000.

    networks_from: an earlier matrix JSON whose network runs (same cells, points, width, seeds and steps) are
    reused, so that only the theories are recomputed after a change to them. The networks' code
    (``symmft.network``) shares nothing with the theories' and draws from fixed seeds, so its numbers stand.
    """
    width, seeds, population, steps = (1000, 2, 4000, 60) if quick else (2000, 4, 8000, 100)
    earlier = {}
    if networks_from:
        for row in json.loads(Path(networks_from).read_text())["matrix"]:
            earlier[row["cell"], row["bias"], row["rho2"], row["width"], row["networks"], row["steps"]] = row
    names = ("lstm", "user") if quick else tuple(sorted(MEMORY_BIAS))
    out = []
    for name in names:
        cell = matrix_cell(name)
        for rho2 in (0.0, 0.1):
            for bias in (0.0, 4.0) if quick else (0.0, 2.0, 3.0, 4.0):
                h = _point(cell, name, bias, rho2)
                tied, tied_s = _law(cell, h, steps, population, True)
                untied, untied_s = _law(cell, h, steps, population, False)
                key = (name, bias, rho2, width, seeds, steps)
                if key in earlier:
                    net = {s: tuple(np.array(x) for x in v["network"]) for s, v in earlier[key]["states"].items()}
                    net_s = earlier[key]["seconds"]["network"]
                else:
                    net, net_s = _network(cell, h, steps, width, seeds)
                row = {"cell": name, "bias": bias, "rho2": rho2, "steps": steps, "width": width, "networks": seeds,
                       "population": population, "networks_reused": key in earlier, "seconds": {"tied": tied_s, "untied": untied_s, "network": net_s},
                       "states": {s: {"network": [x.tolist() for x in net[s]],
                                      "tied_theory": [x.tolist() for x in tied[s]],
                                      "untied_theory": [x.tolist() for x in untied[s]],
                                      "tied_error": _errors(tied[s], net[s]),
                                      "untied_error": _errors(untied[s], net[s])} for s in cell.states}}
                out.append(row)
                print(name, MEMORY_BIAS[name], bias, "rho2", rho2, {
                    s: (np.round(100 * np.array(v["tied_error"]["error"]), 1).tolist(), v["tied_error"]["within"],
                        np.round(100 * np.array(v["untied_error"]["error"]), 1).tolist())
                    for s, v in row["states"].items()}, f"cpu {tied_s:.0f}/{untied_s:.0f}/{net_s:.0f} s", flush=True)
    return out


#: Long-memory points of the width sweep (cell, memory-gate bias, bias variance on every map): the largest
#: tied-theory errors of the matrix, and the LSTM with quenched biases (where the untied theory is 85% low).
SWEEP = (("lstm", 3.0, 0.0), ("lstm", 3.0, 0.1), ("gru_reset_before", 4.0, 0.0), ("user", 3.0, 0.1))


def _law_at(cell, h: dict, steps: int, population: int, input_dim: int | None) -> dict:
    record = Transient(cell, h, steps, population=population, seed=1, input_dim=input_dim).advance(steps)
    return {s: _windows(record[:, :, i, 1].T) for i, s in enumerate(cell.states)}


def widths(quick: bool) -> list[dict]:
    """The tied theory against networks of growing width n (input size m = n, simulate's default): the error
    must shrink. Two theories: infinite m (the default) and m = n (the network's input size), which separates the
    O(1/(m (1 - f))) coherent-write term (docs/tied.md §3) from the rest of the finite-width error."""
    sweep = ((500, 6), (1000, 4), (2000, 3)) if quick else ((500, 12), (1000, 8), (2000, 4), (3000, 3))
    steps, population = (60, 8000) if quick else (100, 16000)
    out = []
    for name, bias, rho2 in SWEEP[:1] if quick else SWEEP:
        cell = matrix_cell(name)
        h = _point(cell, name, bias, rho2)
        infinite = _law_at(cell, h, steps, population, None)
        row = {"cell": name, "bias": bias, "rho2": rho2, "steps": steps, "population": population,
               "tied_theory": {s: [x.tolist() for x in v] for s, v in infinite.items()}, "widths": []}
        for width, seeds in sweep:
            net, net_s = _network(cell, h, steps, width, seeds)
            finite = _law_at(cell, h, steps, population, width)
            entry = {"width": width, "networks": seeds, "seconds": net_s, "mean_error": {}}
            for label, theory in (("infinite_m", infinite), ("m_equals_width", finite)):
                errors = {s: _errors(theory[s], net[s]) for s in cell.states}
                entry[label] = errors
                # one number per width and state: the mean error over the windows (their errors are correlated,
                # so its standard error is bounded by the mean of theirs)
                entry["mean_error"][label] = {s: (float(np.mean(e["error"])), float(np.mean(e["standard_error"])))
                                              for s, e in errors.items()}
            row["widths"].append(entry)
            shown = {lab: {s: f"{100 * m:+.2f}({100 * e:.2f})%" for s, (m, e) in v.items()}
                     for lab, v in entry["mean_error"].items()}
            print(name, bias, rho2, "width", width, shown, f"cpu {net_s:.0f} s", flush=True)
        out.append(row)
    return out


def stationary(quick: bool) -> list[dict]:
    cell, out = load_cell("lstm"), []
    rule = json.loads(RULE.read_text())
    points = [({"mu_f": 3.0, "c_x": 0.5}, 1000), ({"mu_f": 4.0, "c_x": 0.5}, 1000), ({"mu_f": 5.0, "c_x": 0.5}, 2000),
              (rule["hyperparameters"], 1000), (rule["hyperparameters"], 2000),
              ({"mu_f": 3.0, "c_x": 0.5}, 4000), ({"mu_f": 4.0, "c_x": 0.5}, 4000)]
    for point, population in points[:3] if quick else points:
        h = {k: float(v) for k, v in resolve(cell, point).items()}
        name = "T1000 rule" if point is rule["hyperparameters"] else f"mu_f={point['mu_f']:g}"
        passes = []
        start = time.process_time()
        # The rule's correlations last ~10^5 steps (two-rate sampler): a budget of 2^19 steps.
        res = solve_stationary(cell, h, lags=64, population=population, seed=0,
                               max_steps=2 ** 19 if name == "T1000 rule" else 2 ** 17, progress=passes.append)
        row = {"point": name, "population": population, "cpu_seconds": time.process_time() - start,
               "load": _load(), "converged": res["converged"], "reason": res["reason"], "steps": res["steps"],
               "lags": res["lags"], "stride": res["stride"],
               "population_used": res["population"], "Q_c": float(res["mean"][0, 1]),
               "standard_error_Q_c": float(res["standard_error"][0, 1]), "Q_h": float(res["mean"][1, 1]),
               "correlation_c": float(res["mean"][0, 2] / res["mean"][0, 1]), "passes": passes}
        print(json.dumps({k: v for k, v in row.items() if k != "passes"}), flush=True)
        print("passes Q_c:", [(p["steps"], p["lags"], round(p["Q"][0], 2)) for p in passes], flush=True)
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


def late(quick: bool) -> list[dict]:
    """Stationary values: ``analyze_tied`` (its transient's last quarter, status OK when it has settled) against
    the networks' last quarter and the untied fixed point (``analyze``), every cell at memory-gate bias 2 with
    rho2 = 0.1 on every map (the tied memory is then tens of steps: settled within 200)."""
    width, seeds, population, steps = (1000, 2, 4000, 100) if quick else (2000, 3, 8000, 200)
    out = []
    for name in ("lstm", "user") if quick else tuple(sorted(MEMORY_BIAS)):
        cell = matrix_cell(name)
        h = _point(cell, name, 2.0, 0.1)
        start = time.process_time()
        a = analyze_tied(cell, h, steps=steps, population=population, stationary=False)
        theory_s = time.process_time() - start
        runs = [simulate(cell, h, width=width, steps=steps, tied=True, seed=s, batch=4) for s in range(seeds)]
        untied = analyze(cell, h)
        row = {"cell": name, "steps": steps, "width": width, "networks": seeds, "status": a.status.name,
               "theory_seconds": theory_s, "states": {}}
        for s in cell.states:
            per = np.array([r.states[s].second_moment[-(steps // 4):].mean() for r in runs])
            net, net_se = per.mean(), per.std(ddof=1) / math.sqrt(seeds)
            q, q_se, u = a.fixed_point[f"Q_{s}"], a.standard_error[f"Q_{s}"], float(untied.fixed_point[f"Q_{s}"])
            row["states"][s] = {"network": [net, net_se], "tied_theory": [q, q_se], "untied_theory": u,
                                "tied_error": [q / net - 1, math.hypot(q_se / net, q * net_se / net ** 2)],
                                "untied_error": u / net - 1}
        out.append(row)
        print(name, a.status.name, {s: f"{100 * v['tied_error'][0]:+.2f}({100 * v['tied_error'][1]:.2f})% untied "
                                        f"{100 * v['untied_error']:+.1f}%" for s, v in row["states"].items()},
              f"theory cpu {theory_s:.0f} s", flush=True)
    return out


def tables(result: dict) -> str:
    """Markdown tables of the matrix and widths sections (for benchmarks/RESULTS.md)."""
    lines = []
    rows = result.get("matrix") or []
    if rows:
        points = sorted({(r["rho2"], r["bias"]) for r in rows})
        head = " | ".join(f"b={b:g}, rho2={r:g}" for r, b in points)
        for title, pick in (("last window: tied theory error / untied theory error", "last"),
                            ("worst window: tied theory error (combined standard error)", "worst")):
            lines += [f"\n{title} (%)\n", f"| cell | Q of | {head} |", "|---|---|" + "---|" * len(points)]
            for name in dict.fromkeys(r["cell"] for r in rows):
                for state in next(r for r in rows if r["cell"] == name)["states"]:
                    cells = []
                    for point in points:
                        r = next(r for r in rows if r["cell"] == name and (r["rho2"], r["bias"]) == point)
                        t, u = r["states"][state]["tied_error"], r["states"][state]["untied_error"]
                        if pick == "last":
                            cells.append(f"{100 * t['error'][-1]:+.1f} / {100 * u['error'][-1]:+.1f}")
                        else:
                            k = int(np.argmax(np.abs(t["error"])))
                            mark = "" if t["within"] else " **!**"
                            cells.append(f"{100 * t['error'][k]:+.1f} ({100 * t['standard_error'][k]:.1f}){mark}")
                    lines.append(f"| {name} | {state} | " + " | ".join(cells) + " |")
    if result.get("late"):
        lines += ["\nstationary values (last quarter of the run): error (standard error), %\n",
                  "| cell | Q of | tied theory status | network | tied theory error | untied theory error |",
                  "|---|---|---|---|---|---|"]
        for row in result["late"]:
            for s, v in row["states"].items():
                lines.append(f"| {row['cell']} | {s} | {row['status']} | {v['network'][0]:.4g} ({v['network'][1]:.2g}) "
                             f"| {100 * v['tied_error'][0]:+.1f} ({100 * v['tied_error'][1]:.1f}) "
                             f"| {100 * v['untied_error']:+.1f} |")
    for row in result.get("widths") or []:
        states = list(row["tied_theory"])
        lines += [f"\n{row['cell']}, bias {row['bias']:g}, rho2 {row['rho2']:g}: mean error over the windows "
                  "(standard error), and the spread of one network (%)\n",
                  "| width | networks | " + " | ".join(f"Q_{s}: m = inf | m = n | one network's spread"
                                                        for s in states) + " |",
                  "|---|---|" + "---|---|---|" * len(states)]
        for w in row["widths"]:
            m, cells = w["mean_error"], []
            for s in states:
                # the network's own relative standard error: the combined one less the theory's (independent)
                theory, theory_se = (np.array(x) for x in row["tied_theory"][s])
                e = w["infinite_m"][s]
                combined = np.array(e["standard_error"]) / np.abs(1 + np.array(e["error"]))
                own = np.sqrt(np.maximum(combined ** 2 - (theory_se / theory) ** 2, 0))
                cells.append(f"{100 * m['infinite_m'][s][0]:+.2f} ({100 * m['infinite_m'][s][1]:.2f}) | "
                             f"{100 * m['m_equals_width'][s][0]:+.2f} ({100 * m['m_equals_width'][s][1]:.2f}) | "
                             f"{100 * own.mean() * math.sqrt(w['networks']):.1f}")
            lines.append(f"| {w['width']} | {w['networks']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="smaller runs of every section (minutes)")
    p.add_argument("--sections", nargs="+",
                   default=["transient", "transient_cpu", "accuracy", "stationary", "simulation"],
                   choices=["transient", "transient_cpu", "accuracy", "matrix", "widths", "late",
                            "stationary", "simulation"])
    p.add_argument("--output", default=str(ROOT / "benchmarks/results/tied_theory.json"))
    p.add_argument("--tables", nargs="+", metavar="JSON", help="only print the markdown tables of these results")
    p.add_argument("--networks-from", metavar="JSON",
                   help="matrix: reuse the network runs of this earlier matrix result (recompute the theories only)")
    args = p.parse_args()
    if args.tables:
        for path in args.tables:
            print(tables(json.loads(Path(path).read_text())))
        return
    result = {"machine": machine(), "source": source_version(), "quick": args.quick}
    for section in args.sections:
        extra = {"networks_from": args.networks_from} if section == "matrix" else {}
        result[section] = globals()[section](args.quick, **extra)
    Path(args.output).write_text(json.dumps(result, indent=1) + "\n")
    print(tables(result))


if __name__ == "__main__":
    main()
