"""What every subcommand shares: its parser layout (summary, description, examples), the CELL and --set
arguments, and plain-text tables and JSON on stdout."""

from __future__ import annotations

import argparse
import json

from symmft.cell import params
from symmft.errors import SymmftError


class CommandLineError(SymmftError):
    """A command-line option is invalid on its own or in combination with another."""


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and examples."""


def command(sub, name: str, summary: str, description: str, examples: list[str]) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to ``sub``: ``summary`` in the command list, ``description`` and ``examples`` in
    its --help."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    return sub.add_parser(name, help=summary, description=description, epilog=epilog, formatter_class=Formatter)


def cell_argument(p: argparse.ArgumentParser) -> None:
    """The positional CELL: a built-in cell name or a cell file's path."""
    p.add_argument("cell", metavar="CELL", help="built-in cell name (symmft cells) or path of a cell file")


def set_argument(p: argparse.ArgumentParser) -> None:
    """Repeatable ``--set NAME=VALUE`` into ``args.assignments`` (read it with :func:`assignments`)."""
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", dest="assignments",
                   help="set hyperparameter NAME (see 'symmft params CELL'); repeat for more")


def assignments(texts: list[str]) -> dict[str, float]:
    """``NAME=VALUE`` texts as a dict; a name given twice is an error."""
    values: dict[str, float] = {}
    for text in texts:
        name, value = params.parse_assignment(text)
        if name in values:
            raise CommandLineError(
                f"hyperparameter {name} is set twice ({name}={values[name]:g} and {text}); set it once"
            )
        values[name] = value
    return values


def num(x) -> str:
    """A number with 8 significant digits (anything else as its str)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{x:.8g}"


def print_table(header: list[str], rows: list[list[str]]) -> None:
    """Left-aligned columns under a header and a rule."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, ["-" * w for w in widths], *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip())


def print_json(obj) -> None:
    """``obj`` as indented JSON on stdout."""
    print(json.dumps(obj, indent=2))
