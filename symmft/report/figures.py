"""Writing the report's figures small: PNG reduced to a 256-colour palette (plots use few colours, so this is
lossless to the eye and 3-5x smaller than matplotlib's RGBA output), and equations pre-rendered by matplotlib's
mathtext, so the HTML needs no math renderer at view time."""

from __future__ import annotations

import io
from pathlib import Path

from symmft.errors import SymmftError
from symmft.extras import pyplot, require

#: Resolution of every figure: readable on screen, small on disk (the committed reports stay under ~2 MB).
DPI = 90


def save(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` as a palette PNG and close it; returns the path."""
    plt = pyplot()
    image = require("PIL.Image")
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", facecolor="white")
    finally:
        plt.close(fig)
    buffer.seek(0)
    return _palette(image.open(buffer), Path(path))


def _palette(picture, path: Path) -> Path:
    image = require("PIL.Image")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        picture.convert("RGB").quantize(colors=256, method=image.Quantize.MEDIANCUT).save(path, format="PNG",
                                                                                         optimize=True)
    except OSError as e:
        raise SymmftError(f"cannot write {path}: {e.strerror or e}; choose another output directory") from None
    return path


def equations(lines: list[tuple[str, str]], path: Path, *, width: float = 11.0) -> Path:
    """Render ``lines`` of (mathtext, plain-text fallback) one below the other; a line mathtext cannot parse is
    drawn as its plain text in a monospace font, so an unusual expression never loses the whole figure."""
    plt = pyplot()
    from matplotlib.mathtext import MathTextParser

    parser = MathTextParser("agg")
    height = 0.34 * max(len(lines), 1)
    fig = plt.figure(figsize=(width, height))
    for k, (math, plain) in enumerate(lines):
        y = 1 - (k + 0.5) / max(len(lines), 1)
        try:
            parser.parse(f"${math}$", dpi=DPI)
            fig.text(0.0, y, f"${math}$", fontsize=11, va="center")
        except Exception:  # mathtext's parser raises ValueError (and sometimes others) on what it cannot typeset
            fig.text(0.0, y, plain, fontsize=9, family="monospace", va="center")
    return save(fig, path)


def recompress(path: Path) -> Path:
    """Rewrite a PNG another module saved as a palette PNG (as :func:`save` does)."""
    image = require("PIL.Image")
    with image.open(path) as picture:
        picture.load()
    return _palette(picture, Path(path))
