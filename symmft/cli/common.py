"""What every subcommand shares: its parser layout (summary, description, examples), the CELL and --set
arguments, and plain-text tables and JSON on stdout."""

from __future__ import annotations

import argparse
import json
import os
import textwrap
from pathlib import Path

from symmft.cell import params
from symmft.errors import SymmftError


class CommandLineError(SymmftError):
    """A command-line option is invalid on its own or in combination with another."""


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and examples."""


#: Every quantity the commands print, defined once: the --help epilogs and the README's glossary show these.
GLOSSARY = {
    "M*, Q*": "per state, the mean and second moment (mean square of a unit) at the fixed point of the mean-field "
    "map: what a wide random network settles to after many steps",
    "c*": "correlation C*/Q* of the states driven by two input sequences whose correlation is c_x; c* = 1 only "
    "because the default inputs are identical (c_x = 1); undefined (printed so) where Q* = 0",
    "lambda": "leading eigenvalue of the map of that correlation at c*: how fast a difference between the two "
    "sequences' states decays per step",
    "xi": "-1/log|lambda|, in steps: two inputs that differ stay distinguishable for about xi steps, so a "
    "network is trainable on sequences of length T up to about xi (inf: no decay)",
    "chi_1": "slope of the correlation map at c = 1: chi_1 < 1 ordered (nearby inputs converge), chi_1 > 1 "
    "chaotic (identical inputs separate; c* < 1 even at c_x = 1)",
    "diagonal lambda": "leading eigenvalue of the (M, Q) map at its fixed point; |.| < 1: the fixed point is "
    "stable",
    "m1, m2": "mean squared singular value tr(JJ^T)/N and tr((JJ^T)^2)/N of the state-to-state Jacobian J: "
    "gradients over T steps scale like m1^T (m1 = 1: neither vanish nor explode); m2 - m1^2 is the spectral "
    "variance (0: dynamical isometry)",
    "closure": "how a non-Gaussian nonlinearity argument is averaged: gaussian (a Gaussian of the same moments, "
    "approximate for the LSTM's tanh(c) and the GRU's reset-after candidate) or population (a sample of units, "
    "exact under the untied approximation)",
    "status": "per point: OK; NOT_CONVERGED (raise --max-iterations); DIVERGED (a second moment grows past "
    "1e12: no finite fixed point); NAN (the map produced NaN); UNSTABLE (the fixed point repels); "
    "CROSS_NOT_CONVERGED (fixed point found, correlation map not: right at the order-to-chaos edge)",
}


def glossary(*terms: str) -> str:
    """The epilog lines defining ``terms`` (keys of :data:`GLOSSARY`)."""
    width = max(len(t) for t in terms)
    return "quantities:\n" + "\n".join(
        textwrap.fill(GLOSSARY[t], 110, break_on_hyphens=False, initial_indent=f"  {t.ljust(width)}  ",
                      subsequent_indent=" " * (width + 4))
        for t in terms)


def command(sub, name: str, summary: str, description: str, examples: list[str],
            terms: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """Add subcommand ``name`` to ``sub``: ``summary`` in the command list, ``description``, ``examples`` and the
    glossary of the quantities ``terms`` it prints in its --help."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples)
    if terms:
        epilog += "\n\n" + glossary(*terms)
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


def output_file(path: str | None, option: str = "-o") -> Path | None:
    """Check, before any work, that ``path`` can be written as a file: not a directory, and either a writable
    existing file or a new file under a directory that exists (or can be created) and is writable."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        raise CommandLineError(f"{option} {path}: is a directory; give a file name (e.g. {p / 'out'})")
    if p.exists() and not os.access(p, os.W_OK):
        raise CommandLineError(f"{option} {path}: the file exists and is not writable; choose another path")
    _creatable(p.parent, option, path)
    return p


def output_stem(path: str | None, extensions: tuple[str, ...], option: str = "-o") -> None:
    """Check the files OUT.<ext> a command writes for ``-o OUT`` (OUT may carry one of the extensions)."""
    if path is None:
        return
    stem = Path(path).with_suffix("") if Path(path).suffix in extensions else Path(path)
    for ext in extensions:
        output_file(str(stem.with_name(stem.name + ext)), option)


def output_directory(path: str | None, option: str = "-o", writes: str = "its files") -> Path | None:
    """Check, before any work, that ``path`` can hold ``writes``: an existing writable directory, or a new one
    under a directory that exists (or can be created) and is writable."""
    if path is None:
        return None
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CommandLineError(f"{option} {path}: exists and is not a directory; this command writes {writes} "
                               "into a directory: give a new or existing directory")
    if p.is_dir() and not os.access(p, os.W_OK | os.X_OK):
        raise CommandLineError(f"{option} {path}: the directory is not writable; choose another path")
    _creatable(p.parent, option, path)
    return p


def _creatable(folder: Path, option: str, path: str) -> None:
    """The nearest existing ancestor of ``folder`` must be a writable directory (mkdir -p can then create it)."""
    folder = folder.absolute()
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise CommandLineError(f"{option} {path}: {folder} is a file, so nothing can be written under it")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CommandLineError(f"{option} {path}: cannot write under {folder} (permission denied); choose another path")


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
