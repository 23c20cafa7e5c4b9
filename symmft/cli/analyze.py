"""``symmft analyze``: the mean-field fixed point, c*, lambda and xi of a cell at one point or on a grid.

A hyperparameter grid (``--grid``) is the 'ij' meshgrid of its axes, evaluated by
:func:`symmft.theory.grid.analyze_grid` (chunks of flattened points under a progress bar).
"""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from symmft.cell import params
from symmft.cell.trace import load_cell
from symmft.theory.compile import BACKENDS
from symmft.serialize import jsonable
from symmft.theory.point import analyze_point
from symmft.theory.grid import TWO_SEQUENCE_WORK, analyze_grid, check_cost
from symmft.errors import Status, integer_option
from symmft.theory.analysis import ZERO_SECOND_MOMENT
from symmft.theory.jacobian import jacobian_moments
from symmft.theory.closure import CLOSURES, DEFAULT_CLOSURE
from symmft.theory.meanfield import two_sequence_conditional
from symmft.theory.stationary import MEMORY_BYTES, REASONS
from symmft.theory.tied import STATIONARY_POPULATION, STATIONARY_STEPS, analyze_tied
from symmft.cli.common import (CommandLineError, assignments, cell_argument, command, num, output_stem, print_json,
                               print_table, set_argument)

def add_parsers(sub) -> None:
    """The ``analyze`` subcommand."""
    p = command(
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
            "symmft analyze lstm --theory tied --set mu_f=3 --steps 200 --json",
            "symmft analyze lstm --theory tied --set mu_f=3 --input-dim 28 --weights orthogonal",
            "symmft analyze lstm --theory tied --set mu_f=5 --stationary-steps 1000000 --stationary-population 8000",
        ],
        ("M*, Q*", "c*", "lambda", "xi", "chi_1", "diagonal lambda", "m1, m2", "closure", "status"),
    )
    cell_argument(p)
    set_argument(p)
    p.add_argument(
        "--grid", action="append", default=[], metavar="NAME=START:STOP:NUM",
        help="sweep NAME over NUM evenly spaced values from START to STOP (inclusive); repeat for more axes",
    )
    p.add_argument("-o", "--output", metavar="OUT",
                   help="write OUT.npz and OUT.json (needed with --grid unless --json)")
    p.add_argument(
        "--weights", choices=("gaussian", "orthogonal"), default=None,
        help="also give the Jacobian's spectral moments m1, m2, variance and backward time scale for recurrent "
        "weights of this distribution (JSON key 'jacobian'); with --theory tied, the free-probability moments at "
        "the tied stationary moments (an approximation: within 0.3%% of width-1000 tied networks where measured, "
        "docs/tied.md §1)",
    )
    p.add_argument("--jacobian", choices=("memory", "full"), default="memory",
                   help="which Jacobian with --weights: memory (primary states, default) or full (all states)")
    p.add_argument("--theory", choices=("untied", "tied"), default="untied",
                   help="untied (default): the paper's mean-field maps, weights redrawn every step -- deterministic, "
                   "fast, on grids; tied: the dynamical mean-field theory of the real network (weights reused), "
                   "by Monte Carlo over a population of units, one point, with standard errors (docs/tied.md)")
    p.add_argument("--steps", type=int, default=None, metavar="T",
                   help="tied: also give the transient t = 1..T from the zero state (JSON key 'trajectory')")
    p.add_argument("--input-dim", type=int, default=None, metavar="M",
                   help="tied: the input size m (default: infinite); finite m correlates a unit's gate drives")
    p.add_argument("--population", type=int, default=20000, metavar="P",
                   help="tied: units of the Monte Carlo population (default: %(default)s)")
    p.add_argument("--stationary-steps", type=_integer, default=None, metavar="N",
                   help="tied: the stationary solver's budget of steps per unit, used when the transient's tail is "
                   "still relaxing (a long memory); raise it when the solver ends NOT_CONVERGED for max_steps or "
                   "drift, e.g. --stationary-steps 1000000 (a memory of ~10^5 steps, as at the T = 1000 LSTM rule, "
                   f"ends OK in 2-3x10^5; the cost grows in proportion) (default: {STATIONARY_STEPS})")
    p.add_argument("--stationary-population", type=_integer, default=None, metavar="P",
                   help="tied: the stationary solver's units (at least 32; it reduces them further when its "
                   f"{MEMORY_BYTES / 1e9:g} GB memory budget demands, and says so); raise it when the solver ends "
                   "NOT_CONVERGED for clipped, e.g. --stationary-population 8000 (default: the smaller of "
                   f"--population and {STATIONARY_POPULATION})")
    p.add_argument("--seed", type=int, default=0, help="tied: random seed (default: %(default)s)")
    p.add_argument("--closure", default=DEFAULT_CLOSURE, choices=CLOSURES,
                   help="law of non-Gaussian nonlinearity arguments: auto = exact wherever quadrature can do it "
                   "(a conditional law like the GRU's tanh(u_n + r*u_hn); on a grid with c_x != 1 exact for the "
                   "fixed point only), else the Gaussian moment closure, labelled, its error measured at one point "
                   "by a population check; exact / "
                   "exact-diagonal / gaussian = one deterministic map; population = Monte Carlo (default: "
                   "%(default)s; docs/laws.md)")
    p.add_argument("--backend", default="numpy", choices=BACKENDS,
                   help="numpy (CPU), cupy (GPU) or mpmath (high precision, point by point) (default: %(default)s); "
                   "with --theory tied: numpy or cupy, the device of the causal transient")
    p.add_argument("--dps", type=int, default=30, metavar="N",
                   help="digits of the mpmath backend (default: %(default)s)")
    p.add_argument("--max-iterations", type=int, default=200, metavar="N",
                   help="Newton iterations of each fixed-point solve before a point is NOT_CONVERGED "
                   "(default: %(default)s)")
    p.add_argument("--json", action="store_true",
                   help="print the analysis as JSON (keys hyperparameters, fixed_point, correlation, lambda, xi, "
                   "status, ...); with -o, the summary as JSON")
    p.set_defaults(handler=_analyze)


