"""The subcommands of ``symmft``, one module each (or one per family: ``info`` holds cells, params, derive).

Each module defines ``add_parsers(sub)``: it adds its subcommand(s) to the argparse subparsers ``sub`` with
:func:`common.command` and sets ``handler`` to a function of the parsed ``args`` returning the exit code. A
handler raises :class:`~symmft.errors.SymmftError` for bad input; :func:`symmft.cli.main` prints it as one line.
"""

#: Modules in the order their commands appear in ``symmft --help``.
COMMANDS = ("info", "analyze", "simulate", "critical", "phase", "codegen", "train", "confirm", "export")
