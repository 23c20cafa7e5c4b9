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
SHORT_LAGS = 64  # h's two-time function at every lag below this is accumulated step by step (after --short-after)


def run(h: dict, width: int, steps: int, batch: int, seed: int, block: int, output: str | None,
        dtype=np.float32, every: int = 2000, snapshot: int = 0, short_after: int | None = None) -> dict:
    rng = np.random.default_rng(seed)
    n = width
    short_after = steps if short_after is None else short_after
    U = np.concatenate([rng.standard_normal((n, n), dtype=dtype) * np.float32(math.sqrt(h[f"nu2_{k}"] / n))
                        for k in MAPS])  # (4n, n): rows of the four maps' recurrent matrices
    bias = np.concatenate([h[f"mu_{k}"] + math.sqrt(h[f"rho2_{k}"]) * rng.standard_normal(n) for k in MAPS])
    bias = bias.astype(dtype)[:, None]
    noise = np.concatenate([np.full(n, math.sqrt(h[f"sigma2_{k}"] * h["q_x"])) for k in MAPS]).astype(dtype)[:, None]
    c = np.zeros((n, batch), dtype=dtype)
    hh = np.zeros((n, batch), dtype=dtype)
    blocks_qc, blocks_qh, snapshots = [], [], []  # h every ``snapshot`` steps: its two-time function at long lags
    c_snapshots = []  # and c (the two-time functions at lags that are multiples of ``snapshot``)
    ring = np.zeros((SHORT_LAGS, n, batch), dtype=dtype)  # the last SHORT_LAGS h: lags 1..SHORT_LAGS-1 every step
    short_sum, short_count = np.zeros(SHORT_LAGS), 0
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
            c_snapshots.append(c.copy())
        if t > short_after:  # <h_t h_{t-k}> over units and sequences, k < SHORT_LAGS, after the transient
            ring[t % SHORT_LAGS] = hh
            if t > short_after + SHORT_LAGS:
                products = ring.reshape(SHORT_LAGS, -1) @ hh.reshape(-1)  # slot j holds step t - ((t - j) % L)
                short_sum[(t - np.arange(SHORT_LAGS)) % SHORT_LAGS] += products / (n * batch)
                short_count += 1
        if count == block:
            blocks_qc.append(acc_c / block)
            blocks_qh.append(acc_h / block)
            acc_c, acc_h, count = 0.0, 0.0, 0
        if output and (t % (every * block) == 0 or t == steps):
            np.savez(output, Q_c=np.array(blocks_qc), Q_h=np.array(blocks_qh), block=block, width=width,
                     batch=batch, seed=seed, steps=t, cpu_seconds=time.process_time() - start,
                     c=c, h=hh, load=os.getloadavg()[0], hyperparameters=json.dumps(h),
                     h_snapshots=np.array(snapshots), c_snapshots=np.array(c_snapshots), snapshot=snapshot,
                     short_lags=short_sum / max(short_count, 1), short_after=short_after)
    return {"Q_c": np.array(blocks_qc), "Q_h": np.array(blocks_qh), "c": c, "h": hh,
            "cpu_seconds": time.process_time() - start}


def two_time(path: str, start: int, lags: list[int]) -> dict:
    """The networks' two-time functions <h_t h_{t+tau}>, <c_t c_{t+tau}> (means over units, sequences and t >= start)
    at lags ``tau`` (multiples of the run's snapshot interval) from a run's output, with the standard error of the
    sequences' spread (the sequences run through one network, but their c patterns are uncorrelated), the
    short lags 0..SHORT_LAGS-1 of h, and the population means' squares <(mean over units of h)^2> (what a static
    part of the field may legitimately hold without quenched biases: docs/tied.md §4)."""
    d = np.load(path)
    s = int(d["snapshot"])
    H, C = (d[k][start // s:].astype(np.float64) for k in ("h_snapshots", "c_snapshots"))
    out = {"width": int(d["width"]), "sequences": int(d["batch"]), "seed": int(d["seed"]), "steps": int(d["steps"]),
           "start": start, "cpu_seconds": float(d["cpu_seconds"]), "load_at_save": float(d["load"]),
           "lags": [], "C_h": [], "standard_error_C_h": [], "C_c": [], "standard_error_C_c": [],
           "C_h_short": d["short_lags"].tolist(), "short_after": int(d["short_after"]),
           "mean_h_squared": float((H.mean(axis=1) ** 2).mean()), "mean_c_squared": float((C.mean(axis=1) ** 2).mean())}
    for tau in lags:
        k = tau // s
        if k >= len(H):
            break
        out["lags"].append(tau)
        for name, X in (("C_h", H), ("C_c", C)):
            per_sequence = (X[:len(X) - k] * X[k:]).mean(axis=(0, 1))
            out[name].append(float(per_sequence.mean()))
            out["standard_error_" + name].append(float(per_sequence.std(ddof=1) / math.sqrt(len(per_sequence))))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rule")
    p.add_argument("--width", type=int, default=2000)
    p.add_argument("--steps", type=int, default=100000)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--block", type=int, default=100)
    p.add_argument("--snapshot", type=int, default=500, help="keep h every this many steps (0: never)")
    p.add_argument("--save-every", type=int, default=10, help="save the output every this many blocks")
    p.add_argument("--short-after", type=int, help="accumulate h's short-lag products after this step")
    p.add_argument("--output")
    p.add_argument("--two-time", metavar="NPZ", help="instead of running: the two-time functions of a run's output "
                   "(after --start) as JSON to --output")
    p.add_argument("--start", type=int, default=80000)
    a = p.parse_args()
    if a.two_time:
        lags = [0, 100, 200, 500, 1000, 2000, 3000, 5000, 7000, 10000, 15000, 20000, 25000, 30000, 40000, 50000,
                60000, 70000, 85000, 100000, 120000, 140000, 160000, 180000, 200000]
        with open(a.output, "w") as fh:
            json.dump(two_time(a.two_time, a.start, lags), fh, indent=1)
        return
    with open(a.rule) as fh:
        h = {k: float(v) for k, v in json.load(fh)["hyperparameters"].items()}
    run(h, a.width, a.steps, a.batch, a.seed, a.block, a.output, every=a.save_every, snapshot=a.snapshot,
        short_after=a.short_after)


if __name__ == "__main__":
    main()
