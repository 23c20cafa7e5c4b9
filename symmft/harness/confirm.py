"""Confirmation sweeps: train a grid of (length T, init, seed) runs through dask.distributed and compare the final
test metric with the theory's time scale xi of each init (docs/theory.md §4).

Stage: harness (:mod:`symmft.harness.train`) -> a sweep directory::

    DIR/runs/T<T>_<init>_s<seed>/   one training run each (metrics.jsonl, checkpoint.npz, result.json)
    DIR/confirm.json                the grid, one row per (T, init): metric per seed, mean, predicted xi and m1
    DIR/confirm.png                 final test metric vs T per init, chance level, each init's xi marked

Runs are independent dask tasks: an in-process :class:`distributed.LocalCluster` by default, or a user's cluster
(``scheduler`` address) whose workers can import symmft and see DIR. A run whose result.json exists is not
redone; an interrupted run resumes from its last checkpoint, so an interrupted sweep restarts where it stopped.
The theory's predictions are computed once per (T, init) in the client, before the runs are submitted.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from symmft.cell.trace import load_cell
from symmft.extras import pyplot, require
from symmft.errors import SymmftError
from symmft.harness.tasks import make_task
from symmft.harness.train import RESULT, predicted, resolve_init, train
from symmft.progress import progress as show_progress


class ConfirmError(SymmftError):
    """Invalid sweep options."""


@dataclass(frozen=True)
class Sweep:
    """The grid and the options every run shares (see :func:`confirm`)."""

    cell: str
    task: str
    lengths: tuple[int, ...]
    inits: tuple[str, ...]
    seeds: tuple[int, ...]
    width: int = 64
    steps: int = 1000
    lr: float = 1e-3
    batch: int = 64
    clip: float = 1.0
    padding: str = "zeros"
    dtype: str = "float32"
    backend: str = "numpy"

    def run_name(self, length: int, init: str, seed: int) -> str:
        return f"T{length}_{Path(init).stem if init.endswith('.json') else init}_s{seed}"


def _run(sweep: Sweep, length: int, init: str, seed: int, run_dir: str) -> dict:
    """One grid point (executed on a dask worker): train, or read the finished result."""
    done = Path(run_dir) / RESULT
    if done.exists():
        return {**json.loads(done.read_text()), "reused": True}
    result = train(sweep.cell, init, sweep.task, length, width=sweep.width, steps=sweep.steps, lr=sweep.lr,
                   batch=sweep.batch, clip=sweep.clip, seed=seed, padding=sweep.padding, out_dir=run_dir,
                   backend=sweep.backend, dtype=sweep.dtype, predict=False)
    return {**result.to_json(), "reused": False}


def confirm(sweep: Sweep, out_dir: str | Path, *, scheduler: str | None = None, workers: int | None = None,
            processes: bool = True, progress: bool = False) -> dict:
    """Run every (T, init, seed) of ``sweep`` (skipping finished runs), write confirm.json and confirm.png under
    ``out_dir`` and return the summary. ``scheduler``: address of a running dask scheduler; otherwise a
    LocalCluster of ``workers`` (default: min(runs, CPUs)) single-threaded workers, separate processes unless
    ``processes`` is False."""
    distributed = require("dask.distributed")
    Client, LocalCluster, as_completed = distributed.Client, distributed.LocalCluster, distributed.as_completed

    if not (sweep.lengths and sweep.inits and sweep.seeds):
        raise ConfirmError("give at least one length, one init and one seed")
    out = Path(out_dir)
    cell = load_cell(sweep.cell)
    tasks = {T: make_task(sweep.task, T, padding=sweep.padding) for T in sweep.lengths}
    grid = [(T, init, s) for T in sweep.lengths for init in sweep.inits for s in sweep.seeds]
    results = {}
    if scheduler:  # first: an unreachable scheduler is refused before any work
        client, cluster = _connect(Client, scheduler), None
    else:
        import os

        n = workers or max(1, min(len(grid), os.cpu_count() or 1))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=processes, dashboard_address=":0")
        client = Client(cluster)
    bar = None
    try:
        theory = {}
        for T in sweep.lengths:  # once per (T, init), in the client: a "critical" init may search (cached rule)
            for init in sweep.inits:
                info = resolve_init(cell, init, tasks[T], sweep.width, progress)
                try:
                    theory[T, init] = {"hyperparameters": info["hyperparameters"], **predicted(cell, info, tasks[T].steps)}
                except Exception as e:  # the runs are still worth having: the row says why xi is missing
                    print(f"symmft confirm: warning: no theory for {init} at T={T}: {e!r}", file=sys.stderr)
                    theory[T, init] = {"hyperparameters": info["hyperparameters"], "xi": math.nan, "m1": math.nan,
                                       "status": -1, "theory_error": repr(e)}
        bar = show_progress(len(grid), f"confirm {sweep.cell} {sweep.task}", "run") if progress else None
        # longest sequences first: the slowest runs start early and the short ones fill the gaps
        futures = {client.submit(_run, sweep, T, init, s, str(out / "runs" / sweep.run_name(T, init, s)),
                                 pure=False, priority=T): (T, init, s) for T, init, s in sorted(grid, key=lambda g: -g[0])}
        for fut in as_completed(futures):
            results[futures[fut]] = fut.result()
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
        client.close()
        if cluster is not None:
            cluster.close()
    summary = _summarize(sweep, tasks, theory, results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "confirm.json").write_text(json.dumps(summary, indent=1) + "\n")
    plot(summary, out / "confirm.png")
    return summary


#: Seconds to wait for a dask scheduler given by address before refusing it.
CONNECT_TIMEOUT = 10


def _connect(Client, scheduler: str):
    """A client of the scheduler at ``scheduler``, or a ConfirmError saying it cannot be reached."""
    try:
        return Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as e:  # refused, unresolvable, timed out, malformed address
        raise ConfirmError(f"--scheduler {scheduler}: cannot reach a dask scheduler there within {CONNECT_TIMEOUT} s "
                           f"({type(e).__name__}: {e}); start one ('dask scheduler') or leave out --scheduler "
                           "for a local cluster") from None


def _summarize(sweep: Sweep, tasks: dict, theory: dict, results: dict) -> dict:
    rows = []
    metric = tasks[sweep.lengths[0]].metric_name
    for T in sweep.lengths:
        for init in sweep.inits:
            runs = [results[T, init, s] for s in sweep.seeds]
            values = [r["test"][metric] for r in runs]
            th = theory[T, init]
            label = Path(init).stem if init.endswith(".json") else init
            rows.append({"length": T, "steps_per_sequence": tasks[T].steps, "init": label, "seeds": list(sweep.seeds),
                         metric: values, "mean": float(np.mean(values)),
                         "test_loss": [r["test"]["loss"] for r in runs], "chance": tasks[T].chance,
                         "xi": th["xi"], "m1": th["m1"], "status": int(th["status"]),
                         "hyperparameters": th["hyperparameters"],
                         **({"theory_error": th["theory_error"]} if "theory_error" in th else {}),
                         "reused": [bool(r.get("reused")) for r in runs],
                         "seconds": [r["seconds"] for r in runs]})
    return {"sweep": _clean(vars(sweep)), "metric": metric, "rows": _clean(rows)}


def _clean(obj):
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def table(summary: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the human table."""
    metric = summary["metric"]
    header = ["T", "init", f"test {metric} (per seed)", "mean", "chance", "xi (theory)", "m1 (theory)"]
    rows = [[str(r["length"]), r["init"], " ".join(f"{v:.3f}" for v in r[metric]), f"{r['mean']:.3f}",
             f"{r['chance']:.3f}", _g(r["xi"]), _g(r["m1"])] for r in summary["rows"]]
    return header, rows


