"""Phase diagrams: xi, lambda and the Jacobian moments over a 2-D hyperparameter plane, as arrays and as a figure.

Stage: ``Cell`` -> :func:`symmft.init.evaluate.evaluate_points` on the 'ij' meshgrid of two axes (in chunks, with a
progress bar) -> :func:`phase_diagram`'s dict of arrays -> :func:`plot_phase` (PNG) and :func:`write_phase`
(OUT.png, OUT.npz, OUT.json).

The figure shows log10 xi as a heatmap, the critical line m1 = 1 (the contour of m1 - 1 at zero: on it the
state-to-state Jacobian neither shrinks nor grows gradients on average), contours of constant xi (10, 100, 1000,
... within the range), and points whose fixed point failed (status != OK) hatched grey. xi is infinite where
|lambda| >= 1; the heatmap clips it to the largest finite value shown and says so in the colorbar label.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from symmft.cell import params as params_mod
from symmft.cell.graph import Cell
from symmft.cell.trace import load_cell
from symmft.init.evaluate import CHUNK, evaluate_points
from symmft.extras import pyplot
from symmft.errors import HyperparameterError, Status, SymmftError
from symmft.progress import progress as show_progress

#: Arrays every phase diagram holds (besides the axes and the fixed-point keys M_s, Q_s).
QUANTITIES = ("xi", "lambda", "chi_1", "m1", "m2", "variance", "status")


def phase_diagram(cell: Cell | str, x: tuple[str, object], y: tuple[str, object], *, fixed: dict | None = None,
                  weights: str = "orthogonal", length: int | None = None, progress: bool = False,
                  chunk: int = CHUNK) -> dict:
    """Evaluate ``cell`` on the plane ``x = (name, values)`` by ``y = (name, values)`` ('ij': arrays have shape
    (len(x values), len(y values))), other hyperparameters at ``fixed`` values or defaults, recurrent matrices
    ``weights``. Returns {"cell", "x_name", "x", "y_name", "y", "weights", "length", "fixed", and arrays xi, lambda,
    chi_1, m1, m2, variance, status, M_s, Q_s (and spread = T (m2/m1^2 - 1) with ``length``)}."""
    cell = cell if isinstance(cell, Cell) else load_cell(cell)
    (xn, xv), (yn, yv) = x, y
    xv, yv = np.atleast_1d(np.asarray(xv, dtype=float)), np.atleast_1d(np.asarray(yv, dtype=float))
    if xn == yn:
        raise HyperparameterError(f"the two axes must be different hyperparameters, got {xn} twice")
    fixed = dict(fixed or {})
    for n in (xn, yn):
        if n in fixed:
            raise HyperparameterError(f"hyperparameter {n} is both an axis and fixed; give it once")
    if xv.ndim != 1 or yv.ndim != 1 or xv.size < 2 or yv.size < 2:
        raise HyperparameterError("each axis needs a 1-D sequence of at least 2 values")
    X, Y = np.meshgrid(xv, yv, indexing="ij")
    h = params_mod.resolve(cell, {**fixed, xn: X.ravel(), yn: Y.ravel()})  # names and values checked first
    bar = show_progress(X.size, f"phase {cell.name}", "point") if progress else None
    try:
        ev = evaluate_points(cell, h, weights=weights, length=length, chunk=chunk, bar=bar)
    finally:
        if bar is not None:
            bar.close()
    out = {"cell": cell.name, "x_name": xn, "x": xv, "y_name": yn, "y": yv, "weights": weights, "length": length,
           "fixed": {k: float(v) for k, v in fixed.items()}}
    out.update({k: v.reshape(X.shape) for k, v in ev.items()})
    return out


def critical_line(result: dict) -> list[np.ndarray]:
    """Vertices (x, y) of the contour m1 = 1, one array per connected piece (linear interpolation between grid
    points, as matplotlib's contour draws it); empty if m1 - 1 does not change sign on the grid."""
    plt = pyplot()

    fig, ax = plt.subplots()
    try:
        return _contour_segments(ax, result, np.asarray(result["m1"]) - 1.0, 0.0)
    finally:
        plt.close(fig)


def _contour_segments(ax, result, field, level) -> list[np.ndarray]:
    field = np.ma.masked_invalid(field)
    if field.count() == 0 or not (field.min() < level < field.max()):
        return []
    cs = ax.contour(result["x"], result["y"], field.T, levels=[level])
    return [np.asarray(seg) for seg in cs.allsegs[0] if len(seg)]


def plot_phase(result: dict, path: str | Path, *, xi_levels=(10, 100, 1000, 10000)) -> dict:
    """Write a heatmap of log10 xi with the critical line m1 = 1, constant-xi contours and failed points to
    ``path`` (PNG). Returns {"path", "critical_line": list of (k, 2) vertex arrays, "xi_contours": levels drawn}."""
    plt = pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    x, y = result["x"], result["y"]
    xi = np.asarray(result["xi"], dtype=float)
    status = np.asarray(result["status"])
    failed = status != Status.OK
    finite = np.isfinite(xi) & ~failed
    with np.errstate(divide="ignore", invalid="ignore"):
        logxi = np.log10(xi)
    top = float(np.max(logxi[finite])) if np.any(finite) else 1.0
    clipped = np.any(np.isinf(xi) & ~failed)
    shown = np.where(np.isinf(xi) & ~failed, top, logxi)
    fig, ax = plt.subplots(figsize=(7, 5.2))
    try:
        mesh = ax.pcolormesh(x, y, np.ma.masked_where(failed | ~np.isfinite(shown), shown).T, shading="nearest",
                             cmap="viridis")
        if np.any(~failed):  # a colorbar of an empty map would show a meaningless -0.1..0.1 scale
            label = "log10 xi (steps)" + (" - xi = inf (|lambda| >= 1) shown at the top value" if clipped else "")
            fig.colorbar(mesh, ax=ax, label=label)
        else:
            ax.text(0.5, 0.5, "no point converged: every point failed", transform=ax.transAxes, ha="center",
                    va="center", bbox={"facecolor": "white"})
        handles = []
        line = _contour_segments(ax, result, np.asarray(result["m1"]) - 1.0, 0.0)
        if line:
            ax.contour(x, y, np.ma.masked_invalid(np.asarray(result["m1"]) - 1.0).T, levels=[0.0], colors="red",
                       linewidths=2.0)
            handles.append(Line2D([], [], color="red", lw=2, label="critical line m1 = 1"))
        drawn = []
        levels = [lv for lv in xi_levels if np.any(finite) and np.nanmin(logxi[finite]) < math.log10(lv) < top]
        if levels:
            cs = ax.contour(x, y, np.ma.masked_where(~finite, logxi).T, levels=[math.log10(lv) for lv in levels],
                            colors="white", linewidths=0.8, linestyles="dashed")
            ax.clabel(cs, fmt={math.log10(lv): f"xi={lv:g}" for lv in levels}, fontsize=7)
            drawn = list(levels)
            handles.append(Line2D([], [], color="white", lw=0.8, ls="--", label="constant xi"))
        if np.any(failed):
            ax.contourf(x, y, failed.T.astype(float), levels=[0.5, 1.5], colors=["0.6"], hatches=["///"], alpha=0.8)
            names = sorted({Status(int(s)).name for s in status[failed]})
            handles.append(Patch(facecolor="0.6", hatch="///", label=f"failed: {', '.join(names)}"))
        ax.set_xlabel(result["x_name"])
        ax.set_ylabel(result["y_name"])
        fixed = ", ".join(f"{k}={v:g}" for k, v in result.get("fixed", {}).items())
        ax.set_title(f"{result['cell']}: forward time scale xi ({result['weights']} weights)"
                     + (f"\n{fixed}" if fixed else ""), fontsize=10)
        if handles:
            legend = ax.legend(handles=handles, loc="upper left", fontsize=8, framealpha=0.85)
            legend.get_frame().set_facecolor("0.9")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as e:
        raise SymmftError(f"cannot write {path}: {e.strerror or e}; choose another output path") from None
    finally:
        plt.close(fig)
    return {"path": str(path), "critical_line": line, "xi_contours": drawn}


def write_phase(result: dict, out: str | Path) -> dict:
    """Write OUT.png (:func:`plot_phase`), OUT.npz (axes under their names and every array) and OUT.json (a
    summary); returns the summary."""
    out = Path(out)
    if out.suffix in (".png", ".npz", ".json"):
        out = out.with_suffix("")
    png, npz, js = (out.with_name(out.name + ext) for ext in (".png", ".npz", ".json"))
    figure = plot_phase(result, png)
    arrays = {result["x_name"]: result["x"], result["y_name"]: result["y"]}
    arrays.update({k: np.asarray(v) for k, v in result.items() if isinstance(v, np.ndarray) and np.ndim(v) == 2})
    status = np.asarray(result["status"])
    summary = {
        "cell": result["cell"],
        "axes": {result["x_name"]: [float(result["x"][0]), float(result["x"][-1]), len(result["x"])],
                 result["y_name"]: [float(result["y"][0]), float(result["y"][-1]), len(result["y"])]},
        "grid_shape": list(status.shape),
        "weights": result["weights"],
        "length": result["length"],
        "fixed": result["fixed"],
        "status": {s.name: float(np.mean(status == s)) for s in Status if np.any(status == s)},
        "xi_range": _range(result["xi"]),
        "m1_range": _range(result["m1"]),
        "critical_line_points": int(sum(len(s) for s in figure["critical_line"])),
        "xi_contours": figure["xi_contours"],
        "files": [str(png), str(npz), str(js)],
    }
    try:
        np.savez(npz, **arrays)
        js.write_text(json.dumps(summary, indent=1) + "\n")
    except OSError as e:
        raise SymmftError(f"cannot write {e.filename or out}: {e.strerror or e}; choose another output path") from None
    return summary


def _range(a) -> list:
    a = np.asarray(a, dtype=float)
    finite = a[np.isfinite(a)]
    lo = float(finite.min()) if finite.size else None
    hi = "inf" if np.any(np.isposinf(a)) else (float(finite.max()) if finite.size else None)
    return [lo, hi]