def _analyze(args) -> int:
    cell = load_cell(args.cell)
    values = assignments(args.assignments)
    if args.theory == "tied":
        return _analyze_tied(args, cell, values)
    for option in ("steps", "input_dim", "stationary_steps", "stationary_population"):
        if getattr(args, option) is not None:
            raise CommandLineError(f"--{option.replace('_', '-')} belongs to the tied theory: add --theory tied")
    specs: dict[str, tuple] = {}
    for text in args.grid:
        name, *spec = params.parse_grid_spec(text)
        if name in specs or name in values:
            raise CommandLineError(
                f"hyperparameter {name} is given twice (by --grid and --set, or by two --grid); give it once"
            )
        specs[name] = spec
    if specs and not (args.output or args.json):
        raise CommandLineError(
            "--grid computes arrays: give -o OUT to write OUT.npz and OUT.json, or --json to print them"
        )
    if args.dps < 5:
        raise CommandLineError(f"--dps must be at least 5, got {args.dps}")
    if args.max_iterations < 1:
        raise CommandLineError(f"--max-iterations must be at least 1, got {args.max_iterations}")
    output_stem(args.output, (".npz", ".json"))
    identical = "c_x" not in specs and values.get("c_x", 1.0) == 1.0
    two_sequence = args.closure == "exact" and not identical and args.backend != "mpmath" and specs and \
        two_sequence_conditional(cell)
    warning = check_cost(math.prod(num for *_, num in specs.values()), backend=args.backend, closure=args.closure,
                         dps=args.dps, work=TWO_SEQUENCE_WORK if two_sequence else 1.0)  # before any allocation
    if warning:
        print(f"symmft: {warning}", file=sys.stderr)
    axes = {name: np.linspace(*spec) for name, spec in specs.items()}
    mesh = dict(zip(axes, np.meshgrid(*axes.values(), indexing="ij")))
    params.resolve(cell, {**values, **mesh})  # names and values checked before any work

    start = time.perf_counter()
    if axes:
        analysis = analyze_grid(cell, values, mesh, backend=args.backend, closure=args.closure, dps=args.dps,
                                max_iterations=args.max_iterations)
    else:
        analysis = analyze_point(cell, values, backend=args.backend, closure=args.closure, dps=args.dps,
                                 max_iterations=args.max_iterations)
    seconds = time.perf_counter() - start

    result = analysis.to_json()
    moments = _jacobian(args, analysis, result)
    if axes:
        result["axes"] = {k: v.tolist() for k, v in axes.items()}
        result["grid_shape"] = [len(v) for v in axes.values()]
    if args.output:
        files = _write_analysis(analysis, result, axes, args.output)
        summary = _summary(analysis, axes, seconds, files)
        if args.json:
            print_json(summary)
        else:
            _print_summary(summary, analysis)
    elif args.json:
        print_json(result)
    else:
        _print_analysis(analysis, values, seconds)
        if moments is not None:
            print(f"\nJacobian ({args.jacobian}, {args.weights} weights): m1 {float(moments['m1']):.8g}   "
                  f"m2 {float(moments['m2']):.8g}   variance {float(moments['variance']):.8g}   "
                  f"backward time scale {float(moments['xi_backward']):.6g} steps")
    return 0


