"""The ``symmft`` command line: the root parser and :func:`main`; each subcommand lives in a module of ``symmft/cli/``.

Stage: the last one. A subcommand parses its arguments, calls one library function and prints its result as a
table or as JSON. Bad input raises a :class:`~symmft.errors.SymmftError` anywhere below; :func:`main` turns it
into one line ``symmft: error: <message>`` on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from symmft.backend import keep_freed_memory
from symmft.cli.common import Formatter
from symmft.errors import SymmftError

#: Subcommand modules in the order their commands appear in ``symmft --help`` (``info`` holds cells, params, derive).
COMMANDS = ("info", "analyze", "simulate", "critical", "phase", "codegen", "train", "confirm", "trainability", "export",
            "report", "cache")


def build_parser() -> argparse.ArgumentParser:
    """The ``symmft`` parser with its subcommands."""
    parser = argparse.ArgumentParser(
        prog="symmft",
        formatter_class=Formatter,
        description="Mean-field theory of gated RNNs, derived from a cell file: fixed points, the correlation c*, "
        "the eigenvalue lambda and time scale xi of signal propagation, the Jacobian spectrum, critical "
        "initializations, and the finite random network to check them against.",
        epilog="examples:\n"
        "  symmft cells\n"
        "  symmft params lstm\n"
        "  symmft derive gru --latex\n"
        "  symmft analyze lstm --set mu_f=3\n"
        "  symmft analyze vanilla_rnn --grid nu2_h=0.5:2:16 --grid sigma2_h=0:1:5 -o reports/vanilla\n"
        "  symmft simulate lstm --width 1000 --steps 50 --set mu_f=3\n"
        "  symmft critical lstm --length 1000 -o reports/lstm_T1000.json\n"
        "  symmft phase lstm --x mu_f=3:10:24 --y nu2_f=0:2:20 -o reports/lstm_phase\n"
        "  symmft export reports/lstm_T1000.json --to torch -o lstm_init.py\n"
        "  symmft codegen lstm\n"
        "  symmft train lstm --init critical --task digits_padded --length 300 -o runs/crit\n"
        "  symmft confirm lstm --task digits_padded --lengths 30 300 --inits critical pytorch --seeds 0 -o runs/sweep\n"
        "  symmft report lstm --quick\n"
        "  symmft cache --clear\n\n"
        "CELL is a built-in cell name (see 'symmft cells') or the path of a cell file.\n"
        "Run 'symmft COMMAND --help' for the options of each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"symmft.cli.{name}").add_parsers(sub)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("symmft")
    except PackageNotFoundError:
        return "(not installed)"


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input, argparse's codes for --help/usage)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors: argparse has printed what it had to
        return e.code if isinstance(e.code, int) else 2
    keep_freed_memory()
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
