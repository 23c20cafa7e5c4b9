"""``symmft phase``: phase diagram of xi, m1 and the critical line over two hyperparameters (symmft.init.phase)."""

from __future__ import annotations

import sys
import time

import numpy as np

from symmft.cell import params
from symmft.cell.trace import load_cell
from symmft.errors import Status
from symmft.init.phase import phase_diagram, write_phase
from symmft.theory.grid import check_cost
from symmft.cli.common import (CommandLineError, assignments, cell_argument, command, num, output_stem, print_json,
                               set_argument)


def add_parsers(sub) -> None:
    """The ``phase`` subcommand."""
    p = command(
        sub, "phase", "phase diagram of xi and the critical line over two hyperparameters",
        "Evaluate CELL on the grid of two hyperparameters (--x, --y; 'ij': arrays have shape (NUM_x, NUM_y)) and "
        "write OUT.png (heatmap of log10 xi with the critical line m1 = 1, contours of constant xi, failed points "
        "hatched grey), OUT.npz (both axes under their names; xi, lambda, chi_1, m1, m2, variance, status, M_s, "
        "Q_s, and spread with --length) and OUT.json (a summary). status is per point: "
        + ", ".join(f"{s.value} {s.name}" for s in Status) + ".",
        [
            "symmft phase lstm --x mu_f=3:10:24 --y nu2_f=0:2:20 -o reports/lstm_phase",
            "symmft phase vanilla_rnn --x nu2_h=0.5:2.5:40 --y sigma2_h=0:1:30 -o reports/vanilla_phase",
            "symmft phase lstm --x mu_f=0:8:32 --y mu_i=-4:2:24 --set nu2_g=0.5 --weights gaussian --length 500 -o out/p",
        ],
        ("xi", "lambda", "chi_1", "m1, m2", "status"),
    )
    cell_argument(p)
    p.add_argument("--x", required=True, metavar="NAME=START:STOP:NUM", help="horizontal axis")
    p.add_argument("--y", required=True, metavar="NAME=START:STOP:NUM", help="vertical axis")
    set_argument(p)
    p.add_argument("--weights", default="orthogonal", choices=("orthogonal", "gaussian"),
                   help="recurrent matrices for m2 (default: %(default)s)")
    p.add_argument("--length", "-T", type=int, default=None, metavar="T",
                   help="also store the spread T (m2/m1^2 - 1) for sequences of length T")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="write OUT.png, OUT.npz and OUT.json")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=_phase)


def _phase(args) -> int:
    cell = load_cell(args.cell)
    fixed = assignments(args.assignments)
    (xn, *xs), (yn, *ys) = params.parse_grid_spec(args.x), params.parse_grid_spec(args.y)
    warning = check_cost(xs[2] * ys[2], work=2.0)  # before allocating; Jacobian moments double the cost
    if warning:
        print(f"symmft: {warning}", file=sys.stderr)
    xv, yv = np.linspace(*xs), np.linspace(*ys)
    for n in (xn, yn):
        if n in fixed:
            raise CommandLineError(f"hyperparameter {n} is given by --set and as an axis; give it once")
    output_stem(args.output, (".png", ".npz", ".json"))
    start = time.perf_counter()
    result = phase_diagram(cell, (xn, xv), (yn, yv), fixed=fixed, weights=args.weights, length=args.length,
                           progress=True)
    summary = write_phase(result, args.output)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    if args.json:
        print_json(summary)
        return 0
    print(f"{cell.name}: {xn}({len(xv)}) x {yn}({len(yv)}) in {summary['seconds']:.2f} s ({args.weights} weights)")
    if summary["status"].get("OK", 0) == 0:
        print("  no point converged: no xi, m1 or critical line on this grid (every point failed, as below)")
    else:
        print(f"  xi from {num(summary['xi_range'][0])} to {num(summary['xi_range'][1])}; m1 from "
              f"{num(summary['m1_range'][0])} to {num(summary['m1_range'][1])}; critical line m1 = 1: "
              f"{'drawn' if summary['critical_line_points'] else 'not on this grid'}")
    for name, fraction in summary["status"].items():
        print(f"  {name:<14} {100 * fraction:6.1f}%  {Status[name].message}")
    print("wrote " + ", ".join(summary["files"]))
    return 0
