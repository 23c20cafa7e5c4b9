"""Critical init vs framework defaults at T = 100, 300 and 1000 (issue 13), on CPU: the LSTM and the reset-after
GRU on padded digits and on the adding problem, two seeds, through ``symmft.harness.confirm`` (a local dask cluster
of 2 single-threaded workers, the generated numpy plan).

Not a test: about 50 minutes of one core for the four sweeps with the budget below (measured, including the
critical searches; the T = 1000 runs are two thirds of it), on the shared 2-core machine longer. Writes, per sweep, benchmarks/results/trainability_table/<cell>_<task>/
(runs/, confirm.json, confirm.png: a directory ``symmft report CELL --confirm DIR`` reads), a copy of the figure as
<cell>_<task>.png, each critical rule searched as <cell>_<task>_T<T>_rule.json, table.json (budget, machine,
CPU seconds, per-run results) and curves.json (every run's learning curve in 10 blocks: minibatch metric and median
gradient norm; metrics.jsonl and checkpoints stay out of git). Rerunning resumes: finished runs are reused,
interrupted ones continue from their checkpoint.

**The budget is fixed before any run and equal for every init, length, task and seed:** width 16, 1000 Adam
steps, lr 1e-3, batch 32, global gradient-norm clip 1.0, float32, seeds 0 and 1. Inits: ``critical`` (the
harness's rule for the task's whole sequence, the T-dependent criteria), ``pytorch``, ``keras``, ``forget1``,
``chrono`` (drawn as the frameworks draw them).

    python benchmarks/trainability_table.py                      # every sweep, in the order below
    python benchmarks/trainability_table.py lstm_digits_padded   # one sweep
    python benchmarks/trainability_table.py lstm_adding gru_adding --lengths 100 300   # shorter lengths only
    python benchmarks/trainability_table.py --markdown           # the finished sweeps as the RESULTS.md table
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from provenance import machine, source_version  # noqa: E402
from trainability import curves  # noqa: E402

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "trainability_table"
BUDGET = {"width": 16, "steps": 1000, "lr": 1e-3, "batch": 32, "clip": 1.0}
SEEDS = (0, 1)
LENGTHS = (100, 300, 1000)
INITS = ("critical", "pytorch", "keras", "forget1", "chrono")
#: name -> (cell, task), in the order they run (digits first: the table the issue asks for)
SWEEPS = {
    "lstm_digits_padded": ("lstm", "digits_padded"),
    "gru_digits_padded": ("gru", "digits_padded"),
    "lstm_adding": ("lstm", "adding"),
    "gru_adding": ("gru", "adding"),
}


def run(name: str, workers: int, lengths=LENGTHS) -> dict:
    """One sweep (every length, init and seed of one cell and task); returns its confirm summary."""
    import resource

    from symmft.cell.trace import load_cell
    from symmft.harness.confirm import Sweep, confirm
    from symmft.harness.tasks import make_task
    from symmft.harness.train import critical_rule

    cell_name, task_name = SWEEPS[name]
    out = OUT / name
    out.mkdir(parents=True, exist_ok=True)
    cell = load_cell(cell_name)
    search_cpu = time.process_time()
    for T in lengths:  # the rule --init critical uses (cached), kept beside the results
        task = make_task(task_name, T)
        rule = critical_rule(cell, task.steps, task.q_rule, progress=True)
        (OUT / f"{name}_T{T}_rule.json").write_text(json.dumps(rule, indent=1) + "\n")
    search_cpu = time.process_time() - search_cpu
    sweep = Sweep(cell_name, task_name, tuple(lengths), INITS, SEEDS, **BUDGET)
    start = time.perf_counter()
    summary = confirm(sweep, out, workers=workers, progress=True)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the dask workers are child processes
    shutil.copy(out / "confirm.png", OUT / f"{name}.png")
    record = {"benchmark": "trainability_table", "sweep": name, "budget": {**BUDGET, "seeds": list(SEEDS),
              "optimizer": "Adam(0.9, 0.999, 1e-8)", "dtype": "float32", "workers": workers},
              "wall_seconds": time.perf_counter() - start, "rule_search_cpu_seconds": search_cpu,
              "worker_cpu_seconds_this_invocation": children.ru_utime + children.ru_stime,
              "run_seconds": {f"T{r['length']}_{r['init']}": r["seconds"] for r in summary["rows"]},
              "machine": machine(), "source": source_version(), "summary": summary}
    (out / "table.json").write_text(json.dumps(record, indent=1) + "\n")
    write_curves(name)
    return summary


def write_curves(name: str) -> None:
    """OUT/<name>/curves.json: each run's learning curve in 10 blocks of steps (the evidence behind a final
    number, small enough to commit)."""
    (OUT / name / "curves.json").write_text(json.dumps(curves(OUT / name / "runs"), indent=1) + "\n")


def markdown(names: list[str]) -> None:
    """Each finished sweep as a markdown table: T rows (with the test split's chance level), init columns,
    'mean (seed 0 / seed 1)', the best mean bold; below each T its inits' predicted xi."""
    for name in names:
        path = OUT / name / "confirm.json"
        if not path.exists():
            continue
        summary = json.loads(path.read_text())
        metric, rows = summary["metric"], summary["rows"]
        better = max if metric == "accuracy" else min
        inits = list(dict.fromkeys(r["init"] for r in rows))
        print(f"\n**{name}** (test {metric} after the budget, mean (seed 0 / seed 1); xi: the theory at the init "
              "and the task's input statistics)\n")
        print("| T (chance) | " + " | ".join(inits) + " |")
        print("|---|" + "---|" * len(inits))
        for T in sorted({r["length"] for r in rows}):
            mine = {r["init"]: r for r in rows if r["length"] == T}
            best = better(r["mean"] for r in mine.values())
            cells = []
            for init in inits:
                r = mine[init]
                text = f"{r['mean']:.3f} ({' / '.join(f'{v:.3f}' for v in r[metric])})"
                cells.append(f"**{text}**" if r["mean"] == best else text)
            print(f"| {T} ({next(iter(mine.values()))['chance']:.3f}) | " + " | ".join(cells) + " |")
            print(f"| xi, T = {T} | " + " | ".join(_g(mine[i]["xi"]) for i in inits) + " |")


def _g(x) -> str:
    return str(x) if isinstance(x, str) or x is None else f"{x:.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sweeps", nargs="*", default=list(SWEEPS), help=f"any of {', '.join(SWEEPS)} (default: all)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--lengths", type=int, nargs="+", default=list(LENGTHS),
                    help=f"task lengths T (default: {' '.join(map(str, LENGTHS))}; fewer when CPU is short)")
    ap.add_argument("--markdown", action="store_true", help="print the finished sweeps as markdown tables")
    ap.add_argument("--curves", action="store_true", help="only (re)write each sweep's curves.json from its runs")
    args = ap.parse_args()
    unknown = [s for s in args.sweeps if s not in SWEEPS]
    if unknown:
        ap.error(f"unknown sweep {', '.join(unknown)}; choose from {', '.join(SWEEPS)}")
    if args.markdown:
        markdown(args.sweeps)
        return
    if args.curves:
        for name in args.sweeps:
            if (OUT / name / "runs").exists():
                write_curves(name)
        return
    from symmft.cli.common import print_table
    from symmft.harness.confirm import table

    for name in args.sweeps:
        print(name, flush=True)
        print_table(*table(run(name, args.workers, args.lengths)))


if __name__ == "__main__":
    main()
