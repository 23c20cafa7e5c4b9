"""``symmft cells``, ``symmft params`` and ``symmft derive``: what a cell is, which hyperparameters it has, and
its derived mean-field equations."""

from __future__ import annotations

from symmft.cell import params
from symmft.cell.trace import BUILTIN_DIR, available_cells, load_cell
from symmft.theory.meanfield import derive
from symmft.cli.common import cell_argument, command, print_json, print_table


def add_parsers(sub) -> None:
    """The ``cells``, ``params`` and ``derive`` subcommands."""
    p = command(
        sub, "cells", "list the built-in cells",
        "List the built-in cells (files in cells/) with their states and the first line of their docstring.",
        ["symmft cells", "symmft cells --json"],
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, states, description}")
    p.set_defaults(handler=_cells)

    p = command(
        sub, "params", "list a cell's hyperparameters",
        "Table of every hyperparameter of CELL: name, default and meaning. These names are what --set and "
        "--grid accept.\n\n"
        "  sigma2_k  variance scale of map k's input matrix, entries ~ N(0, sigma2_k/m)\n"
        "  nu2_k     variance scale of map k's recurrent matrix, entries ~ N(0, nu2_k/n)\n"
        "            (nu2_k_v when map k multiplies several state-derived vectors v)\n"
        "  mu_k, rho2_k  mean and variance of map k's bias\n"
        "  q_x, c_x  input second moment and correlation of the two input sequences",
        ["symmft params lstm", "symmft params cells/gru.py --json"],
    )
    cell_argument(p)
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, default, meaning}")
    p.set_defaults(handler=_params)

    p = command(
        sub, "derive", "print the derived mean-field equations",
        "Derive the mean-field map of CELL from its graph (weights independent across steps; exact laws wherever "
        "quadrature can do it, else the Gaussian moment closure: docs/laws.md), name the law of each "
        "nonlinearity, and print the Gaussian law of every affine map and the recursion of every moment: M_s (mean), Q_s "
        "(second moment), C_s (cross moment between two input sequences); primed = next step. E1/E2 are 1-D/2-D "
        "Gaussian expectations.",
        ["symmft derive vanilla_rnn", "symmft derive lstm --latex", "symmft derive gru --json"],
    )
    cell_argument(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="print the recursions as a LaTeX aligned block")
    fmt.add_argument("--json", action="store_true", help="print {cell, closure, laws, equations} as JSON")
    p.set_defaults(handler=_derive)


def _cells(args) -> int:
    rows = []
    for name in available_cells():
        cell = load_cell(name)
        first_line = cell.doc.splitlines()[0] if cell.doc else ""
        rows.append({"name": name, "states": list(cell.states), "description": first_line})
    if args.json:
        print_json(rows)
        return 0
    table = [[r["name"], ", ".join(r["states"]), r["description"]] for r in rows]
    print_table(["cell", "states", "description"], table)
    print(f"\nbuilt-in cells are the files in {BUILTIN_DIR}; pass the path of your own cell file as CELL.")
    return 0


def _params(args) -> int:
    rows = params.describe(load_cell(args.cell))
    if args.json:
        print_json(rows)
        return 0
    print_table(["name", "default", "meaning"], [[r["name"], f"{r['default']:g}", r["meaning"]] for r in rows])
    return 0


def _derive(args) -> int:
    mf = derive(load_cell(args.cell))
    if args.latex:
        print(mf.latex())
    elif args.json:
        print_json({
            "cell": mf.cell.name,
            "closure": mf.closure,
            "laws": {
                k: {"mean": str(m), "variance": str(v), "cross_covariance": str(c)} for k, (m, v, c) in mf.laws.items()
            },
            "nonlinearity_laws": mf.nonlinearity_laws,
            "equations": {str(k): str(e) for k, e in mf.equations()},
        })
    else:
        print(mf.text())
    return 0
