"""Real ``torch.nn.LSTM`` / ``nn.GRU`` layers built by exported rules against the tied theory (issue 10;
benchmarks/RESULTS.md §7c, docs/tied.md §1 and §3).

Sections (``--sections``):

* ``transient``: the T = 1000 LSTM rule (tests/data/export_client_lstm_T1000.json, written by ``symmft critical
  lstm --length 1000 -o``), exported by symmft's torch exporter, width-``--width`` layers (float32), input sizes
  8, 32, 512, 2048, standard-normal inputs, 16 sequences per layer from the zero state: Q_c(t), Q_h(t) for
  t <= 1000 against the tied theory's transient at the same input size (``Transient(..., input_dim=m)``, 16 groups
  per run, several seeds), with the infinite-m tied theory and the untied law (the same site process with fields
  and biases redrawn every step) beside it. The layers' exact memory-Jacobian m1 at t in ``JACOBIAN_STEPS``
  (torch autograd, tests/torch_support.py) against the tied-statistics m1 (``jacobian_moments`` at the theory's
  moments of step t - 1, the state the step-t Jacobian acts on: symmft.init.tied_check.moments_at_step).
* ``jacobian``: the same m1 comparison at the short T = 20 rules (LSTM and GRU, tests/data/export_client_*_T20.json),
  width 512, input sizes 8 and 2048, t in (2, 20, 200).
* ``long``: Q_c(t) of width-``--width`` layers at the T = 1000 rule over ``--long-steps`` steps (whole-chunk
  layer calls of 100 steps: the memory state at every 100th step), input sizes 8, 32, 2048 -- the reference for
  the stationary solver at this rule.

Run from the repository root: ``python benchmarks/torch_layers.py [--sections ...]``; writes
``benchmarks/results/torch_layers.json`` (a section at a time, merged). CPU seconds (one thread) are recorded.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import types
from pathlib import Path

import numpy as np
import torch

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from torch_support import build_layer, exported, run_layer, step_jacobian_m1  # noqa: E402  (tests/)
from symmft import analyze  # noqa: E402
from symmft.theory.jacobian import jacobian_moments  # noqa: E402
from symmft.theory.transient import Transient  # noqa: E402

INPUT_SIZES = (8, 32, 512, 2048)
JACOBIAN_STEPS = (2, 10, 100, 1000)
WINDOWS = 4


def torch_side(module, cell_name: str, m: int, width: int, steps: int, networks: int, batch: int,
               jacobian_steps: tuple, jacobian_sequences: int) -> dict:
    """Per layer: Q trajectories (mean over units and sequences) and exact m1 (memory; LSTM also full) at the
    kept steps for the first ``jacobian_sequences`` sequences."""
    q, m1, m1_full, seconds = [], [], [], {"run": 0.0, "jacobian": 0.0}
    for seed in range(networks):
        t0 = time.process_time()
        layer = build_layer(module, cell_name, m, width, seed)
        x = torch.randn(steps, batch, m, generator=torch.Generator().manual_seed(seed + 1000))
        traj, kept = run_layer(layer, x, keep=jacobian_steps)
        t1 = time.process_time()
        q.append(traj)
        part = {k: {a: (b[:jacobian_sequences] if torch.is_tensor(b) else b) for a, b in v.items()}
                for k, v in kept.items()}
        m1.append([step_jacobian_m1(layer, part[t], "memory").tolist() for t in jacobian_steps])
        if cell_name == "lstm":
            m1_full.append([step_jacobian_m1(layer, {a: b[:1] for a, b in part[t].items()}, "full").tolist()
                            for t in jacobian_steps])
        seconds["run"] += t1 - t0
        seconds["jacobian"] += time.process_time() - t1
        print(f"  torch {cell_name} m = {m} seed {seed}: Q at T {[float(v[-1]) for v in traj.values()]}, "
              f"m1 {np.mean(m1[-1], axis=1).round(7).tolist()}, cpu {seconds}", flush=True)
    states = list(q[0])
    return {"Q": {s: np.array([r[s] for r in q]) for s in states}, "m1": np.array(m1),
            "m1_full": np.array(m1_full) if m1_full else None, "seconds": seconds}


def theory_side(cell, h: dict, m: int | None, steps: int, runs: int, population: int, tied: bool = True) -> dict:
    """Group trajectories (runs * 16, steps) of each state's M and Q from independent seeds, and CPU seconds."""
    t0 = time.process_time()
    record = np.concatenate([Transient(cell, h, steps, population=population, seed=seed, input_dim=m, tied=tied)
                             .advance(steps) for seed in range(runs)], axis=1)  # (steps, groups, state, 3)
    return {"M": {s: record[:, :, i, 0].T for i, s in enumerate(cell.states)},
            "Q": {s: record[:, :, i, 1].T for i, s in enumerate(cell.states)},
            "seconds": time.process_time() - t0}


