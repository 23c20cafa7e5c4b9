"""The ``symmft`` command line: list cells and hyperparameters, derive, analyze and simulate.

Stage: the last one. Each subcommand parses its arguments, calls one library function (``load_cell``,
``params.describe``, ``meanfield.derive``, ``dynamics.analyze``, ``simulate.simulate``) and prints its result as
a table or as JSON. Bad input raises a :class:`~symmft.errors.SymmftError` anywhere below; :func:`main` turns it
into one line ``symmft: error: <message>`` on stderr and exit code 2, never a traceback.

A hyperparameter grid (``analyze --grid``) is the 'ij' meshgrid of its axes, evaluated in chunks of flattened
points (see ``CHUNK``) under a progress bar, one point per call for the mpmath backend and the population
closure, which take one point; the chunks' results are joined into one ``Analysis`` of the grid's shape.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from . import params
from .backend import BACKENDS as ARRAY_BACKENDS
from .cell import BUILTIN_DIR, available_cells, load_cell
from .compile import BACKENDS
from .dynamics import analyze, jsonable
from .errors import Status, SymmftError
from .jacobian import jacobian_moments
from .meanfield import CLOSURES, derive
from .simulate import WEIGHTS, simulate

#: Grid points per vectorized ``analyze`` call. The Newton loop runs until the slowest point of a call is done, so
#: a point that needs every iteration holds back only its own chunk: on the 2-core CPU, a 40 x 40 GRU grid took
#: 21 s in chunks of 64 against 33 s in one call (and 26 s with 256), and the progress bar moves.
CHUNK = 64


class CommandLineError(SymmftError):
    """A command-line option is invalid on its own or in combination with another."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and examples."""


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The ``symmft`` parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="symmft",
        formatter_class=_Formatter,
        description="Mean-field theory of gated RNNs, derived from a cell file: fixed points, the correlation c*, "
        "the eigenvalue lambda and time scale xi of signal propagation, and the finite random network to check "
        "them against.",
        epilog="examples:\n"
        "  symmft cells\n"
        "  symmft params lstm\n"
        "  symmft derive gru --latex\n"
        "  symmft analyze lstm --set mu_f=3\n"
        "  symmft analyze vanilla_rnn --grid nu2_h=0.5:2:16 --grid sigma2_h=0:1:5 -o reports/vanilla\n"
        "  symmft simulate lstm --width 1000 --steps 50 --set mu_f=3\n"
        "  symmft critical lstm --length 1000 -o reports/lstm_T1000.json\n"
        "  symmft phase lstm --x mu_f=3:10:24 --y nu2_f=0:2:20 -o reports/lstm_phase\n\n"
        "CELL is a built-in cell name (see 'symmft cells') or the path of a cell file.\n"
        "Run 'symmft COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = _command(
        sub, "cells", "list the built-in cells",
        "List the built-in cells (files in cells/) with their states and the first line of their docstring.",
        ["symmft cells", "symmft cells --json"],
    )
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, states, description}")
    p.set_defaults(handler=_cells)

    p = _command(
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
    _cell_argument(p)
    p.add_argument("--json", action="store_true", help="print a JSON list of {name, default, meaning}")
    p.set_defaults(handler=_params)

    p = _command(
        sub, "derive", "print the derived mean-field equations",
        "Derive the mean-field map of CELL from its graph (Gaussian closure, weights independent across steps) "
        "and print the Gaussian law of every affine map and the recursion of every moment: M_s (mean), Q_s "
        "(second moment), C_s (cross moment between two input sequences); primed = next step. E1/E2 are 1-D/2-D "
        "Gaussian expectations.",
        ["symmft derive vanilla_rnn", "symmft derive lstm --latex", "symmft derive gru --json"],
    )
    _cell_argument(p)
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--latex", action="store_true", help="print the recursions as a LaTeX aligned block")
    fmt.add_argument("--json", action="store_true", help="print {cell, closure, laws, equations} as JSON")
    p.set_defaults(handler=_derive)

    p = _command(
        sub, "analyze", "fixed point, c*, lambda and xi (one point or a grid)",
        "Solve the mean-field map of CELL for its fixed point (per state: mean, second moment), the "
        "correlation c* of two input sequences, lambda (leading eigenvalue of the cross map at c*) and the time "
        "scale xi = -1/log|lambda| in steps. Unset hyperparameters take their defaults ('symmft params CELL').\n\n"
        "With --grid, every combination of the axes is evaluated ('ij' meshgrid, axes in the order given) and "
        "-o OUT writes OUT.npz (each axis, every fixed-point key, correlation_<state>, lambda, xi, "
        "diagonal_lambda, status; arrays of the grid's shape) and OUT.json (the --json dict plus axes). "
        "status is per point: " + ", ".join(f"{s.value} {s.name}" for s in Status) + ".",
        [
            "symmft analyze lstm --set mu_f=3",
            "symmft analyze lstm --set mu_f=3 --set nu2_f=0.5 --json",
            "symmft analyze lstm --set mu_f=1 --backend mpmath --dps 20",
            "symmft analyze vanilla_rnn --grid nu2_h=0.5:2:16 --grid sigma2_h=0:1:5 -o reports/vanilla",
        ],
    )
    _cell_argument(p)
    _set_argument(p)
    p.add_argument(
        "--grid", action="append", default=[], metavar="NAME=START:STOP:NUM",
        help="sweep NAME over NUM evenly spaced values from START to STOP (inclusive); repeat for more axes",
    )
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write OUT.npz and OUT.json (needed with --grid unless --json)")
    p.add_argument(
        "--weights", choices=("gaussian", "orthogonal"), default=None,
        help="also give the Jacobian's spectral moments m1, m2, variance and backward time scale for recurrent "
        "weights of this distribution (JSON key 'jacobian')",
    )
    p.add_argument("--jacobian", choices=("memory", "full"), default="memory",
                   help="which Jacobian with --weights: memory (primary states, default) or full (all states)")
    p.add_argument("--closure", default="gaussian", choices=CLOSURES,
                   help="law of non-Gaussian nonlinearity arguments (default: %(default)s)")
    p.add_argument("--backend", default="numpy", choices=BACKENDS,
                   help="numpy (CPU), cupy (GPU) or mpmath (high precision, point by point) (default: %(default)s)")
    p.add_argument("--dps", type=int, default=30, metavar="N",
                   help="digits of the mpmath backend (default: %(default)s)")
    p.add_argument("--json", action="store_true",
                   help="print the analysis as JSON (keys hyperparameters, fixed_point, correlation, lambda, xi, "
                   "status, ...); with -o, the summary as JSON")
    p.set_defaults(handler=_analyze)

    p = _command(
        sub, "simulate", "run the finite random network",
        "Draw the random network of CELL at width N, feed it two input sequences with correlation c_x for T "
        "steps, and print each state's final mean, second moment, cross moment and correlation, averaged over "
        "units and --batch sequence pairs. States start at zero.\n\n"
        "--untied (default) redraws every weight and bias each step: the approximation under which the mean-field "
        "maps are exact. --tied keeps one draw, as a real network does; with long memory (large mu_f) its moments "
        "can differ a lot from the mean-field prediction (theory.md section 5).",
        [
            "symmft simulate vanilla_rnn --width 1000 --steps 50 --set nu2_h=0.5",
            "symmft simulate lstm --width 2000 --steps 100 --tied --set mu_f=3 --json",
            "symmft simulate gru --weights orthogonal --set c_x=0.5 --batch 4",
        ],
    )
    _cell_argument(p)
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
    _set_argument(p)
    p.add_argument("--json", action="store_true",
                   help="print the full result as JSON (hyperparameters, width, steps, tied, weights, seed, and per "
                   "state the trajectories of mean, second_moment, cross_moment, correlation and their final values)")
    p.set_defaults(handler=_simulate, tied=False)
    _add_criticality_commands(sub)
    return parser


def _command(sub, name: str, summary: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(name, help=summary, description=description, epilog=epilog, formatter_class=_Formatter)


def _cell_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("cell", metavar="CELL", help="built-in cell name (symmft cells) or path of a cell file")


def _set_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="assignments",
                   help="set hyperparameter NAME (see 'symmft params CELL'); repeat for more")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("symmft")
    except PackageNotFoundError:
        return "(not installed)"


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input, argparse's codes for --help/usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors: argparse has printed what it had to
        return e.code if isinstance(e.code, int) else 2
    try:
        return args.handler(args) or 0
    except SymmftError as e:
        print(f"symmft: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("symmft: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into a reader that stopped early (| head): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 1


# ---------------------------------------------------------------- cells, params, derive


def _cells(args) -> int:
    rows = []
    for name in available_cells():
        cell = load_cell(name)
        first_line = cell.doc.splitlines()[0] if cell.doc else ""
        rows.append({"name": name, "states": list(cell.states), "description": first_line})
    if args.json:
        _print_json(rows)
        return 0
    table = [[r["name"], ", ".join(r["states"]), r["description"]] for r in rows]
    _print_table(["cell", "states", "description"], table)
    print(f"\nbuilt-in cells are the files in {BUILTIN_DIR}; pass the path of your own cell file as CELL.")
    return 0


def _params(args) -> int:
    rows = params.describe(load_cell(args.cell))
    if args.json:
        _print_json(rows)
        return 0
    _print_table(["name", "default", "meaning"], [[r["name"], f"{r['default']:g}", r["meaning"]] for r in rows])
    return 0


def _derive(args) -> int:
    mf = derive(load_cell(args.cell))
    if args.latex:
        print(mf.latex())
    elif args.json:
        _print_json({
            "cell": mf.cell.name,
            "closure": mf.closure,
            "laws": {
                k: {"mean": str(m), "variance": str(v), "cross_covariance": str(c)} for k, (m, v, c) in mf.laws.items()
            },
            "equations": {str(k): str(e) for k, e in mf.equations()},
        })
    else:
        print(mf.text())
    return 0


# ---------------------------------------------------------------- analyze


def _analyze(args) -> int:
    cell = load_cell(args.cell)
    values = _assignments(args.assignments)
    axes: dict[str, np.ndarray] = {}
    for text in args.grid:
        name, axis = params.parse_grid(text)
        if name in axes or name in values:
            raise CommandLineError(
                f"hyperparameter {name} is given twice (by --grid and --set, or by two --grid); give it once"
            )
        axes[name] = axis
    if axes and not (args.output or args.json):
        raise CommandLineError(
            "--grid computes arrays: give -o OUT to write OUT.npz and OUT.json, or --json to print them"
        )
    if args.dps < 5:
        raise CommandLineError(f"--dps must be at least 5, got {args.dps}")
    mesh = dict(zip(axes, np.meshgrid(*axes.values(), indexing="ij")))
    params.resolve(cell, {**values, **mesh})  # names and values checked before any work

    start = time.perf_counter()
    if axes:
        analysis = _analyze_grid(cell, values, mesh, args)
    else:
        analysis = _run_analysis(cell, values, args)
    seconds = time.perf_counter() - start

    result = analysis.to_json()
    moments = None
    if args.weights:
        moments = jacobian_moments(analysis, kind=args.jacobian, weights=args.weights)
        result["jacobian"] = {k: jsonable(np.asarray(v, dtype=float)) for k, v in moments.items()}
    if axes:
        result["axes"] = {k: v.tolist() for k, v in axes.items()}
        result["grid_shape"] = [len(v) for v in axes.values()]
    if args.output:
        files = _write_analysis(analysis, result, axes, args.output)
        summary = _summary(analysis, axes, seconds, files)
        if args.json:
            _print_json(summary)
        else:
            _print_summary(summary, analysis)
    elif args.json:
        _print_json(result)
    else:
        _print_analysis(analysis, values, seconds)
        if moments is not None:
            print(f"\nJacobian ({args.jacobian}, {args.weights} weights): m1 {float(moments['m1']):.8g}   "
                  f"m2 {float(moments['m2']):.8g}   variance {float(moments['variance']):.8g}   "
                  f"backward time scale {float(moments['xi_backward']):.6g} steps")
    return 0


def _run_analysis(cell, values: dict, args):
    return analyze(cell, values, backend=args.backend, closure=args.closure, dps=args.dps)


def _analyze_grid(cell, values: dict, mesh: dict[str, np.ndarray], args):
    """Evaluate the grid ``mesh`` (arrays of one shape) in chunks of flattened points; one Analysis of its shape."""
    from tqdm import tqdm

    shape = next(iter(mesh.values())).shape
    total = math.prod(shape)
    # the mpmath backend and the population closure evaluate one point per call
    chunk = 1 if args.backend == "mpmath" or args.closure == "population" else CHUNK
    if chunk > 1 and total <= chunk:
        return _run_analysis(cell, {**values, **mesh}, args)
    grid = " x ".join(f"{a}({n})" for a, n in zip(mesh, shape))
    print(f"symmft: analyzing {cell.name} on {grid}: {total} points, {chunk} per call", file=sys.stderr)
    flat = {k: v.ravel() for k, v in mesh.items()}
    parts = []
    with tqdm(total=total, unit="point", file=sys.stderr, disable=None, desc="analyze") as bar:
        for lo in range(0, total, chunk):
            point = {k: (v[lo] if chunk == 1 else v[lo : lo + chunk]) for k, v in flat.items()}
            parts.append(_run_analysis(cell, {**values, **point}, args))
            bar.update(min(chunk, total - lo))
    return _merge(parts, shape, params.resolve(cell, {**values, **mesh}))


def _merge(parts: list, shape: tuple[int, ...], hyperparameters: dict):
    """Join analyses of consecutive chunks of flattened grid points into one Analysis of ``shape``."""

    def cat(values, dtype=float):
        return np.concatenate([np.ravel(np.asarray(v, dtype=dtype)) for v in values]).reshape(shape)

    def cat_dict(field):
        return {k: cat([getattr(p, field)[k] for p in parts]) for k in getattr(parts[0], field)}

    return replace(
        parts[0],
        hyperparameters=hyperparameters,
        fixed_point=cat_dict("fixed_point"),
        cross_fixed_point=cat_dict("cross_fixed_point"),
        correlation=cat_dict("correlation"),
        lambda_=cat([p.lambda_ for p in parts]),
        xi=cat([p.xi for p in parts]),
        diagonal_lambda=cat([p.diagonal_lambda for p in parts]),
        status=cat([p.status for p in parts], dtype=int),
        extras=cat_dict("extras"),
    )


def _write_analysis(analysis, result: dict, axes: dict[str, np.ndarray], output: str) -> list[str]:
    """OUT.npz (axes and result arrays) and OUT.json (``result``); returns the two paths."""
    out = Path(output)
    if out.suffix in (".npz", ".json"):
        out = out.with_suffix("")
    arrays = {name: np.asarray(axis, dtype=float) for name, axis in axes.items()}

    def array(v, dtype=float):
        return np.asarray(v, dtype=dtype)  # mpmath numbers become floats

    arrays.update({k: array(v) for k, v in analysis.fixed_point.items()})
    arrays.update({k: array(v) for k, v in analysis.cross_fixed_point.items()})
    arrays.update({f"correlation_{s}": array(v) for s, v in analysis.correlation.items()})
    arrays.update(
        {
            "lambda": array(analysis.lambda_),
            "xi": array(analysis.xi),
            "diagonal_lambda": array(analysis.diagonal_lambda),
            "status": array(analysis.status, int),
        }
    )
    arrays.update({k: array(v) for k, v in analysis.extras.items() if k not in arrays})
    npz, js = out.with_name(out.name + ".npz"), out.with_name(out.name + ".json")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(npz, **arrays)
        js.write_text(json.dumps(result, indent=1) + "\n")
    except OSError as e:
        raise CommandLineError(f"cannot write {e.filename or out}: {e.strerror or e}; choose another -o OUT") from None
    return [str(npz), str(js)]


def _summary(analysis, axes: dict, seconds: float, files: list[str]) -> dict:
    status = np.asarray(analysis.status).ravel()
    return {
        "cell": analysis.cell.name,
        "closure": analysis.closure,
        "backend": analysis.backend,
        "axes": list(axes),
        "grid_shape": [len(v) for v in axes.values()],
        "points": int(status.size),
        "status": {s.name: float(np.mean(status == s)) for s in Status if np.any(status == s)},
        "seconds": round(seconds, 3),
        "files": files,
    }


def _print_summary(summary: dict, analysis) -> None:
    grid = " x ".join(f"{a}({n})" for a, n in zip(summary["axes"], summary["grid_shape"])) or "no grid"
    points = summary["points"]
    print(f"{summary['cell']}: {grid}: {points} point{'s' * (points != 1)} in {summary['seconds']:.2f} s "
          f"({summary['closure']} closure, {summary['backend']} backend)")
    status = np.asarray(analysis.status).ravel()
    for s in Status:
        count = int(np.sum(status == s))
        if count:
            print(f"  {s.name:<14} {100 * count / status.size:6.1f}%  ({count} point{'s' * (count != 1)})  {s.message}")
    print("wrote " + ", ".join(summary["files"]))


def _print_analysis(analysis, values: dict, seconds: float) -> None:
    cell = analysis.cell
    status = Status(int(np.asarray(analysis.status)))
    set_ = ", ".join(f"{k}={v:g}" for k, v in values.items()) or "none"
    print(f"{cell.name}: mean-field analysis ({analysis.closure} closure, {analysis.backend} backend, {seconds:.2f} s)")
    print(f"hyperparameters set: {set_}  (others at their defaults: symmft params {cell.name})")
    print(f"status: {status.name} ({status.message})")
    print()
    rows = [[s, _num(m["mean"]), _num(m["second_moment"]), _num(analysis.correlation[s])]
            for s in cell.states for m in [analysis.state_moments(s)]]
    _print_table(["state", "mean M*", "second moment Q*", "correlation c*"], rows)
    print()
    print(f"lambda           {_num(analysis.lambda_)}   (leading eigenvalue of the cross map at c*)")
    print(f"xi               {_num(analysis.xi)}   (steps: -1/log|lambda|)")
    print(f"diagonal lambda  {_num(analysis.diagonal_lambda)}   (stability of the fixed point: needs |.| < 1)")
    for name, value in analysis.extras.items():  # e.g. the population closure's standard errors
        print(f"{name}  {_num(value)}")


# ---------------------------------------------------------------- simulate


def _simulate(args) -> int:
    result = simulate(
        load_cell(args.cell), _assignments(args.assignments), width=args.width, steps=args.steps, tied=args.tied,
        weights=args.weights, seed=args.seed, batch=args.batch, input_dim=args.input_dim, xp=args.backend,
    )
    if args.json:
        _print_json(result.to_json())
        return 0
    print(f"{result.cell}: {'tied' if result.tied else 'untied'} {result.weights} network, width {result.width}, "
          f"input dim {result.input_dim}, {result.steps} steps, {result.batch} sequence pair(s), seed {result.seed}")
    values = _assignments(args.assignments)
    print(f"hyperparameters set: {', '.join(f'{k}={v:g}' for k, v in values.items()) or 'none'}")
    print()
    rows = [[s, *(_num(tr.final[k]) for k in ("mean", "second_moment", "cross_moment", "correlation"))]
            for s, tr in result.states.items()]
    _print_table(["state", "mean", "second moment", "cross moment", "correlation"], rows)
    return 0


# ---------------------------------------------------------------- helpers


def _assignments(texts: list[str]) -> dict[str, float]:
    values: dict[str, float] = {}
    for text in texts:
        name, value = params.parse_assignment(text)
        if name in values:
            raise CommandLineError(
                f"hyperparameter {name} is set twice (--set {name}={values[name]:g} and --set {text}); set it once"
            )
        values[name] = value
    return values


def _num(x) -> str:
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{x:.8g}"


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


# ---------------------------------------------------------------- critical, phase


def _add_criticality_commands(sub) -> None:
    """The ``critical`` and ``phase`` subcommands (symmft.criticality, symmft.phase)."""
    from .criticality import BASELINES

    p = _command(
        sub, "critical", "search a critical initialization for sequences of length T",
        "Search the free hyperparameters of CELL for an initialization trainable on sequences of length T "
        "(mean-field criteria): forward time scale xi >= T, |m1 - 1| <= 1e-3 (m1: mean squared singular value of "
        "the state-to-state Jacobian), every state second moment Q_s <= 10, spread T (m2/m1^2 - 1) <= 1 "
        "(dynamical isometry), fixed point found; among such points the smallest spectral variance m2 - m1^2. "
        "Prints the chosen point, the predicted quantities, the margin of every free parameter (how far it can "
        "move down and up before a criterion fails, the others held) and the baselines "
        f"({', '.join(BASELINES)}) converted to width H and input dimension m. -o writes the init rule as JSON.\n\n"
        "Default free parameters: the memory (forget/update) gate's bias mean, the write (input) gate's, every "
        "recurrent variance nu2_*; the others stay at their defaults or --fix values. Inputs are assumed "
        "standardized (q_x = 1) and the two sequences identical (c_x = 1); --fix q_x=... otherwise. An LSTM "
        "search takes about a minute on two cores (progress on stderr).",
        [
            "symmft critical lstm --length 1000",
            "symmft critical lstm --length 1000 --weights gaussian -o reports/lstm_T1000.json",
            "symmft critical lstm --length 300 --free mu_f --free mu_i --free nu2_f --fix nu2_g=0.5",
            "symmft critical vanilla_rnn --length 1000 --free nu2_h --fix sigma2_h=0 --fix rho2_h=1e-7 --json",
            "symmft critical gru_reset_before --length 500 --bound mu_z=0:8 --width 256 --input-dim 28",
        ],
    )
    _cell_argument(p)
    p.add_argument("--length", "-T", type=int, required=True, metavar="T", help="sequence length T in steps")
    p.add_argument("--weights", default="orthogonal", choices=("orthogonal", "gaussian"),
                   help="recurrent matrices of the rule: scaled Haar-orthogonal or Gaussian (default: %(default)s)")
    p.add_argument("--fix", action="append", default=[], metavar="NAME=VALUE", dest="assignments",
                   help="hold hyperparameter NAME at VALUE (see 'symmft params CELL'); repeat for more")
    p.add_argument("--free", action="append", default=None, metavar="NAME",
                   help="search hyperparameter NAME (repeat; replaces the default free set)")
    p.add_argument("--bound", action="append", default=[], metavar="NAME=LO:HI",
                   help="search range of a free hyperparameter (default: memory-gate mean [0, log T + 3], other "
                   "means [-6, 6], variances [0, 3])")
    p.add_argument("--min-second-moment", type=float, default=0.0, metavar="Q",
                   help="also require every state second moment Q_s >= Q (default: %(default)s, off)")
    p.add_argument("--width", type=int, default=128, metavar="H",
                   help="width H for the baselines' variances (default: %(default)s)")
    p.add_argument("--input-dim", type=int, default=None, metavar="M",
                   help="input dimension m for the baselines (default: the width)")
    p.add_argument("-o", "--output", metavar="RULE.json", help="write the init rule (JSON)")
    p.add_argument("--json", action="store_true",
                   help="print {rule, baselines} as JSON (rule: cell, cell_file_hash, length, weights, "
                   "hyperparameters, criteria, margins, input_statistics, notes, search)")
    p.set_defaults(handler=_critical)

    p = _command(
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
    )
    _cell_argument(p)
    p.add_argument("--x", required=True, metavar="NAME=START:STOP:NUM", help="horizontal axis")
    p.add_argument("--y", required=True, metavar="NAME=START:STOP:NUM", help="vertical axis")
    _set_argument(p)
    p.add_argument("--weights", default="orthogonal", choices=("orthogonal", "gaussian"),
                   help="recurrent matrices for m2 (default: %(default)s)")
    p.add_argument("--length", "-T", type=int, default=None, metavar="T",
                   help="also store the spread T (m2/m1^2 - 1) for sequences of length T")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="write OUT.png, OUT.npz and OUT.json")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(handler=_phase)


def _bounds(texts: list[str]) -> dict[str, tuple[float, float]]:
    out = {}
    for text in texts:
        name, sep, spec = text.partition("=")
        lo, colon, hi = spec.partition(":")
        try:
            if not (sep and colon and name.strip()):
                raise ValueError
            out[name.strip()] = (float(lo), float(hi))
        except ValueError:
            raise CommandLineError(f"expected --bound NAME=LO:HI, got {text!r}") from None
    return out


def _critical(args) -> int:
    from .criticality import evaluate_baselines, find_critical, rows_json

    cell = load_cell(args.cell)
    fixed = _assignments(args.assignments)
    if args.width < 1 or (args.input_dim is not None and args.input_dim < 1):
        raise CommandLineError("--width and --input-dim must be >= 1")
    result = find_critical(cell, args.length, weights=args.weights, fixed=fixed, free=args.free,
                           bounds=_bounds(args.bound), min_second_moment=args.min_second_moment, progress=True)
    baselines = evaluate_baselines(cell, args.length, width=args.width, input_dim=args.input_dim)
    written = str(result.write_rule(args.output)) if args.output else None
    rule = result.to_json()
    if args.json:
        _print_json({"rule": rule, "baselines": rows_json(baselines), "written": written})
        return 0
    T = args.length
    print(f"{cell.name}: critical initialization for T = {T} ({args.weights} recurrent weights, "
          f"{rule['search']['seconds']:.1f} s, {rule['search']['points_evaluated']} points evaluated)")
    print(f"fixed: {', '.join(f'{k}={v:g}' for k, v in fixed.items()) or 'none'} (others at their defaults); "
          f"inputs q_x = {rule['input_statistics']['q_x']:g}, c_x = {rule['input_statistics']['c_x']:g}")
    print()
    print("chosen point:")
    _print_table(["name", "value", "margin down", "limited by", "margin up", "limited by"],
                 [[n, _num(rule["hyperparameters"][n]), _num(m["down"]), m["down_limit"], _num(m["up"]), m["up_limit"]]
                  for n, m in rule["margins"].items()])
    print()
    c, th = rule["criteria"], rule["thresholds"]
    rows = [["xi", _num(c["xi"]), f">= {th['xi_min']}"], ["lambda", _num(c["lambda"]), ""],
            ["m1", _num(c["m1"]), f"within {th['m1_tolerance']:g} of 1"], ["m2", _num(c["m2"]), ""],
            ["variance m2 - m1^2", _num(c["variance"]), "minimized"],
            ["spread T(m2/m1^2 - 1)", _num(c["spread"]), f"<= {th['max_spread']:g}"]]
    rows += [[k, _num(v), f"<= {th['max_second_moment']:g}" if k.startswith("Q_") else ""]
             for k, v in c.items() if k.startswith(("Q_", "M_"))]
    _print_table(["predicted", "value", "criterion"], rows)
    for note in rule["notes"]:
        print(f"note: {note}")
    print()
    m = args.input_dim or args.width
    print(f"baselines at width H = {args.width}, input dimension m = {m}:")
    table = []
    for b in baselines:
        if not b["applicable"]:
            table.append([b["name"], "-", "-", "-", "-", "not applicable: " + b["notes"][0]])
            continue
        table.append([b["name"], b["weights"], _num(b["xi"]), _num(b["m1"]), _num(b["variance"]),
                      "trainable" if not b["fails"] else "fails " + ", ".join(b["fails"])])
    _print_table(["baseline", "weights", "xi", "m1", "variance", f"for T = {T}"], table)
    for b in baselines:
        for note in b["notes"] if b["applicable"] else []:
            print(f"note ({b['name']}): {note}")
    if written:
        print(f"\nwrote {written}")
    return 0


def _phase(args) -> int:
    from .phase import phase_diagram, write_phase

    cell = load_cell(args.cell)
    fixed = _assignments(args.assignments)
    (xn, xv), (yn, yv) = params.parse_grid(args.x), params.parse_grid(args.y)
    for n in (xn, yn):
        if n in fixed:
            raise CommandLineError(f"hyperparameter {n} is given by --set and as an axis; give it once")
    start = time.perf_counter()
    result = phase_diagram(cell, (xn, xv), (yn, yv), fixed=fixed, weights=args.weights, length=args.length,
                           progress=True)
    summary = write_phase(result, args.output)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    if args.json:
        _print_json(summary)
        return 0
    print(f"{cell.name}: {xn}({len(xv)}) x {yn}({len(yv)}) in {summary['seconds']:.2f} s ({args.weights} weights)")
    print(f"  xi from {_num(summary['xi_range'][0])} to {_num(summary['xi_range'][1])}; m1 from "
          f"{_num(summary['m1_range'][0])} to {_num(summary['m1_range'][1])}; critical line m1 = 1: "
          f"{'drawn' if summary['critical_line_points'] else 'not on this grid'}")
    for name, fraction in summary["status"].items():
        print(f"  {name:<14} {100 * fraction:6.1f}%  {Status[name].message}")
    print("wrote " + ", ".join(summary["files"]))
    return 0