def _jacobian(args, analysis, result: dict) -> dict | None:
    """With --weights: the Jacobian moments at the analysis' moments, also stored in ``result["jacobian"]``."""
    if not args.weights:
        return None
    moments = jacobian_moments(analysis, kind=args.jacobian, weights=args.weights)
    result["jacobian"] = {k: jsonable(np.asarray(v, dtype=float)) for k, v in moments.items()}
    return moments


def _analyze_tied(args, cell, values: dict) -> int:
    """``--theory tied``: one point of :func:`symmft.theory.tied.analyze_tied`, printed or as JSON."""
    if args.grid or args.output:
        raise CommandLineError("--theory tied evaluates one point: drop --grid/-o (loop over points instead)")
    if args.backend == "mpmath":
        raise CommandLineError("--theory tied is a Monte Carlo population: --backend numpy (CPU) or cupy (GPU), "
                               "not mpmath")
    max_steps = integer_option("--stationary-steps", STATIONARY_STEPS if args.stationary_steps is None
                               else args.stationary_steps)
    population = (None if args.stationary_population is None
                  else integer_option("--stationary-population", args.stationary_population, 32))
    start = time.perf_counter()
    analysis = analyze_tied(cell, values, steps=args.steps, input_dim=args.input_dim,
                            weights=args.weights or "gaussian", population=args.population, seed=args.seed,
                            backend=args.backend, max_steps=max_steps, stationary_population=population,
                            progress=True)
    seconds = time.perf_counter() - start
    result = analysis.to_json()
    moments = _jacobian(args, analysis, result)
    if args.json:
        print_json(result)
        return 0
    se = analysis.standard_error
    print(f"{cell.name}: tied-weight theory (population {analysis.extras['population']}, "
          f"input size {args.input_dim or 'infinite'}, {args.backend} backend, {seconds:.2f} s)")
    print(f"status: {analysis.status.name} ({_tied_status(analysis)})")
    for line in _stationary_lines(analysis.extras.get("stationary_solver")):
        print(line)
    print()
    rows = [[s, f"{num(analysis.fixed_point[f'M_{s}'])} +- {se[f'M_{s}']:.2g}",
             f"{num(analysis.fixed_point[f'Q_{s}'])} +- {se[f'Q_{s}']:.2g}",
             f"{num(analysis.correlation[s])} +- {se[f'correlation_{s}']:.2g}"] for s in cell.states]
    print_table(["state", "mean M*", "second moment Q*", "correlation c*"], rows)
    print(f"\nlambda  {num(analysis.lambda_)} +- {se['lambda']:.2g}   (effective decay rate of the a/b distance)")
    print(f"xi      {num(analysis.xi)}   (steps: -1/log|lambda|)")
    if moments is not None:
        print(f"\nJacobian ({args.jacobian}, {args.weights} weights, tied statistics): m1 {float(moments['m1']):.8g}   "
              f"m2 {float(moments['m2']):.8g}   variance {float(moments['variance']):.8g}")
    return 0


def _integer(text: str) -> int | str:
    """An option's integer, or its text unchanged for :func:`symmft.errors.integer_option` to refuse in one line
    (argparse's own refusal prints the whole usage first)."""
    try:
        return int(text)
    except ValueError:
        return text


#: The option to raise when the stationary solver ends NOT_CONVERGED for a reason (stationary.REASONS says why),
#: and the solver report's key that holds this run's value of it.
STATIONARY_REMEDIES = {"max_steps": ("--stationary-steps", "max_steps"), "drift": ("--stationary-steps", "max_steps"),
                       "clipped": ("--stationary-population", "population")}


def _tied_status(analysis) -> str:
    """The tied status in words: NOT_CONVERGED says which solver did not settle (the untied message's
    --max-iterations does not apply)."""
    if analysis.status != Status.NOT_CONVERGED:
        return analysis.status.message
    if analysis.extras.get("solver") == "stationary":
        return "the stationary solver did not converge: see its reason below"
    return ("the transient's tail is still relaxing and the stationary solver was not used (finite --input-dim): "
            "run more --steps")


