"""``symmft confirm``: a grid of training runs through dask.distributed, final test metric vs T per init with
the theory's xi marked (symmft.harness.confirm)."""

from __future__ import annotations

from symmft.harness.confirm import Sweep, confirm, table
from symmft.init.search import BASELINES
from symmft.cli.common import CommandLineError, cell_argument, command, output_directory, print_json, print_table
from symmft.cli.train import add_training_options


def add_parsers(sub) -> None:
    """The ``confirm`` subcommand."""
    p = command(
        sub, "confirm", "training sweep: final test metric vs T per init, with each init's predicted xi",
        "Train CELL on TASK for every length T in --lengths, init in --inits and seed in --seeds (the same "
        "budget for all: --steps, --lr, --batch, --clip, --width), as independent runs through dask.distributed: "
        "an in-process local cluster (--workers single-threaded workers) by default, or the cluster at "
        "--scheduler ADDRESS (its workers must import symmft and see DIR). Each run lives in "
        "DIR/runs/T<T>_<init>_s<seed>/ (see 'symmft train'); finished runs are not redone and interrupted ones "
        "resume from their checkpoints, so rerunning an interrupted sweep continues it. Writes DIR/confirm.json "
        "(one row per (T, init): metric per seed, mean, chance, the theory's xi and m1 for the init at that T) and "
        "DIR/confirm.png (metric vs T, chance level, each init's xi as a dashed line).",
        [
            "symmft confirm lstm --task digits_padded --lengths 10 100 300 --inits critical pytorch keras --seeds 0 1 -o runs/sweep",
            "symmft confirm gru --task adding --lengths 50 200 --inits pytorch chrono --seeds 0 --steps 300 -o runs/add",
            "symmft confirm lstm --task copy --lengths 100 --inits rule.json keras --seeds 0 --scheduler tcp://10.0.0.5:8786 -o /shared/sweep",
        ],
        ("xi", "m1, m2"),
    )
    cell_argument(p)
    p.add_argument("--lengths", type=int, nargs="+", required=True, metavar="T", help="task lengths T")
    p.add_argument("--inits", nargs="+", required=True, metavar="INIT",
                   help=f"initializations: rule files, critical, {', '.join(BASELINES)}")
    add_sweep_options(p, "sweep directory", "the summary (confirm.json)")
    p.set_defaults(handler=_run)


def add_sweep_options(p, directory: str, printed: str) -> None:
    """Options every sweep shares: seeds, the training budget, where the runs go and how they are scheduled."""
    p.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="S", help="seeds (default: 0)")
    add_training_options(p)
    p.add_argument("--scheduler", metavar="ADDRESS", help="address of a running dask scheduler (default: local)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="local cluster workers (default: min(runs, CPUs))")
    p.add_argument("-o", "--output", metavar="DIR", required=True, help=directory)
    p.add_argument("--json", action="store_true", help=f"print {printed} on stdout")


def sweep_from(args) -> Sweep:
    """The :class:`Sweep` the parsed sweep options describe."""
    if args.workers is not None and args.workers < 1:
        raise CommandLineError(f"--workers must be >= 1, got {args.workers}")
    return Sweep(args.cell, args.task, tuple(args.lengths), tuple(args.inits), tuple(args.seeds), args.width,
                 args.steps, args.lr, args.batch, args.clip, args.padding, args.dtype, args.backend)


def _run(args) -> int:
    output_directory(args.output, writes="runs/, confirm.json and confirm.png")
    summary = confirm(sweep_from(args), args.output, scheduler=args.scheduler, workers=args.workers, progress=True)
    if args.json:
        print_json(summary)
        return 0
    print_table(*table(summary))
    print(f"wrote {args.output}/confirm.json, {args.output}/confirm.png")
    return 0
