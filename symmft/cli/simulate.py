"""``symmft simulate``: the finite random network of a cell file, tied or untied, and its state moments."""

from __future__ import annotations

from symmft.backend import BACKENDS as ARRAY_BACKENDS
from symmft.cell.trace import load_cell
from symmft.network.simulate import WEIGHTS, simulate
from symmft.cli.common import assignments, cell_argument, command, num, print_json, print_table, set_argument


def add_parsers(sub) -> None:
    """The ``simulate`` subcommand."""
    p = command(
        sub, "simulate", "run the finite random network",
        "Draw the random network of CELL at width N, feed it two input sequences with correlation c_x for T "
        "steps, and print each state's final mean, second moment, cross moment and correlation, averaged over "
        "units and --batch sequence pairs. States start at zero.\n\n"
        "--untied (default) redraws every weight and bias each step: the approximation under which the mean-field "
        "maps are exact. --tied keeps one draw, as a real network does; with long memory (large mu_f) its moments "
        "can differ a lot from the mean-field prediction (docs/theory.md section 5).",
        [
            "symmft simulate vanilla_rnn --width 1000 --steps 50 --set nu2_h=0.5",
            "symmft simulate lstm --width 2000 --steps 100 --tied --set mu_f=3 --json",
            "symmft simulate gru --weights orthogonal --set c_x=0.5 --batch 4",
        ],
    )
    cell_argument(p)
    p.add_argument("--width", type=int, default=1000, metavar="N", help="units per state (default: %(default)s)")
    p.add_argument("--steps", type=int, default=100, metavar="T", help="time steps (default: %(default)s)")
    tied = p.add_mutually_exclusive_group()
    tied.add_argument("--tied", dest="tied", action="store_true", help="one draw of weights for all steps")
    tied.add_argument("--untied", dest="tied", action="store_false", help="fresh weights every step (default)")
    p.add_argument("--weights", default="gaussian", choices=WEIGHTS,
                   help="recurrent matrices: gaussian or scaled Haar-orthogonal (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0,
                   help="random seed; a run is reproducible given it (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, metavar="B",
                   help="independent pairs of input sequences averaged over (default: %(default)s)")
    p.add_argument("--input-dim", type=int, default=None, metavar="M", help="input dimension m (default: the width)")
    p.add_argument("--backend", default="numpy", choices=ARRAY_BACKENDS, help="array backend (default: %(default)s)")
    set_argument(p)
    p.add_argument("--json", action="store_true",
                   help="print the full result as JSON (hyperparameters, width, steps, tied, weights, seed, and per "
                   "state the trajectories of mean, second_moment, cross_moment, correlation and their final values)")
    p.set_defaults(handler=_simulate, tied=False)


def _simulate(args) -> int:
    result = simulate(
        load_cell(args.cell), assignments(args.assignments), width=args.width, steps=args.steps, tied=args.tied,
        weights=args.weights, seed=args.seed, batch=args.batch, input_dim=args.input_dim, xp=args.backend,
    )
    if args.json:
        print_json(result.to_json())
        return 0
    print(f"{result.cell}: {'tied' if result.tied else 'untied'} {result.weights} network, width {result.width}, "
          f"input dim {result.input_dim}, {result.steps} steps, {result.batch} sequence pair(s), seed {result.seed}")
    values = assignments(args.assignments)
    print(f"hyperparameters set: {', '.join(f'{k}={v:g}' for k, v in values.items()) or 'none'}")
    print()
    rows = [[s, *(num(tr.final[k]) for k in ("mean", "second_moment", "cross_moment", "correlation"))]
            for s, tr in result.states.items()]
    print_table(["state", "mean", "second moment", "cross moment", "correlation"], rows)
    return 0