def _stationary_lines(report: dict | None) -> list[str]:
    """What the stationary solver did, when it ran: its steps and units against the options that set them, and
    if it did not converge why, with the option to raise."""
    if not report:
        return []
    population, wanted = report["population"], report.get("requested_population", report["population"])
    cut = f", cut from {wanted} to fit its memory budget" if population < wanted else ""
    lines = [f"stationary solver ran {report['steps']} of {report.get('max_steps', '?')} steps (--stationary-steps) on "
             f"{population} units (--stationary-population{cut}), lag range {report['lags']}"]
    reason = report.get("reason")
    if reason:
        line = f"stationary solver: {reason} -- {REASONS.get(reason, reason)}"
        if reason in STATIONARY_REMEDIES:
            option, key = STATIONARY_REMEDIES[reason]
            if option == "--stationary-population" and cut:
                # The budget ran out on a clipped pass (the reason is the last pass's), and more units do not fit
                # at this range: more passes are what is left (the T = 1000 LSTM rule at the default budget).
                option, key = "--stationary-steps", "max_steps"
                line += (f"; more units do not fit at lag range {report['lags']} (its memory budget cut {wanted} to "
                         f"{population}): ")
            else:
                line += "; "
            line += f"raise {option} (this run: {report.get(key, '?')})"
        lines.append(line)
    return lines


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
        "laws": dict(analysis.laws),
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
    _print_laws(analysis)
    print("wrote " + ", ".join(summary["files"]))


def _print_analysis(analysis, values: dict, seconds: float) -> None:
    cell = analysis.cell
    status = Status(int(np.asarray(analysis.status)))
    set_ = ", ".join(f"{k}={v:g}" for k, v in values.items()) or "none"
    print(f"{cell.name}: mean-field analysis ({analysis.closure} closure, {analysis.backend} backend, {seconds:.2f} s)")
    print(f"hyperparameters set: {set_}  (others at their defaults: symmft params {cell.name})")
    print(f"status: {status.name} ({status.message})")
    _print_laws(analysis)
    print()
    rows = [[s, *_moments(m["mean"], m["second_moment"], analysis.correlation[s])]
            for s in cell.states for m in [analysis.state_moments(s)]]
    print_table(["state", "mean M*", "second moment Q*", "correlation c*"], rows)
    print()
    print(f"lambda           {num(analysis.lambda_)}   (leading eigenvalue of the cross map at c*)")
    print(f"xi               {num(analysis.xi)}   (steps: -1/log|lambda|)")
    print(f"diagonal lambda  {num(analysis.diagonal_lambda)}   (stability of the fixed point: needs |.| < 1)")
    for name, value in analysis.extras.items():  # e.g. the population closure's standard errors
        print(f"{name:<16} {num(value)}")
    if status == Status.OK:
        print()
        for line in _meaning(analysis):
            print(line)


def _moments(mean, second_moment, correlation) -> list[str]:
    """Table cells: a mean below float64 rounding of the state's scale is 0 (noise: a fixed point at M = 0 is
    reached to ~1e-16 sqrt(Q*) / (1 - rate)); c* of a state that is zero is undefined (0/0)."""
    q = float(second_moment)
    m = float(mean)
    zero_q = math.isfinite(q) and q <= ZERO_SECOND_MOMENT
    if math.isfinite(m) and abs(m) <= 1e-8 * math.sqrt(max(q, 0.0)) or zero_q and abs(m) <= 1e-6:
        m = 0.0
    if zero_q:
        return [num(m), "0", "undefined (Q* = 0: 0/0)"]
    return [num(m), num(q), num(correlation)]


def _meaning(analysis) -> list[str]:
    """What the numbers say, in words: the phase (chi_1), why c* is what it is, and xi against a length T."""
    lines = []
    chi_1 = float(analysis.extras.get("chi_1", math.nan))
    c_x = float(np.asarray(analysis.hyperparameters["c_x"]))
    if abs(chi_1 - 1) <= 1e-9:  # a memory gate saturated to rounding: neither phase can be told
        lines.append("phase: marginal (chi_1 = 1 to rounding): at the edge of chaos")
    elif chi_1 > 1:
        lines.append(f"phase: chaotic (chi_1 = {chi_1:.4g} > 1): even identical inputs drive the states apart"
                     + (", so c* < 1 at c_x = 1" if c_x == 1 else ""))
    elif math.isfinite(chi_1):
        lines.append(f"phase: ordered (chi_1 = {chi_1:.4g} < 1)"
                     + ("; c* = 1 because the two input sequences are identical (c_x = 1): --set c_x=0.5 for two "
                        "different ones" if c_x == 1 else ""))
    xi = float(analysis.xi)
    if xi > 0:
        steps = "infinitely many" if math.isinf(xi) else f"~{xi:.3g}"
        lines.append(f"xi = {num(xi)} steps: two inputs that differ stay distinguishable for {steps} steps; "
                     f"trainable for sequence lengths T up to about xi")
    return lines


def _print_laws(analysis) -> None:
    """One line per nonlinearity: the law its expectations used (docs/laws.md); then the notes on what is unmeasured."""
    width = max((len(k) for k in analysis.laws), default=0)
    print("laws:")
    for where, law in analysis.laws.items():
        print(f"  {where:<{width}}  {law}")
    for note in analysis.notes:
        print(f"note: {note}")
