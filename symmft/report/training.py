"""Section 7 of a report: trainability, read from a ``symmft confirm`` sweep directory (``--confirm DIR``): final
test metric against sequence length per init, with each init's predicted xi (:mod:`symmft.harness.confirm`)."""

from __future__ import annotations

import json
from pathlib import Path

from symmft.errors import SymmftError
from symmft.report.context import Context
from symmft.report.document import Section
from symmft.report.figures import recompress


def build(ctx: Context, section: Section, out: Path) -> None:
    section.assumes.append("Training is the final judge: a sweep of real trainings (symmft confirm) at several T "
                           "per init; the predicted xi says where each init should stop training.")
    section.fails_where.append("Optimizer settings matter as much as the init (a large learning rate destroys the "
                               "memory a critical init provides, theory.md §4); each sweep states its settings.")
    if ctx.confirm is None:
        section.text("No sweep given. Run one and pass its directory with --confirm DIR, e.g. "
                     f"`symmft confirm {ctx.cell.name} --task digits_padded --lengths 30 100 300 --inits critical "
                     "pytorch keras chrono --seeds 0 1 -o runs/sweep` then "
                     f"`symmft report {ctx.cell.name} --confirm runs/sweep`.")
        section.results["sweep"] = None
        return
    from symmft.harness.confirm import plot, table

    path = Path(ctx.confirm) / "confirm.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SymmftError(f"cannot read the sweep {path}: {e}; give the directory symmft confirm -o wrote") from None
    if summary["sweep"]["cell"] != ctx.cell.name:
        section.text(f"Note: the sweep trained cell {summary['sweep']['cell']}, this report is about {ctx.cell.name}.")
    header, rows = table(summary)
    section.table(header, rows)
    figure = recompress(plot(summary, out / "trainability.png"))
    section.figure(figure, f"Final test {summary['metric']} against T per init (points: seeds); dashed: each "
                   "init's predicted xi.")
    section.results["sweep"] = summary
