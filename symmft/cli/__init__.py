"""Stage 5, the ``symmft`` command line: ``main`` builds the parser from one module per subcommand family.

Each module defines ``add_parsers(sub)``: it adds its subcommand(s) to the argparse subparsers ``sub`` with
:func:`symmft.cli.common.command` and sets ``handler`` to a function of the parsed ``args`` returning the exit
code. A handler parses, calls one library function and prints; it raises :class:`~symmft.errors.SymmftError` for
bad input, which :func:`main` prints as one line.
"""

from symmft.cli.main import main

__all__ = ["main"]
