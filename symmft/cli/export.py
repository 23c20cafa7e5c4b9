"""``symmft export``: an init rule (or a baseline) as a standalone module for PyTorch, Flax or Keras, or as JSON
(symmft.export.spec)."""

from __future__ import annotations

import json
from pathlib import Path

from symmft.init.search import BASELINES
from symmft.export.spec import TARGETS, baseline_rule, check_convention, export_source, read_rule
from symmft.cli.common import CommandLineError, command, output_file, print_json

#: what the emitted module offers, per target (shown after writing it)
ENTRY_POINTS = {
    "torch": "init_(layer, generator=None): nn.LSTM/GRU/RNN (all layers, bidirectional) and *Cell, in place",
    "flax": "init_params(params, seed=None) for linen parameter trees; init_nnx_(cell, seed=None) for nnx cells",
    "keras": "make_layer(units), initializers(seed=None) (layer kwargs), RuleInitializer(part, seed), check_layer(layer)",
    "json": "per affine map: matrix variance scales with their fan-in, bias mean/variance, chrono term",
    "rule": "the init rule itself (rule-shaped JSON: symmft export RULE.json --to ...)",
}


def add_parsers(sub) -> None:
    """The ``export`` subcommand."""
    p = command(
        sub, "export", "write an init rule as a PyTorch, Flax or Keras initializer (or JSON)",
        "Write RULE.json (from 'symmft critical -o') as a small standalone Python module that initializes the "
        "framework's own layer: PyTorch init_(layer) for nn.LSTM, nn.GRU, nn.RNN (every layer and direction) and "
        "their Cell versions; Flax init_params(params) for linen LSTMCell/GRUCell/SimpleCell trees and "
        "init_nnx_(cell); Keras RuleInitializer/initializers()/make_layer for LSTM, GRU, SimpleRNN. Gate blocks "
        "follow each framework's layout (fused matrices, gate order, the two summed PyTorch biases, the GRU's "
        "b_hn); orthogonal recurrent weights are orthogonal per gate block. The module does not import symmft.\n\n"
        "The rule's cell must be a built-in cell with the same file hash (a rule is numbers for one function); "
        "--as-cell CELL exports it in a built-in cell's convention anyway. Layers computing another function are "
        "refused: PyTorch and Flax have no reset-before GRU, the emitted code refuses hard_sigmoid, relu RNNs, "
        "proj_size, unit_forget_bias=True at run time. --to json writes a framework-neutral description (any cell).\n\n"
        f"--baseline NAME ({', '.join(BASELINES)}) exports a framework baseline converted to the same "
        "hyperparameters for --cell, --length, --width (and --input-dim) instead of RULE; --to rule writes it as "
        "a rule-shaped JSON.",
        [
            "symmft export reports/lstm_T1000.json --to torch -o lstm_init.py",
            "symmft export reports/gru_T300.json --to keras -o gru_init.py",
            "symmft export reports/lstm_T1000.json --to flax -o lstm_flax_init.py",
            "symmft export reports/lstm_T1000.json --to json",
            "symmft export my_lstm_rule.json --to torch --as-cell lstm -o init.py",
            "symmft export --baseline chrono --cell lstm --length 1000 --width 256 --to torch -o chrono_init.py",
            "symmft export --baseline keras --cell gru --length 300 --width 128 --input-dim 28 --to rule -o keras_gru.json",
        ],
    )
    p.add_argument("rule", metavar="RULE.json", nargs="?", help="init rule written by 'symmft critical -o'")
    p.add_argument("--to", required=True, choices=TARGETS + ("rule",), help="target framework or format")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: print to stdout)")
    p.add_argument("--as-cell", metavar="CELL", help="export in this built-in cell's convention even though the "
                   "rule's cell name or file hash differs (you vouch the functions agree)")
    p.add_argument("--baseline", choices=tuple(BASELINES), help="export this baseline instead of RULE.json")
    p.add_argument("--cell", help="cell of the baseline (built-in name)")
    p.add_argument("--length", "-T", type=int, metavar="T", help="sequence length of the baseline (chrono's T)")
    p.add_argument("--width", type=int, metavar="H", help="hidden size the baseline's variances are computed for")
    p.add_argument("--input-dim", type=int, metavar="M", help="input size of the baseline (default: the width)")
    p.add_argument("--json", action="store_true", help="print a JSON summary (target, output, cell, entry points)")
    p.set_defaults(handler=_export)


def _export(args) -> int:
    output_file(args.output)
    rule, source = _rule(args)
    if args.to == "rule":
        if args.as_cell:
            raise CommandLineError("--as-cell applies to an export, not to --to rule")
        cell, text = rule["cell"], json.dumps(rule, indent=1) + "\n"
    else:
        cell = check_convention(rule, args.to, args.as_cell)
        text = export_source(rule, args.to, as_cell=args.as_cell, source=source)
    if not args.output:
        print(text, end="")
        return 0
    try:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text)
    except OSError as e:
        raise CommandLineError(f"cannot write {args.output}: {e.strerror or e}; choose another path") from None
    summary = {"target": args.to, "output": args.output, "cell": cell, "source": source,
               "provides": ENTRY_POINTS[args.to]}
    if args.json:
        print_json(summary)
    else:
        print(f"wrote {args.output}: {args.to} export of {source} (cell {cell}); provides {ENTRY_POINTS[args.to]}")
    return 0


def _rule(args) -> tuple[dict, str]:
    if args.baseline:
        if args.rule:
            raise CommandLineError("give either RULE.json or --baseline, not both")
        missing = [o for o, v in (("--cell", args.cell), ("--length", args.length), ("--width", args.width)) if v is None]
        if missing:
            raise CommandLineError(f"--baseline {args.baseline} needs {', '.join(missing)} (the variances depend on "
                                   "the sizes, chrono's bias on T)")
        rule = baseline_rule(args.cell, args.baseline, args.length, args.width, args.input_dim)
        return rule, f"baseline {args.baseline} (cell {args.cell}, T = {args.length}, H = {args.width})"
    if not args.rule:
        raise CommandLineError("give RULE.json (from 'symmft critical -o') or --baseline NAME --cell CELL --length T --width H")
    extra = [o for o, v in (("--cell", args.cell), ("--length", args.length), ("--width", args.width),
                            ("--input-dim", args.input_dim)) if v is not None]
    if extra:
        raise CommandLineError(f"{', '.join(extra)} only apply with --baseline; RULE.json carries its own cell and sizes")
    return read_rule(args.rule), args.rule
