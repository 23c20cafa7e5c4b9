"""The report as data: sections made of blocks (text, tables, figures, code, equations), with the numbers shown.

Stage: each section module (:mod:`symmft.report.cell` ... :mod:`symmft.report.training`) returns a
:class:`Section`; :mod:`symmft.report.render` writes the sections as HTML and Markdown and :mod:`symmft.report.build`
writes ``results.json`` from :attr:`Section.results`. A section whose computation raises becomes a failed section
(:func:`run_section`) that says so, and the others are still written.
"""

from __future__ import annotations

import math
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Union


@dataclass(frozen=True)
class Text:
    """A paragraph (Markdown-light: ``code`` spans only)."""

    text: str


@dataclass(frozen=True)
class Table:
    """A table of preformatted cells."""

    header: list[str]
    rows: list[list[str]]


@dataclass(frozen=True)
class Figure:
    """An image file written beside the report, with its caption."""

    path: Path
    caption: str


@dataclass(frozen=True)
class Code:
    """A block of source code (``language`` for Markdown's fence)."""

    text: str
    language: str = "python"
    title: str = ""


Block = Union[Text, Table, Figure, Code]


@dataclass
class Section:
    """One numbered section: its blocks, what it assumes, where the theory is known to fail, and its numbers."""

    number: int
    title: str
    blocks: list[Block] = field(default_factory=list)
    assumes: list[str] = field(default_factory=list)
    fails_where: list[str] = field(default_factory=list)
    results: dict = field(default_factory=dict)
    error: str | None = None

    def text(self, text: str) -> None:
        self.blocks.append(Text(text))

    def table(self, header: list[str], rows: list[list]) -> None:
        self.blocks.append(Table(header, [[c if isinstance(c, str) else num(c) for c in r] for r in rows]))

    def figure(self, path: Path, caption: str) -> None:
        self.blocks.append(Figure(Path(path), caption))

    def code(self, text: str, language: str = "python", title: str = "") -> None:
        self.blocks.append(Code(text, language, title))

    @property
    def figures(self) -> list[Figure]:
        return [b for b in self.blocks if isinstance(b, Figure)]


def run_section(number: int, title: str, build: Callable[[Section], None]) -> Section:
    """``build`` fills a new section; if it raises, the section is replaced by one that says ``failed: <error>``
    (the exception's type and message, and the last frame of the traceback), so the rest of the report appears."""
    section = Section(number, title)
    try:
        build(section)
    except Exception as e:  # a report is a reader's document: one broken section must not hide the others
        frame = traceback.extract_tb(e.__traceback__)[-1]
        failed = Section(number, title, error=f"{type(e).__name__}: {e}")
        failed.text(f"failed: {type(e).__name__}: {e} (at {Path(frame.filename).name}:{frame.lineno})")
        return failed
    return section


def num(x) -> str:
    """A number as shown in tables: 4 significant digits, inf/NaN spelled out, None as a dash."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return f"{x:.4g}"
