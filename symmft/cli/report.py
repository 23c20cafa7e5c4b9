"""``symmft report``: the analysis a person reads, with pictures (symmft.report.build)."""

from __future__ import annotations

from symmft.cell import params
from symmft.cli.common import cell_argument, command
from symmft.report.build import build_report


def add_parsers(sub) -> None:
    """The ``report`` subcommand."""
    p = command(
        sub, "report", "write a report on a cell: theory, finite network, initialization, with figures",
        "Write OUT/report.html (self-contained: open it from disk), OUT/report.md (the same text, figures in "
        "OUT/figures/) and OUT/results.json (every number shown). Sections: 1 the cell (source, traced graph, "
        "hyperparameters); 2 the derived recursions and the Jacobian's structure; 3 fixed points, c*, lambda, xi, "
        "m1, m2 at the defaults and at the critical rule, untied and tied theory side by side; 4 phase diagrams of "
        "xi, m1 and the spectral variance with the critical line, the rule and the baselines; 5 theory against "
        "the finite network (moments over time with error bands, the Jacobian's singular values); 6 the "
        "initialization for length T (rule, margins, baselines, PyTorch/Flax/Keras code); 7 trainability from a "
        "symmft confirm sweep (--confirm). A section that fails is written as failed and the rest still appear. "
        "--quick: about a minute of CPU for an LSTM; the full report about 6 (progress on stderr).",
        [
            "symmft report lstm --quick                  # then open reports/lstm/report.html",
            "symmft report gru --length 1000 -o reports/gru_T1000",
            "symmft report my_cells/janet.py --quick --theory untied",
            "symmft report lstm --x mu_f=0:8:40 --y mu_i=-4:4:30 --confirm runs/sweep",
        ],
    )
    cell_argument(p)
    p.add_argument("--length", "-T", type=int, default=300, metavar="T",
                   help="sequence length T the initialization is for (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="coarser grids, smaller networks, a lighter search")
    p.add_argument("--theory", default="both", choices=("untied", "tied", "both"),
                   help="which mean-field theory to show (tied: where symmft.theory.tied is installed; "
                   "default: %(default)s)")
    p.add_argument("--input-dim", type=int, default=None, metavar="M",
                   help="input size m of the simulated network and the baselines (default: their width)")
    p.add_argument("--width", type=int, default=128, metavar="H",
                   help="width H the baselines' variances are converted at (default: %(default)s)")
    p.add_argument("--x", metavar="NAME=START:STOP:NUM", help="horizontal axis of the phase diagrams (with --y)")
    p.add_argument("--y", metavar="NAME=START:STOP:NUM", help="vertical axis of the phase diagrams (with --x)")
    p.add_argument("--confirm", metavar="DIR", help="a symmft confirm sweep directory for section 7")
    p.add_argument("-o", "--output", metavar="DIR", help="output directory (default: reports/<cell>/)")
    p.set_defaults(handler=_report)


def _report(args) -> int:
    x = params.parse_grid(args.x) if args.x else None
    y = params.parse_grid(args.y) if args.y else None
    summary = build_report(args.cell, length=args.length, quick=args.quick, theory=args.theory,
                           input_dim=args.input_dim, width=args.width, x=x, y=y, confirm=args.confirm,
                           output=args.output, progress=True)
    failed = {n: e for n, e in summary["sections"].items() if e}
    for n, e in failed.items():
        print(f"section {n} failed: {e}")
    print(f"wrote {summary['files']['html']} (open it in a browser), {summary['files']['markdown']} and "
          f"{summary['files']['results']} in {summary['seconds']:.0f} s")
    return 0
