"""``symmft codegen``: print or write the generated training step (forward + exact BPTT backward) of a cell."""

from __future__ import annotations

from pathlib import Path

from symmft.cell.trace import load_cell
from symmft.harness.codegen import BACKENDS, GENERATOR_VERSION, generate
from symmft.harness.schedule import build
from symmft.cli.common import cell_argument, command, output_file, print_json


def add_parsers(sub) -> None:
    """The ``codegen`` subcommand."""
    p = command(
        sub, "codegen", "print the generated training step of a cell",
        "Generate the forward and exact backward (BPTT) step of CELL from its graph and print the Python source "
        "(or write it with -o). The input projections of all maps are one product before the time loop; per "
        "step the recurrent products and one fused elementwise stage between them; sympy differentiates the "
        "stages; the weight gradients are large products after the loop. The same driver runs on numpy and on "
        "CuPy (one ElementwiseKernel per stage). Training code loads it with symmft.harness.plan.load_plan, which "
        "caches this source under $SYMMFT_CACHE/codegen (default ~/.cache/symmft/codegen) by cell-file hash.",
        ["symmft codegen lstm", "symmft codegen gru --backend cupy -o gru_step.py",
         "symmft codegen my_cells/peephole.py --json"],
    )
    cell_argument(p)
    p.add_argument("-o", "--output", metavar="FILE", help="write the source to FILE instead of printing it")
    p.add_argument("--backend", choices=(*BACKENDS, "all"), default="all",
                   help="which elementwise stage implementations to include: numpy functions, CuPy kernels, or "
                   "both (default: %(default)s; the driver is shared)")
    p.add_argument("--json", action="store_true",
                   help="print {cell, file_hash, generator_version, states, output, parameters, schedule, source} "
                   "as JSON")
    p.set_defaults(handler=_codegen)


def _codegen(args) -> int:
    output_file(args.output)
    cell = load_cell(args.cell)
    backends = BACKENDS if args.backend == "all" else (args.backend,)
    source = generate(cell, backends)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(source)
    if args.json:
        schedule = build(cell)
        print_json({"cell": cell.name, "file_hash": cell.file_hash, "generator_version": GENERATOR_VERSION,
                    "states": list(schedule.states), "output": schedule.output,
                    "parameters": {k: list(v) for k, v in schedule.parameters.items()},
                    "schedule": _schedule_lines(source), "source": source})
    elif args.output:
        print(f"wrote the {'/'.join(backends)} training step of {cell.name} to {args.output}")
    else:
        print(source, end="")
    return 0


def _schedule_lines(source: str) -> list[str]:
    """The stage/product lines of the generated module's docstring."""
    head = source.split('"""')[1]
    return [line.strip() for line in head.splitlines() if line.startswith("    ")]
