"""A long run of the tied LSTM network at infinite input size (the reference for the stationary solver).

What: width-n tied LSTM networks (Gaussian recurrent weights N(0, nu2_k/n), biases N(mu_k, rho2_k) drawn once),
input terms drawn iid N(0, sigma2_k q_x) per unit and step -- the exact m -> infinity limit of W_k x_t for fresh
inputs, which is what the infinite-m tied theory describes -- run for many steps from the zero state, recording
Q_c, Q_h (averaged over units and sequences) in blocks of ``--block`` steps, h every ``--snapshot`` steps, and the
final states. float32, no per-step Python beyond the cell: ~3x cheaper per sequence than simulate(). Independent
of the theory's code: it shares only the hyperparameters (cells/lstm.py written out by hand). Checked by hand
(benchmarks/RESULTS.md §7.2): LSTM mu_f = 3, width 2000: Q_c 2.78-2.82 over t = 100-600 (theory 2.784(12));
at the T = 1000 rule, t <= 600, within 2-3% of simulate(width 1000, input size 4000) and of the exact transient.

Run: ``nice -n 10 python benchmarks/long_network.py --rule benchmarks/results/trainability_T1000/lstm_T1064_qx1_rule.json
--width 2000 --steps 100000 --seed 0 --output /tmp/long_network_w2000_s0.npz``. Only one copy of each sequence
is run (c_x = 1: the b copy is the same trajectory). CPU seconds (process_time) are stored.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import numpy as np

MAPS = ("i", "f", "g", "o")


def run(h: dict, width: int, steps: int, batch: int, seed: int, block: int, output: str | None,
        dtype=np.float32, every: int = 2000, snapshot: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    n = width
    U = np.concatenate([rng.standard_normal((n, n), dtype=dtype) * np.float32(math.sqrt(h[f"nu2_{k}"] / n))
                        for k in MAPS])  # (4n, n): rows of the four maps' recurrent matrices
    bias = np.concatenate([h[f"mu_{k}"] + math.sqrt(h[f"rho2_{k}"]) * rng.standard_normal(n) for k in MAPS])
    bias = bias.astype(dtype)[:, None]
    noise = np.concatenate([np.full(n, math.sqrt(h[f"sigma2_{k}"] * h["q_x"])) for k in MAPS]).astype(dtype)[:, None]
    c = np.zeros((n, batch), dtype=dtype)
    hh = np.zeros((n, batch), dtype=dtype)
    blocks_qc, blocks_qh, snapshots = [], [], []  # h every ``snapshot`` steps: its two-time function at long lags
    acc_c, acc_h, count = 0.0, 0.0, 0
    start = time.process_time()
    for t in range(1, steps + 1):
        u = U @ hh
        u += bias
        u += noise * rng.standard_normal((4 * n, batch), dtype=dtype)
        i = 0.5 * (1 + np.tanh(0.5 * u[:n]))
        f = 0.5 * (1 + np.tanh(0.5 * u[n:2 * n]))
        g = np.tanh(u[2 * n:3 * n])
        o = 0.5 * (1 + np.tanh(0.5 * u[3 * n:]))
        c = f * c + i * g
        hh = o * np.tanh(c)
        acc_c += float(np.mean(c.astype(np.float64) ** 2))
        acc_h += float(np.mean(hh.astype(np.float64) ** 2))
        count += 1
        if snapshot and t % snapshot == 0:
            snapshots.append(hh.copy())
        if count == block:
            blocks_qc.append(acc_c / block)
            blocks_qh.append(acc_h / block)
            acc_c, acc_h, count = 0.0, 0.0, 0
        if output and (t % (every * block) == 0 or t == steps):
            np.savez(output, Q_c=np.array(blocks_qc), Q_h=np.array(blocks_qh), block=block, width=width,
                     batch=batch, seed=seed, steps=t, cpu_seconds=time.process_time() - start,
                     c=c, h=hh, load=os.getloadavg()[0], hyperparameters=json.dumps(h),
                     h_snapshots=np.array(snapshots), snapshot=snapshot)
    return {"Q_c": np.array(blocks_qc), "Q_h": np.array(blocks_qh), "c": c, "h": hh,
            "cpu_seconds": time.process_time() - start}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rule", required=True)
    p.add_argument("--width", type=int, default=2000)
    p.add_argument("--steps", type=int, default=100000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block", type=int, default=100)
    p.add_argument("--snapshot", type=int, default=500, help="keep h every this many steps (0: never)")
    p.add_argument("--output")
    a = p.parse_args()
    with open(a.rule) as fh:
        h = {k: float(v) for k, v in json.load(fh)["hyperparameters"].items()}
    run(h, a.width, a.steps, a.batch, a.seed, a.block, a.output, every=10, snapshot=a.snapshot)


if __name__ == "__main__":
    main()
