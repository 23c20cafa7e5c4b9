"""Training step on CPU: the generated numpy plan (symmft.harness.codegen) vs torch.nn.LSTM / nn.GRU, forward + backward.

What is measured. One training step = forward over T steps from zero states + backward of a loss whose gradient
d loss / d outputs is a fixed random (T, B, H) array (every output contributes, so the whole BPTT runs), giving
every weight's and bias's gradient (no input gradient on either side). float32, input dimension = H unless
--input-dim. Each repeat times ours then PyTorch back to back (interleaved, so load from other processes hits both);
the median over repeats is reported, after one warm-up each. The ratio ours / PyTorch < 1 means ours is faster.
Wall time and process CPU time are both recorded: on a machine shared with other jobs the wall time includes
waiting for a core, so the CPU-time ratio is the steadier one there (with one thread they agree on an idle one).

Threads: numpy's BLAS is limited with threadpoolctl and torch.set_num_threads gets the same number (--threads,
default 1); the JSON records what both libraries report. PyTorch runs its own fused CPU LSTM/GRU kernels
(aten::lstm); cells/lstm.py and cells/gru.py are the same cells (PyTorch's gate layout, GRU reset-after).

Run from the repository root: ``python benchmarks/train_step.py [--quick] [--threads N]``; writes
``benchmarks/results/train_step.json`` (``--quick``: ``train_step_quick.json``) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provenance import machine, source_version  # noqa: E402  benchmarks/provenance.py

FULL = [(cell, T, B, H) for cell in ("lstm", "gru") for T in (200, 1000) for B in (64, 256) for H in (128, 512)]
QUICK = [("lstm", 200, 64, 128), ("gru", 200, 64, 128), ("lstm", 200, 64, 512)]


def ours_step(cell: str, T: int, B: int, H: int, m: int, rng):
    from symmft.harness.plan import load_plan

    plan = load_plan(cell, dtype="float32")
    params = {k: (rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32)
              for k, s in plan.param_shapes(H, m).items()}
    xs = rng.standard_normal((T, B, m)).astype(np.float32)
    dout = rng.standard_normal((T, B, H)).astype(np.float32)

    def step():
        _, tape = plan.forward(params, xs)
        return plan.backward(params, tape, dout)

    return step


def torch_step(cell: str, T: int, B: int, H: int, m: int, rng):
    import torch

    module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(m, H)
    xs = torch.from_numpy(rng.standard_normal((T, B, m)).astype(np.float32))
    dout = torch.from_numpy(rng.standard_normal((T, B, H)).astype(np.float32))

    def step():
        module.zero_grad(set_to_none=True)
        y, _ = module(xs)
        y.backward(dout)

    return step


def measure(cell: str, T: int, B: int, H: int, m: int, repeats: int) -> dict:
    rng = np.random.default_rng(0)
    ours, theirs = ours_step(cell, T, B, H, m, rng), torch_step(cell, T, B, H, m, rng)
    ours(), theirs()  # warm-up: code generation / import, allocator, thread pools
    times = {"ours": [], "torch": [], "ours_cpu": [], "torch_cpu": []}
    for _ in range(repeats):
        for name, f in (("ours", ours), ("torch", theirs)):
            t0, c0 = time.perf_counter(), time.process_time()
            f()
            times[name].append(time.perf_counter() - t0)
            times[name + "_cpu"].append(time.process_time() - c0)
    o, t = statistics.median(times["ours"]), statistics.median(times["torch"])
    oc, tc = statistics.median(times["ours_cpu"]), statistics.median(times["torch_cpu"])
    return {"cell": cell, "T": T, "B": B, "H": H, "input_dim": m, "repeats": repeats,
            "ours_s": o, "torch_s": t, "ratio": o / t, "ours_cpu_s": oc, "torch_cpu_s": tc, "cpu_ratio": oc / tc,
            "ours_us_per_step": 1e6 * o / T, "torch_us_per_step": 1e6 * t / T,
            "all_s": {k: v for k, v in times.items()}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {QUICK} (cell, T, B, H)")
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads for numpy and torch (default 1)")
    ap.add_argument("--repeats", type=int, default=None, help="timed repeats per shape (default 5, quick 3)")
    ap.add_argument("--input-dim", type=int, default=None, help="input dimension m (default: H)")
    ap.add_argument("-o", "--output", default=None, help="JSON path (default benchmarks/results/train_step*.json)")
    args = ap.parse_args(argv)

    import torch
    from threadpoolctl import threadpool_info, threadpool_limits

    torch.set_num_threads(args.threads)
    repeats = args.repeats or (3 if args.quick else 5)
    rows = []
    with threadpool_limits(limits=args.threads, user_api="blas"):
        blas = [{k: d.get(k) for k in ("internal_api", "version", "num_threads")} for d in threadpool_info()
                if d.get("user_api") == "blas"]
        for cell, T, B, H in (QUICK if args.quick else FULL):
            r = measure(cell, T, B, H, args.input_dim or H, repeats)
            rows.append(r)
            print(f"{cell:5s} T={T:5d} B={B:4d} H={H:4d}: ours {r['ours_s']:.3f} s, torch {r['torch_s']:.3f} s, "
                  f"ratio {r['ratio']:.2f} (CPU time ratio {r['cpu_ratio']:.2f})", flush=True)
    result = {"benchmark": "train_step", "threads": args.threads, "numpy_blas": blas,
              "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
              "torch_mkldnn": bool(torch.backends.mkldnn.is_available()), "machine": machine(),
              "source": source_version(), "quick": args.quick, "rows": rows}
    out = Path(args.output) if args.output else (Path(__file__).parent / "results" /
                                                  ("train_step_quick.json" if args.quick else "train_step.json"))
    out.write_text(json.dumps(result, indent=2))
    print(f"\nthreads: numpy BLAS {[b['num_threads'] for b in blas]}, torch {torch.get_num_threads()}")
    print(f"{'cell':5s} {'T':>5s} {'B':>4s} {'H':>4s} {'ours s':>8s} {'torch s':>8s} {'ratio':>6s} "
          f"{'CPU ratio':>9s} {'ours us/step':>12s} {'torch us/step':>13s}")
    for r in rows:
        print(f"{r['cell']:5s} {r['T']:5d} {r['B']:4d} {r['H']:4d} {r['ours_s']:8.3f} {r['torch_s']:8.3f} "
              f"{r['ratio']:6.2f} {r['cpu_ratio']:9.2f} {r['ours_us_per_step']:12.0f} {r['torch_us_per_step']:13.0f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
