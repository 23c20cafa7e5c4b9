"""``symmft trainability``: a map of the final test metric over (one hyperparameter, T) with the theory's time
scales times fitted constants overlaid (symmft.harness.trainability)."""

from __future__ import annotations

from symmft.harness.trainability import constants_text, table, trainability
from symmft.init.search import BASELINES
from symmft.cli.common import (assignments, cell_argument, command, output_directory, print_json, print_table,
                               set_argument)
from symmft.cli.confirm import add_sweep_options, sweep_from
from symmft.theory.jacobian import WEIGHTS


def add_parsers(sub) -> None:
    """The ``trainability`` subcommand."""
    p = command(
        sub, "trainability", "trainability map: final metric over (hyperparameter, T), xi and 1/|log m1| overlaid",
        "Train CELL on TASK at every value of hyperparameter --axis (the others at the cell's defaults, --set values "
        "and --weights recurrent matrices) and every length T in --lengths and seed in --seeds, plus the named "
        "inits in --inits (critical, baselines, rule files) at their own hyperparameters; the same budget for all. "
        "Runs go through dask.distributed exactly as 'symmft confirm' (local cluster or --scheduler ADDRESS; "
        "finished runs reused, so rerunning an interrupted map continues it). Writes DIR/trainability.json (the "
        "mean metric per cell, which cells trained, the theory's xi and 1/|log m1| per value, the fitted constants "
        "c of 'trained iff T <= c tau' with the range of equally good constants and the cells they misclassify) and "
        "DIR/trainability.png (the heatmap with c xi and c' / |log m1| drawn and the named inits as markers).",
        [
            "symmft trainability gru --axis mu_z --values 0 1.5 3 4.5 6 --task digits_padded --lengths 30 100 300 --inits critical pytorch keras -o runs/gru_map",
            "symmft trainability lstm --axis mu_f --values -1 1 3 --set nu2_f=0.5 --task adding --lengths 20 80 --steps 200 -o runs/lstm_add",
            "symmft trainability my_cells/janet.py --axis mu_f --values 0 2 4 --task copy --lengths 10 30 --inits critical -o runs/janet",
        ],
    )
    cell_argument(p)
    p.add_argument("--axis", required=True, metavar="NAME", help="the hyperparameter on the horizontal axis")
    p.add_argument("--values", type=float, nargs="+", required=True, metavar="V", help="its values (at least two)")
    set_argument(p)
    p.add_argument("--weights", default="gaussian", choices=WEIGHTS,
                   help="recurrent matrices of the grid's inits (default: %(default)s)")
    p.add_argument("--lengths", type=int, nargs="+", required=True, metavar="T", help="task lengths T")
    p.add_argument("--inits", nargs="*", default=["critical", *BASELINES], metavar="INIT",
                   help="named inits drawn as points: rule files, critical, baselines (default: critical and every baseline)")
    p.add_argument("--threshold", type=float, default=0.5,
                   help="a cell trained when its score reaches this fraction of the map's best (default: %(default)s)")
    add_sweep_options(p, "map directory", "the map (trainability.json)")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    output_directory(args.output, writes="points/, runs/, confirm.* and trainability.*")
    result = trainability(sweep_from(args), args.axis, args.values, args.output, base=assignments(args.assignments),
                          weights=args.weights, threshold=args.threshold, scheduler=args.scheduler,
                          workers=args.workers, progress=True)
    if args.json:
        print_json(result)
        return 0
    print_table(*table(result))
    for line in constants_text(result):
        print(line)
    print(f"wrote {args.output}/trainability.json, {args.output}/trainability.png")
    return 0
