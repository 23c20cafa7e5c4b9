"""Training step on a GPU: the generated CuPy plan vs cuDNN through PyTorch, eager and as a captured CUDA graph.

What is measured (float32, zero initial states, d loss / d outputs a fixed random (T, B, H) array, all weight
gradients, no input gradient), per shape (T, B, H) and cell (lstm, gru):

* ``cupy_eager``: ``plan.forward`` + ``plan.backward`` of ``load_plan(cell, xp="cupy")``: per step the cuBLAS
  products and one fused ElementwiseKernel per stage, launched from the Python time loop;
* ``cupy_graph``: the same step captured once as a CUDA graph (CuPy stream capture, with the stream-ordered
  allocator so that the tape's allocations are capturable) and replayed: no Python or launch overhead per step;
* ``torch_eager`` / ``torch_graph``: ``torch.nn.LSTM`` / ``nn.GRU`` on CUDA (cuDNN), forward + backward, eager and
  captured with ``torch.cuda.graph`` (static input and output gradient; gradients accumulate across replays,
  which changes no timing).

Each variant: warm-up, then ``--repeats`` timed runs bracketed by CUDA events, median reported as microseconds
per time step; ratios ours / cuDNN for matching modes. A variant that fails (e.g. PyTorch without CUDA) is
recorded with its error instead of stopping the run. Not run in CI; needs CuPy and a CUDA GPU.

Run from the repository root: ``python benchmarks/train_step_gpu.py [--quick]``; writes
``benchmarks/results/train_step_gpu.json`` and prints a table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from provenance import machine, source_version  # noqa: E402  benchmarks/provenance.py

FULL = [(cell, T, B, H) for cell in ("lstm", "gru") for T in (200, 1000) for B in (64, 256) for H in (128, 512)]
QUICK = [("lstm", 200, 64, 128), ("lstm", 1000, 256, 512), ("gru", 1000, 256, 512)]


def _time_cupy(cupy, f, repeats: int) -> list[float]:
    start, end = cupy.cuda.Event(), cupy.cuda.Event()
    out = []
    for _ in range(repeats):
        start.record()
        f()
        end.record()
        end.synchronize()
        out.append(cupy.cuda.get_elapsed_time(start, end) * 1e-3)
    return out


def cupy_variants(cell: str, T: int, B: int, H: int, repeats: int) -> dict:
    import cupy

    from symmft.harness.plan import load_plan

    rng = np.random.default_rng(0)
    plan = load_plan(cell, xp="cupy", dtype="float32")
    params = {k: cupy.asarray((rng.standard_normal(s) / np.sqrt(s[-1])).astype(np.float32))
              for k, s in plan.param_shapes(H, H).items()}
    xs = cupy.asarray(rng.standard_normal((T, B, H)).astype(np.float32))
    dout = cupy.asarray(rng.standard_normal((T, B, H)).astype(np.float32))

    def step():
        _, tape = plan.forward(params, xs)
        return plan.backward(params, tape, dout)

    result = {}
    try:
        for _ in range(2):
            step()
        cupy.cuda.Device().synchronize()
        result["cupy_eager"] = _time_cupy(cupy, step, repeats)
    except Exception:
        result["cupy_eager_error"] = traceback.format_exc(limit=3)
    try:
        previous = cupy.cuda.get_allocator()
        cupy.cuda.set_allocator(cupy.cuda.MemoryAsyncPool().malloc)  # capturable allocations
        stream = cupy.cuda.Stream(non_blocking=True)
        with stream:
            step()  # warm: kernels compiled, plan's arrays allocated
            stream.synchronize()
            stream.begin_capture()
            step()
            graph = stream.end_capture()
            graph.launch(stream)
            stream.synchronize()

            def replay():
                graph.launch(stream)

            result["cupy_graph"] = _time_cupy(cupy, replay, repeats)
        cupy.cuda.set_allocator(previous)
    except Exception:
        result["cupy_graph_error"] = traceback.format_exc(limit=3)
    return result


def torch_variants(cell: str, T: int, B: int, H: int, repeats: int) -> dict:
    result = {}
    try:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"PyTorch {torch.__version__} has no CUDA here")
        dev = torch.device("cuda")
        module = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(H, H).to(dev)
        xs = torch.randn(T, B, H, device=dev)
        dout = torch.randn(T, B, H, device=dev)

        def step():
            y, _ = module(xs)
            y.backward(dout)

        def timed(f):
            out = []
            for _ in range(repeats):
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                f()
                b.record()
                b.synchronize()
                out.append(a.elapsed_time(b) * 1e-3)
            return out

        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(3):
                step()
        torch.cuda.current_stream().wait_stream(side)
        result["torch_eager"] = timed(step)
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                step()
            result["torch_graph"] = timed(graph.replay)
        except Exception:
            result["torch_graph_error"] = traceback.format_exc(limit=3)
        result["cudnn"] = torch.backends.cudnn.version()
    except Exception:
        result["torch_error"] = traceback.format_exc(limit=3)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {QUICK} (cell, T, B, H)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "train_step_gpu.json"))
    args = ap.parse_args(argv)
    import cupy

    rows = []
    for cell, T, B, H in (QUICK if args.quick else FULL):
        r = {"cell": cell, "T": T, "B": B, "H": H}
        r.update(cupy_variants(cell, T, B, H, args.repeats))
        r.update(torch_variants(cell, T, B, H, args.repeats))
        for k in ("cupy_eager", "cupy_graph", "torch_eager", "torch_graph"):
            if k in r:
                r[f"{k}_us_per_step"] = 1e6 * statistics.median(r[k]) / T
        for mode in ("eager", "graph"):
            if f"cupy_{mode}_us_per_step" in r and f"torch_{mode}_us_per_step" in r:
                r[f"ratio_{mode}"] = r[f"cupy_{mode}_us_per_step"] / r[f"torch_{mode}_us_per_step"]
        rows.append(r)
        cells = [f"{k}={r[k + '_us_per_step']:.1f}us" for k in ("cupy_eager", "cupy_graph", "torch_eager",
                                                                 "torch_graph") if k + "_us_per_step" in r]
        errors = [k for k in r if k.endswith("_error")]
        print(f"{cell} T={T} B={B} H={H}: {', '.join(cells)}" + (f" (failed: {', '.join(errors)})" if errors else ""),
              flush=True)
    props = cupy.cuda.runtime.getDeviceProperties(0)
    result = {"benchmark": "train_step_gpu", "gpu": props["name"].decode() if isinstance(props["name"], bytes)
              else str(props["name"]), "cupy": cupy.__version__, "machine": machine(), "source": source_version(),
              "rows": rows}
    Path(args.output).write_text(json.dumps(result, indent=2))
    print(f"{'cell':5s} {'T':>5s} {'B':>4s} {'H':>4s} {'cupy':>8s} {'cupy graph':>10s} {'cuDNN':>8s} "
          f"{'cuDNN graph':>11s} {'ratio':>6s} {'ratio graph':>11s}   (us per time step)")
    for r in rows:
        def f(k, w):
            return f"{r[k]:{w}.1f}" if k in r else " " * (w - 1) + "-"
        print(f"{r['cell']:5s} {r['T']:5d} {r['B']:4d} {r['H']:4d} {f('cupy_eager_us_per_step', 8)} "
              f"{f('cupy_graph_us_per_step', 10)} {f('torch_eager_us_per_step', 8)} {f('torch_graph_us_per_step', 11)} "
              f"{f('ratio_eager', 6)} {f('ratio_graph', 11)}")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
