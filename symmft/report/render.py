"""The report's two views of the same sections: self-contained HTML (every figure embedded as a base64 data URI,
no script, no external style or font: it opens from disk with no network) and Markdown (figures as files beside
it, for GitHub)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from symmft.report.document import Code, Figure, Section, Table, Text

STYLE = """
body { font-family: sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #444; } h2 { border-bottom: 1px solid #aaa; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.5em; text-align: left; vertical-align: top; }
th { background: #eee; }
pre { background: #f6f6f6; border: 1px solid #ddd; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
code { background: #f1f1f1; padding: 0 0.2em; }
figure { margin: 1em 0; } figure img { max-width: 100%; } figcaption { font-size: 0.85em; color: #555; }
.assumes, .fails { font-size: 0.9em; padding: 0.4em 0.8em; margin: 0.5em 0; }
.assumes { background: #eef4fb; border-left: 4px solid #4a7fc1; }
.fails { background: #fdf2e9; border-left: 4px solid #d9822b; }
.failed { background: #fdecea; border-left: 4px solid #c0392b; padding: 0.4em 0.8em; }
details summary { cursor: pointer; font-weight: bold; margin: 0.5em 0; }
"""


def html_report(title: str, intro: list[str], sections: list[Section]) -> str:
    """The whole report as one HTML document."""
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{_e(title)}</title>",
             f"<style>{STYLE}</style></head><body>", f"<h1>{_e(title)}</h1>"]
    parts += [f"<p>{_inline(p)}</p>" for p in intro]
    parts.append("<ol>" + "".join(f"<li><a href=\"#s{s.number}\">{_e(s.title)}</a>"
                                  + (" (failed)" if s.error else "") + "</li>" for s in sections) + "</ol>")
    for s in sections:
        parts.append(f"<h2 id=\"s{s.number}\">{s.number}. {_e(s.title)}</h2>")
        if s.assumes:
            parts.append("<div class=\"assumes\"><b>Assumes.</b> " + " ".join(_inline(a) for a in s.assumes) + "</div>")
        if s.fails_where:
            parts.append("<div class=\"fails\"><b>Where the theory is known to fail.</b> "
                         + " ".join(_inline(a) for a in s.fails_where) + "</div>")
        for b in s.blocks:
            parts.append(_html_block(b, failed=bool(s.error)))
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _html_block(b, failed: bool) -> str:
    if isinstance(b, Text):
        return f"<p class=\"failed\">{_inline(b.text)}</p>" if failed else f"<p>{_inline(b.text)}</p>"
    if isinstance(b, Table):
        head = "".join(f"<th>{_e(h)}</th>" for h in b.header)
        body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in b.rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    if isinstance(b, Figure):
        data = base64.b64encode(b.path.read_bytes()).decode("ascii")
        kind = "svg+xml" if b.path.suffix == ".svg" else "png"
        return (f"<figure><img src=\"data:image/{kind};base64,{data}\" alt=\"{_e(b.caption)}\">"
                f"<figcaption>{_inline(b.caption)}</figcaption></figure>")
    if isinstance(b, Code):
        pre = f"<pre><code>{_e(b.text)}</code></pre>"
        return f"<details><summary>{_e(b.title)}</summary>{pre}</details>" if b.title else pre
    raise TypeError(f"unknown block {b!r}")


def markdown_report(title: str, intro: list[str], sections: list[Section], base: Path) -> str:
    """The whole report as Markdown; figure paths relative to ``base`` (the report's folder)."""
    lines = [f"# {title}", ""]
    for p in intro:
        lines += [p, ""]
    for s in sections:
        lines += [f"## {s.number}. {s.title}", ""]
        if s.assumes:
            lines += ["> **Assumes.** " + " ".join(s.assumes), ""]
        if s.fails_where:
            lines += ["> **Where the theory is known to fail.** " + " ".join(s.fails_where), ""]
        for b in s.blocks:
            lines += _markdown_block(b, base) + [""]
    return "\n".join(lines)


def _markdown_block(b, base: Path) -> list[str]:
    if isinstance(b, Text):
        return [b.text]
    if isinstance(b, Table):
        def row(cells):
            return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"
        return [row(b.header), "|" + "---|" * len(b.header)] + [row(r) for r in b.rows]
    if isinstance(b, Figure):
        return [f"![{b.caption}]({b.path.relative_to(base).as_posix()})", "", f"*{b.caption}*"]
    if isinstance(b, Code):
        fence = "```" + b.language
        return ([f"**{b.title}**", ""] if b.title else []) + [fence, b.text.rstrip("\n"), "```"]
    raise TypeError(f"unknown block {b!r}")


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)


def _inline(text: str) -> str:
    """Escape, then show `code` spans as <code>."""
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", _e(text))
