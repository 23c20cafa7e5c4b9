"""``symmft critical``: search a critical initialization for sequences of length T, with margins and the
baselines people use (symmft.init.search)."""

from __future__ import annotations

import sys

from symmft.cell.trace import load_cell
from symmft.init.search import BASELINES, DEGENERATE, evaluate_baselines, find_critical, rows_json
from symmft.init.tied_check import SPREAD_NETWORKS, SPREAD_WIDTH
from symmft.init.tied_search import MAX_EVALUATIONS, find_critical_tied
from symmft.cli.common import (CommandLineError, assignments, cell_argument, command, num, output_file, print_json,
                               print_table)


def add_parsers(sub) -> None:
    """The ``critical`` subcommand."""
    p = command(
        sub, "critical", "search a critical initialization for sequences of length T",
        "Search the free hyperparameters of CELL for an initialization trainable on sequences of length T "
        "(mean-field criteria, docs/criteria.md): forward time scale xi >= T, |T log m1| <= 1 (m1: mean squared "
        "singular value of the state-to-state Jacobian; gradients change by at most e over T steps: m1 within "
        "1e-3 of 1 at T = 1000, 0.1 at T = 10), every state second moment Q_s <= 10, spread T (m2/m1^2 - 1) <= 1 "
        "(dynamical isometry), fixed point found; among such points the smallest spectral variance m2 - m1^2. "
        "Prints the chosen point, the predicted quantities, the margin of every free parameter (how far it can "
        "move down and up before a criterion fails, the others held) and the baselines "
        f"({', '.join(BASELINES)}) converted to width H and input dimension m. -o writes the init rule as JSON.\n\n"
        "Default free parameters: the memory (forget/update) gate's bias mean, the write (input) gate's, every "
        "recurrent variance nu2_* (and a cell without gates its input variances sigma2_*); the others stay at their "
        "defaults or --fix values. Inputs are assumed "
        "standardized (q_x = 1) and the two sequences identical (c_x = 1); --fix q_x=... otherwise. An LSTM "
        "search takes a few seconds of CPU (~4 s; ~7 s the first time, while sympy derives the maps; progress on stderr).",
        [
            "symmft critical lstm --length 1000",
            "symmft critical lstm --length 1000 --weights gaussian -o reports/lstm_T1000.json",
            "symmft critical lstm --length 300 --free mu_f --free mu_i --free nu2_f --fix nu2_g=0.5",
            "symmft critical vanilla_rnn --length 1000 --free nu2_h --fix sigma2_h=0 --fix rho2_h=1e-7 --json",
            "symmft critical gru_reset_before --length 500 --bound mu_z=0:8 --width 256 --input-dim 28",
            "symmft critical gru --length 100 --theory tied --input-dim 32",
            "symmft critical lstm --length 200 --theory tied --input-dim 4 --population 2000 -o rule_tied.json",
            "symmft critical lstm --length 1000 --theory tied --input-dim 8 --spread-width 500 --spread-networks 3",
        ],
        ("xi", "lambda", "m1, m2", "M*, Q*", "status"),
    )
    cell_argument(p)
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
    p.add_argument("--theory", choices=("untied", "tied"), default="untied",
                   help="untied (default): criteria on the paper's maps; tied: the untied rule is then judged on "
                   "the tied network's theory (docs/tied.md) over the transient t <= T of a sequence from the zero "
                   "state, with --input-dim as the layer's input size (the spread on the exact Jacobian product "
                   "of finite tied networks: --spread-width, --spread-networks), and corrected "
                   "there by a few tied evaluations along the write and memory gates' bias means until every "
                   "criterion holds, or refused with the reason (docs/criteria.md 'On the tied network'); the "
                   "rule written and printed is then the tied one, with Monte Carlo standard errors (JSON key "
                   "rule.tied)")
    p.add_argument("--population", type=int, default=4000, metavar="P",
                   help="tied: units of the tied theory's Monte Carlo population (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="tied: the one seed of every tied evaluation (default: %(default)s)")
    p.add_argument("--max-evaluations", type=int, default=MAX_EVALUATIONS, metavar="K",
                   help="tied: most tied evaluations the correction may spend (default: %(default)s)")
    p.add_argument("--spread-width", type=int, default=SPREAD_WIDTH, metavar="N",
                   help="tied: width of the tied networks whose exact product of the T memory Jacobians judges the "
                   "spread (within 1%% of width 1000 from 300 on; cost ~ N^3 T: at T = 1000 ~8 s CPU a network "
                   "at 300, ~30 s at 500), e.g. --spread-width 500 (default: %(default)s)")
    p.add_argument("--spread-networks", type=int, default=SPREAD_NETWORKS, metavar="K",
                   help="tied: how many such networks (>= 2; the spread is their mean, its standard error from their "
                   "scatter), e.g. --spread-networks 4 (default: %(default)s)")
    p.add_argument("-o", "--output", metavar="RULE.json", help="write the init rule (JSON)")
    p.add_argument("--json", action="store_true",
                   help="print {rule, baselines} as JSON (rule: cell, cell_file_hash, length, weights, "
                   "hyperparameters, criteria, margins, input_statistics, notes, search)")
    p.set_defaults(handler=_critical)


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
    output_file(args.output)
    cell = load_cell(args.cell)
    fixed = assignments(args.assignments)
    if args.width < 1 or (args.input_dim is not None and args.input_dim < 1):
        raise CommandLineError("--width and --input-dim must be >= 1")
    result = find_critical(cell, args.length, weights=args.weights, fixed=fixed, free=args.free,
                           bounds=_bounds(args.bound), min_second_moment=args.min_second_moment, progress=True)
    if args.theory == "tied":  # raises InfeasibleError (the reason) when no corrected rule holds
        result = find_critical_tied(cell, args.length, rule=result, input_dim=args.input_dim,
                                    population=args.population, seed=args.seed, max_evaluations=args.max_evaluations,
                                    spread_width=args.spread_width, spread_networks=args.spread_networks)
    baselines = evaluate_baselines(cell, args.length, width=args.width, input_dim=args.input_dim)
    written = str(result.write_rule(args.output)) if args.output else None
    rule = result.to_json()
    for note in rule["notes"]:
        if note.startswith(DEGENERATE):  # success by a trivial network must not pass silently
            print(f"symmft: warning: {note}", file=sys.stderr)
    if args.json:
        print_json({"rule": rule, "baselines": rows_json(baselines), "written": written})
        return 0
    T = args.length
    print(f"{cell.name}: critical initialization for T = {T} ({args.weights} recurrent weights, "
          f"{rule['search']['seconds']:.1f} s, {rule['search']['points_evaluated']} points evaluated)")
    print(f"fixed: {', '.join(f'{k}={v:g}' for k, v in fixed.items()) or 'none'} (others at their defaults); "
          f"inputs q_x = {rule['input_statistics']['q_x']:g}, c_x = {rule['input_statistics']['c_x']:g}")
    print()
    print("chosen point:")
    print_table(["name", "value", "margin down", "limited by", "margin up", "limited by"],
                 [[n, num(rule["hyperparameters"][n]), num(m["down"]), m["down_limit"], num(m["up"]), m["up_limit"]]
                  for n, m in rule["margins"].items()])
    print()
    tied = rule.get("tied")
    c, th = (tied["untied_prediction"] if tied else rule["criteria"]), rule["thresholds"]
    rows = [["xi", num(c["xi"]), f">= {th['xi_min']}"], ["lambda", num(c["lambda"]), ""],
            ["m1", num(c["m1"]), f"|T log m1| <= {th['max_log_gain']:g}: in [{th['m1_range'][0]:.6g}, {th['m1_range'][1]:.6g}]"],
            ["m2", num(c["m2"]), ""],
            ["variance m2 - m1^2", num(c["variance"]), "minimized"],
            ["spread T(m2/m1^2 - 1)", num(c["spread"]), f"<= {th['max_spread']:g}"]]
    rows += [[k, num(v), f"<= {th['max_second_moment']:g}" if k.startswith("Q_") else ""]
             for k, v in c.items() if k.startswith(("Q_", "M_"))]
    print_table(["untied maps at the untied point" if tied else "predicted", "value", "criterion"], rows)
    if tied:
        _print_tied(tied, th)
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
        table.append([b["name"], b["weights"], num(b["xi"]), num(b["m1"]), num(b["variance"]),
                      "trainable" if not b["fails"] else "fails " + ", ".join(b["fails"])])
    print_table(["baseline", "weights", "xi", "m1", "variance", f"for T = {T}"], table)
    for b in baselines:
        for note in b["notes"] if b["applicable"] else []:
            print(f"note ({b['name']}): {note}")
    if written:
        print(f"\nwrote {written}")
    return 0


def _print_tied(tied: dict, th: dict) -> None:
    v, se = tied["values"], tied["standard_error"]
    status = {"holds": "the untied rule holds for the tied network",
              "corrected": "corrected for the tied network: " + ", ".join(
                  f"{n} {a:.4g} -> {b:.4g}" for n, (a, b) in tied["corrections"].items())}[tied["status"]]
    print(f"\n{status} (tied theory: population {tied['population']}, input size {tied['input_dim'] or 'infinite'}, "
          f"{len(tied['evaluations'])} evaluations, {tied['seconds']:.1f} s; judged on the transient t <= T, "
          f"{'which settles inside the sequence' if tied['settled'] else 'still relaxing at T: memory longer than T'}):")

    def pm(k, digits=".2g"):
        return f"{num(v[k])} +- {se[k]:{digits}}" if k in se else num(v[k])

    rows = [["xi", pm("xi"), f">= {th['xi_min']}"],
            ["m1 = G(T)^(1/T)", pm("m1", ".1e"), f"|T log m1| <= {th['max_log_gain']:g}: in [{th['m1_range'][0]:.6g}, {th['m1_range'][1]:.6g}]"],
            *([["m1 if the steps were free", pm("m1_free", ".1e"), "not judged (docs/criteria.md)"]] if "m1_free" in v else []),
            [_spread_label(tied.get("spread_networks")), pm("spread"), f"<= {th['max_spread']:g}"],
            *([["spread if the steps were free", pm("spread_free"), "not judged (docs/criteria.md)"]]
              if "spread_free" in v else [])]
    rows += [[k, pm(k), f"<= {th['max_second_moment']:g}"] for k in v if k.startswith("Q_")]
    print_table(["tied theory at the rule", "value", "criterion"], rows)


def _spread_label(networks: dict | None) -> str:
    """The judged spread's row name: which tied networks gave it (and their status if one overflowed)."""
    if not networks:
        return "spread m2/m1^2 - 1 (no tied network: the tied run failed)"
    status = "" if networks["status"] == "OK" else f", {networks['status']}: a product overflowed or vanished"
    return (f"spread m2/m1^2 - 1 ({len(networks['values'])} tied networks, width {networks['width']}, "
            f"input size {networks['input_dim']}{status})")