def _g(x) -> str:
    return str(x) if isinstance(x, str) or x is None else f"{x:.4g}"


def plot(summary: dict, path: str | Path) -> Path:
    """Final test metric vs T per init (points per seed, line through the means), the chance level, and each
    init's predicted xi (at the longest T) as a dashed vertical line of the init's colour, labelled; the log T
    axis stretches to show every finite xi in [0.1, 1e6]."""
    plt = pyplot()

    rows, metric = summary["rows"], summary["metric"]
    fig, ax = plt.subplots(figsize=(7.2, 4.4))
    inits = list(dict.fromkeys(r["init"] for r in rows))
    last = {init: max((r for r in rows if r["init"] == init), key=lambda r: r["length"]) for init in inits}
    xis = {init: r["xi"] for init, r in last.items() if isinstance(r["xi"], (int, float)) and 0.1 <= r["xi"] <= 1e6}
    marks = [max(r["length"], 1) for r in rows] + list(xis.values())
    lo, hi = min(marks) / 2, max(marks) * 2
    for k, init in enumerate(inits):
        mine = sorted((r for r in rows if r["init"] == init), key=lambda r: r["length"])
        colour = f"C{k}"
        xs = [max(r["length"], 1) for r in mine]
        ax.plot(xs, [r["mean"] for r in mine], "-", color=colour, label=init)
        for x, r in zip(xs, mine):
            ax.plot([x] * len(r[metric]), r[metric], "o", color=colour, ms=4, alpha=0.7)
        if init in xis:
            ax.axvline(xis[init], color=colour, ls="--", lw=1)
            ax.text(xis[init], 0.99, f" xi={xis[init]:.3g}", color=colour, rotation=90, va="top", fontsize=7,
                    transform=ax.get_xaxis_transform())
    ax.axhline(rows[0]["chance"], color="grey", ls=":", label="chance")
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("T (task length); dashed: each init's predicted xi")
    ax.set_ylabel(f"final test {metric}")
    sw = summary["sweep"]
    ax.set_title(f"{sw['cell']} on {sw['task']}: width {sw['width']}, {sw['steps']} Adam steps, lr {sw['lr']:g}, "
                 f"batch {sw['batch']}, clip {sw['clip']:g}", fontsize=8)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


__all__ = ["ConfirmError", "Sweep", "confirm", "plot", "table"]
