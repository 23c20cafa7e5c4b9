"""Trainability on long sequences (docs/theory.md §4, issue 5): LSTM on padded 8x8 digits, critical init vs framework
defaults, the same budget for every init, through ``symmft.harness.confirm`` (a local dask cluster).

Not a test: about 15-30 minutes on 2 cores with the defaults. Writes, under -o (default benchmarks/results/trainability):
``runs/`` (every run's metrics.jsonl, checkpoint, result.json), ``confirm.json``, ``confirm.png``,
``theory.json`` (xi, m1, Q of every init at q_x = 0 -- zero padding -- and q_x = 1 -- the pixel stream) and
``trainability.json`` (budget, provenance, table, learning curves in 10 blocks per run; wall_seconds covers this
invocation only: a rerun that reuses every run reports seconds). Rerunning resumes: finished runs are not redone.

Inits: ``critical`` (the harness's rule for this task: find_critical at T = 64 + padding with q_x = 0, the input
statistics of the padding), ``lstm_T364_qx1_rule`` (``symmft critical lstm --length 364``: the default q_x = 1; a
rule file beside this script's results), and the framework defaults ``pytorch``, ``keras``, ``chrono``
(``forget1`` with --inits).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provenance import machine, source_version  # noqa: E402

HERE = Path(__file__).resolve().parent


def curves(runs: Path, blocks: int = 10) -> dict:
    """Per run, the learning curve in ``blocks`` equal blocks of steps: mean minibatch accuracy (or mse, for a
    regression task) and median gradient norm (before clipping) -- the evidence behind a final number, small enough
    to commit."""
    out = {}
    for metrics in sorted(runs.glob("*/metrics.jsonl")):
        rows = [json.loads(ln) for ln in metrics.read_text().splitlines() if ln and '"split"' not in ln]
        if not rows:
            continue
        metric = "accuracy" if "accuracy" in rows[0] else "mse"
        size = max(1, len(rows) // blocks)
        parts = [rows[i:i + size] for i in range(0, size * blocks, size) if rows[i:i + size]]
        out[metrics.parent.name] = {
            "steps_per_block": size,
            f"train_{metric}": [round(sum(r[metric] for r in p) / len(p), 4) for p in parts],
            "grad_norm_median": [round(sorted(r["grad_norm"] for r in p)[len(p) // 2], 4) for p in parts]}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lengths", type=int, nargs="+", default=[300, 100, 30])
    ap.add_argument("--inits", nargs="+", default=None)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("-o", "--output", default=str(HERE / "results" / "trainability"))
    args = ap.parse_args()

    from symmft.cell.trace import load_cell
    from symmft.harness.confirm import Sweep, confirm, table
    from symmft.harness.tasks import make_task
    from symmft.harness.train import predicted, resolve_init

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    rule = out / "lstm_T364_qx1_rule.json"
    inits = args.inits or ["critical", str(rule), "pytorch", "keras", "chrono"]
    cell = load_cell("lstm")
    theory = []
    for T in sorted(args.lengths):
        task = make_task("digits_padded", T)
        for init in inits:
            info = resolve_init(cell, init, task, args.width, progress=True)
            for q in (0.0, 1.0):
                try:
                    p = predicted(cell, {**info, "hyperparameters": {**info["hyperparameters"], "q_x": q}}, task.steps)
                    row = {k: p[k] for k in ("xi", "m1", "Q_c", "Q_h", "status")}
                except Exception as e:  # report, keep going: the training runs do not need the theory
                    row = {"error": repr(e)}
                theory.append({"T": T, "steps": task.steps, "init": Path(init).stem, "q_x": q, **row})
    (out / "theory.json").write_text(json.dumps(theory, indent=1) + "\n")
    sweep = Sweep("lstm", "digits_padded", tuple(sorted(args.lengths)), tuple(inits), tuple(args.seeds), args.width,
                  args.steps, args.lr, args.batch, args.clip)
    start = time.perf_counter()
    summary = confirm(sweep, out, workers=args.workers, progress=True)
    header, rows = table(summary)
    record = {"benchmark": "trainability", "budget": {"steps": args.steps, "batch": args.batch, "lr": args.lr,
              "clip": args.clip, "width": args.width, "optimizer": "Adam(0.9, 0.999, 1e-8)", "dtype": "float32",
              "workers": args.workers}, "wall_seconds": time.perf_counter() - start, "machine": machine(),
              "python": platform.python_version(), "source": source_version(), "table": [header, *rows],
              "theory": theory}
    record["curves"] = curves(out / "runs")
    (out / "trainability.json").write_text(json.dumps(record, indent=1) + "\n")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
