"""``symmft report``: one cell's analysis written for a person: report.html (self-contained), report.md (the same
text, figures beside it), results.json (every number shown) and the figures.

Stage: the last before the command line; it may use every stage. :func:`build_report` makes a
:class:`~symmft.report.context.Context`, runs the seven sections in order (each through
:func:`~symmft.report.document.run_section`, so one that fails is written as failed and the rest still appear), and
writes the files. Sections share what is costly (the critical search, the baselines) through the context.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import numpy as np

from symmft.cell import params as params_mod
from symmft.cell.graph import Cell
from symmft.cell.trace import BUILTIN_DIR, load_cell
from symmft.errors import HyperparameterError, SymmftError
from symmft.report import cell, initialization, network, phase, statics, training
from symmft.report import theory as derivation
from symmft.report.context import FULL, QUICK, THEORIES, Context
from symmft.report.document import Section, num, run_section
from symmft.report.render import html_report, markdown_report
from symmft.serialize import jsonable

#: The sections in order: (title, module with build(ctx, section, figures_dir)).
SECTIONS = (
    ("The cell", cell),
    ("The derived theory", derivation),
    ("Statics and time scales", statics),
    ("Phase diagrams", phase),
    ("Theory vs the finite network", network),
    ("The initialization for length T", initialization),
    ("Trainability", training),
)
FIGURES = "figures"


def build_report(cell_spec: Cell | str | Path, *, length: int = 300, quick: bool = False, theory: str = "both",
                 input_dim: int | None = None, width: int = 128, x: tuple | None = None, y: tuple | None = None,
                 confirm: str | Path | None = None, output: str | Path | None = None,
                 progress: bool = False) -> dict:
    """Write the report of ``cell_spec`` for sequences of ``length`` T to ``output`` (default reports/<cell>/):
    ``quick`` for the light profile, ``theory`` "untied" | "tied" | "both", ``input_dim`` m of the simulated
    network and the baselines, ``width`` H of the baselines, ``x``/``y`` (name, values) for the phase plane (both or
    neither), ``confirm`` a symmft confirm sweep directory. Returns {"files", "sections": {number: error or None},
    "seconds"}."""
    c = cell_spec if isinstance(cell_spec, Cell) else load_cell(cell_spec)
    if int(length) != length or length < 2:
        raise HyperparameterError(f"the sequence length T must be an integer >= 2, got {length!r}")
    if theory not in THEORIES:
        raise HyperparameterError(f"--theory must be one of {', '.join(THEORIES)}, got {theory!r}")
    if (x is None) != (y is None):
        raise HyperparameterError("give both phase axes (--x and --y) or neither")
    if x is not None:  # unknown names and bad values get the usual message before any work
        params_mod.resolve(c, {x[0]: float(np.min(x[1])), y[0]: float(np.min(y[1]))})
    if (input_dim is not None and input_dim < 1) or width < 1:
        raise HyperparameterError("the width and the input size must be >= 1")
    if confirm is not None and not (Path(confirm) / "confirm.json").is_file():
        raise SymmftError(f"{confirm} is not a symmft confirm sweep directory (no confirm.json in it)")
    out = Path(output) if output is not None else Path("reports") / c.name
    figures = out / FIGURES
    try:
        figures.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SymmftError(f"cannot create {figures}: {e.strerror or e}; choose another output directory") from None
    ctx = Context(c, int(length), QUICK if quick else FULL, theory, input_dim, width,
                  (tuple(x), tuple(y)) if x is not None else None, Path(confirm) if confirm else None, progress)
    start = time.perf_counter()
    sections = []
    for number, (title, module) in enumerate(SECTIONS, 1):
        ctx.say(f"section {number}: {title}")
        sections.append(run_section(number, title, lambda s, m=module: m.build(ctx, s, figures)))
    seconds = time.perf_counter() - start
    return write(ctx, sections, out, seconds)


def write(ctx: Context, sections: list[Section], out: Path, seconds: float) -> dict:
    """Write report.html, report.md and results.json for ``sections`` into ``out``; returns the summary."""
    title = f"symmft report: {ctx.cell.name}, T = {ctx.length}"
    failed = [s for s in sections if s.error]
    intro = [f"What the mean-field theory says about cell `{ctx.cell.name}`, whether the finite network agrees, which "
             f"initialization to use for sequences of length T = {ctx.length}, how it compares with what PyTorch and "
             "Keras do, and the code to paste into a framework.",
             *_summary(ctx, sections),
             f"Made by `{command_line(ctx)}` ({ctx.profile.name} profile, {seconds:.0f} s)."
             + (f" Failed sections: {', '.join(str(s.number) for s in failed)}." if failed else "")]
    files = {"html": out / "report.html", "markdown": out / "report.md", "results": out / "results.json"}
    results = {
        "cell": ctx.cell.name, "cell_file_hash": ctx.cell.file_hash, "length": ctx.length,
        "profile": ctx.profile.name, "theory": ctx.theory, "input_dim": ctx.input_dim, "width": ctx.width,
        "seconds": round(seconds, 1),
        "sections": {str(s.number): {"title": s.title, "error": s.error, "figures": [f.path.name for f in s.figures],
                                     "results": s.results} for s in sections},
    }
    try:
        files["html"].write_text(html_report(title, intro, sections))
        files["markdown"].write_text(markdown_report(title, intro, sections, out))
        files["results"].write_text(_compact(json.dumps(jsonable(results), indent=1, default=_default)) + "\n")
    except OSError as e:
        raise SymmftError(f"cannot write the report into {out}: {e.strerror or e}") from None
    return {"files": {k: str(v) for k, v in files.items()}, "sections": {s.number: s.error for s in sections},
            "seconds": seconds}


def _summary(ctx: Context, sections: list[Section]) -> list[str]:
    """The answer in two sentences, from the sections' own results (none where those sections failed)."""
    statics, init = sections[2].results, sections[5].results
    out = []
    if "defaults" in statics and statics["defaults"].get("untied"):
        d = statics["defaults"]["untied"]
        out.append(f"At the default hyperparameters xi = {num(d['xi'])} steps and m1 = {num(d['m1'])}.")
    if init.get("rule"):
        r = init["rule"]
        free = ", ".join(f"{n} = {num(r['hyperparameters'][n])}" for n in r["free"])
        out.append(f"The critical rule for T = {ctx.length} ({free}) gives xi = {num(r['criteria']['xi'])} and "
                   f"m1 = {num(r['criteria']['m1'])} (section 6).")
    elif "rule_error" in init:
        out.append(f"No critical rule was found for T = {ctx.length} (section 6 says why).")
    trainable = [b["name"] for b in init.get("baselines", []) if b.get("applicable") and not b.get("fails")]
    if "baselines" in init:
        out.append(f"Baselines that meet the criteria for T = {ctx.length}: {', '.join(trainable) or 'none'}.")
    return [" ".join(out)] if out else []


def command_line(ctx: Context) -> str:
    """The command that makes this report (shown in it, so a reader can remake it)."""
    parts = ["symmft report", ctx.cell.name if ctx.cell.path.parent == BUILTIN_DIR else str(ctx.cell.path),
             f"--length {ctx.length}"]
    parts += ["--quick"] * (ctx.profile.name == "quick") + [f"--theory {ctx.theory}"] * (ctx.theory != "both")
    parts += [f"--input-dim {ctx.input_dim}"] * bool(ctx.input_dim) + [f"--width {ctx.width}"] * (ctx.width != 128)
    if ctx.axes:
        parts += [f"--{k} {n}={v[0]:g}:{v[-1]:g}:{len(v)}" for k, (n, v) in zip("xy", ctx.axes)]
    return " ".join(parts + [f"--confirm {ctx.confirm}"] * bool(ctx.confirm))


def _compact(text: str) -> str:
    """Indented JSON with each innermost list on one line (a trajectory is one line, not one per number); strings
    never hold a raw newline, so only the layout changes."""
    return re.sub(r"\[([^\[\]{}]*)\]", lambda m: "[" + re.sub(r"\s*\n\s*", " ", m.group(1)).strip() + "]", text)


def _default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    return str(obj)