def theory_m1(cell, h: dict, theory: dict, steps: tuple, weights: str) -> tuple[list, list]:
    """Tied-statistics m1 of the step-t memory Jacobian (symmft's kind) at the theory's moments of step t - 1
    (mean over all groups), and its standard error from the groups (m1 of each group's moments)."""
    def m1_at(fixed: dict) -> np.ndarray:
        at = types.SimpleNamespace(cell=cell, hyperparameters=h, fixed_point=fixed, backend="numpy")
        return np.asarray(jacobian_moments(at, "memory", weights)["m1"], dtype=float)

    index = [t - 2 for t in steps]  # trajectories start at t = 1; step t acts on the state of t - 1
    mean = {f"{k}_{s}": theory[k][s][:, index].mean(axis=0) for s in cell.states for k in "MQ"}
    per_group = m1_at({f"{k}_{s}": theory[k][s][:, index] for s in cell.states for k in "MQ"})
    groups = per_group.shape[0]
    return m1_at(mean).tolist(), (per_group.std(axis=0, ddof=1) / math.sqrt(groups)).tolist()


def windows(per: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(samples, T) -> WINDOWS window means and their standard errors over the samples."""
    w = np.array([[x.mean() for x in np.array_split(row, WINDOWS)] for row in per])
    return w.mean(axis=0), w.std(axis=0, ddof=1) / math.sqrt(len(w))


def compare_transient(args, directory: Path) -> list[dict]:
    rule, module, cell, h = exported("export_client_lstm_T1000.json", directory)
    steps, rows = rule["length"], []
    # the baselines are tens of per cent off: a smaller population resolves that
    untied = theory_side(cell, h, None, steps, 1, min(args.population, 4000), tied=False)
    infinite = theory_side(cell, h, None, steps, 1, min(args.population, 4000))
    for m in args.input_sizes:
        net = torch_side(module, "lstm", m, args.width, steps, args.networks.get(m, 4), 16, JACOBIAN_STEPS,
                         args.jacobian_sequences)
        th = theory_side(cell, h, m, steps, args.runs.get(m, 2), args.population)
        m1, m1_se = theory_m1(cell, h, th, JACOBIAN_STEPS, rule["weights"])
        row = {"input_size": m, "width": args.width, "networks": args.networks.get(m, 4), "sequences": 16,
               "theory_runs": args.runs.get(m, 2), "population": args.population,
               "seconds": {"torch": net["seconds"], "theory": th["seconds"]}, "states": {}}
        for s in cell.states:
            (n_mean, n_se), (t_mean, t_se) = windows(net["Q"][s]), windows(th["Q"][s])
            row["states"][s] = {
                "torch": n_mean.tolist(), "torch_se": n_se.tolist(), "theory": t_mean.tolist(),
                "theory_se": t_se.tolist(), "error": (t_mean / n_mean - 1).tolist(),
                "combined_se": (np.hypot(n_se, t_se) / n_mean).tolist(),
                "infinite_m_error": (windows(infinite["Q"][s])[0] / n_mean - 1).tolist(),
                "untied_error": (windows(untied["Q"][s])[0] / n_mean - 1).tolist(),
                "torch_at_T": float(net["Q"][s][:, -1].mean()), "theory_at_T": float(th["Q"][s][:, -1].mean()),
                "trajectory_every_10": {"torch": net["Q"][s].mean(axis=0)[9::10].tolist(),
                                        "theory": th["Q"][s].mean(axis=0)[9::10].tolist()}}
        row["m1"] = m1_row(net, m1, m1_se, cell, h, infinite, rule["weights"], JACOBIAN_STEPS)
        rows.append(row)
        print(f"m = {m}: " + "; ".join(f"Q_{s} error {np.round(100 * np.array(v['error']), 1).tolist()}% "
                                      f"(combined se {np.round(100 * np.array(v['combined_se']), 1).tolist()}%)"
                                      for s, v in row["states"].items()) + f"; m1 {row['m1']}", flush=True)
    return rows


def m1_row(net: dict, m1: list, m1_se: list, cell, h: dict, infinite: dict | None, weights: str, steps) -> dict:
    """torch m1 (mean over layers and sequences) against the theory's, per step. Its standard error is over all
    (layer, sequence) samples: a sequence's m1 scatters by the n units' own gate draws given its inputs, which
    are independent between sequences (the layer's weights are shared, but enter only through O(m^-1/2) row
    norms); 4 layers alone would give an error bar itself uncertain by ~40%."""
    samples = net["m1"].transpose(1, 0, 2).reshape(net["m1"].shape[1], -1)  # (steps, layers * sequences)
    torch_m1, torch_se = samples.mean(axis=1), samples.std(axis=1, ddof=1) / math.sqrt(samples.shape[1])
    untied = float(jacobian_moments(analyze(cell, h), "memory", weights)["m1"])
    out = {"steps": list(steps), "torch": torch_m1.tolist(), "torch_se": torch_se.tolist(),
           "torch_samples": samples.tolist(), "tied_theory": m1,
           "tied_theory_se": m1_se, "untied_stationary": untied,
           # how far m1 is from isometry is what matters (m1 ~ 1): errors relative to 1 - m1
           "error_of_1_minus_m1": ((1 - np.array(m1)) / (1 - torch_m1) - 1).tolist(),
           "untied_error_of_1_minus_m1": ((1 - untied) / (1 - torch_m1) - 1).tolist(),
           "se_of_1_minus_m1": (np.hypot(torch_se, m1_se) / (1 - torch_m1)).tolist()}
    if infinite is not None:
        out["infinite_m_theory"] = theory_m1(cell, h, infinite, steps, weights)[0]
    if net["m1_full"] is not None:
        out["torch_full"] = net["m1_full"].mean(axis=(0, 2)).tolist()
    return out


def compare_short(args, directory: Path) -> list[dict]:
    rows, steps = [], (2, 20, 200)
    for name in ("lstm", "gru"):
        rule, module, cell, h = exported(f"export_client_{name}_T20.json", directory)
        for m in (8, 2048):
            net = torch_side(module, name, m, 512, steps[-1], 4, 16, steps, args.jacobian_sequences)
            th = theory_side(cell, h, m, steps[-1], 2, args.population)
            m1, m1_se = theory_m1(cell, h, th, steps, rule["weights"])
            row = {"cell": name, "input_size": m, "width": 512, "networks": 4,
                   "m1": m1_row(net, m1, m1_se, cell, h, None, rule["weights"], steps),
                   "seconds": {"torch": net["seconds"], "theory": th["seconds"]}}
            rows.append(row)
            print(f"{name} m = {m}: {row['m1']}", flush=True)
    return rows


def long_runs(args) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        _, module, _, _ = exported("export_client_lstm_T1000.json", Path(tmp))
        for m in (8, 32, 2048):
            for seed in range(args.long_networks):
                t0 = time.process_time()
                layer = build_layer(module, "lstm", m, args.width, seed)
                gen = torch.Generator().manual_seed(seed + 1000)
                state, qc, qh, chunk = None, [], [], 100
                with torch.no_grad():
                    for _ in range(args.long_steps // chunk):
                        seq, state = layer(torch.randn(chunk, 16, m, generator=gen), state)
                        qc.append(float((state[1].double() ** 2).mean()))
                        qh.append(float((seq.double() ** 2).mean()))
                rows.append({"input_size": m, "seed": seed, "width": args.width, "chunk": chunk,
                             "Q_c_every_100": qc, "Q_h_mean_per_100": qh, "seconds": time.process_time() - t0})
                print(f"long m = {m} seed {seed}: Q_c at " + ", ".join(f"{(i + 1) * chunk}: {qc[i]:.3g}" for i in
                      (9, 99, 199, 299, 399, 499, 599) if i < len(qc)) + f"; cpu {rows[-1]['seconds']:.0f} s", flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sections", nargs="+", default=["transient", "jacobian", "long"])
    ap.add_argument("--width", type=int, default=1024)
    ap.add_argument("--input-sizes", type=int, nargs="+", default=list(INPUT_SIZES))
    ap.add_argument("--networks", type=json.loads, default={8: 16, 32: 8, 512: 4, 2048: 4},
                    help='JSON {"m": layers}')
    ap.add_argument("--runs", type=json.loads, default={8: 4, 32: 2, 512: 2, 2048: 2}, help='JSON {"m": theory seeds}')
    ap.add_argument("--population", type=int, default=16000)
    ap.add_argument("--jacobian-sequences", type=int, default=2)
    ap.add_argument("--long-steps", type=int, default=60000)
    ap.add_argument("--long-networks", type=int, default=2)
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/torch_layers.json"))
    args = ap.parse_args()
    args.networks = {int(k): v for k, v in args.networks.items()}
    args.runs = {int(k): v for k, v in args.runs.items()}
    torch.set_num_threads(1)
    path = Path(args.output)
    out = json.loads(path.read_text()) if path.exists() else {}
    out.update({"machine": machine(), "source": source_version(), "torch": torch.__version__})
    with tempfile.TemporaryDirectory() as tmp:
        for section, run in (("transient", compare_transient), ("jacobian", compare_short), ("long", None)):
            if section not in args.sections:
                continue
            t0 = time.process_time()
            rows = long_runs(args) if run is None else run(args, Path(tmp))
            out[section] = {"options": {k: v for k, v in vars(args).items() if k != "output"}, "rows": rows,
                            "cpu_seconds": time.process_time() - t0}
            path.write_text(json.dumps(out, indent=1, default=float) + "\n")


if __name__ == "__main__":
    main()
