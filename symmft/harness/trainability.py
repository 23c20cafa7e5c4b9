"""Trainability maps: the final test metric over a plane (one initialization hyperparameter x sequence length T),
the theory's time scales drawn over it, and the constant that turns a time scale into the trainability boundary
(theory.md §4; Schoenholz et al. 2017, Gilboa et al. 2019 fig. 3).

Stage: harness. Each grid value of the hyperparameter becomes a small rule file (the cell's defaults, the ``base``
values, the axis value, a weight distribution); those files plus the named initializations (critical, the
framework baselines) form the inits of one :class:`symmft.harness.confirm.Sweep`, run by
:func:`symmft.harness.confirm.confirm` (dask.distributed, finished runs reused, interrupted ones resumed). Then:

    DIR/points/<axis>_<value>.json   one rule per grid value
    DIR/confirm.json, confirm.png    the sweep as confirm writes it (every run, every init)
    DIR/trainability.json            the map, the theory curves, the fitted constants, the named points
    DIR/trainability.png             heatmap of the final metric, c xi and c' / |log m1| overlaid, named points

**The boundary.** A run *trained* when its normalized score (accuracy: (a - chance) / (1 - chance); error:
1 - mse / chance mse), averaged over seeds, reaches ``threshold`` of the best score on the map (a half-maximum
contour by default). A time scale tau(h) (forward: xi; backward: 1/|log m1|, the number of steps over which
gradients change by a factor e) predicts "trained iff T <= c tau(h)". The constant c is the one that misclassifies
the fewest grid cells; the range of constants with that same count is its uncertainty (the map cannot resolve c
more finely: its cells sit at discrete T / tau), and the misclassified cells are listed. Cells with tau not finite
(no fixed point, or xi infinite on a critical line) stay out of the fit.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from symmft.cell import params as params_mod
from symmft.cell.trace import load_cell
from symmft.errors import SymmftError
from symmft.extras import pyplot
from symmft.harness.confirm import Sweep, confirm
from symmft.harness.tasks import make_task
from symmft.init.baselines import loguniform_moments
from symmft.init.evaluate import evaluate_points
from symmft.serialize import jsonable

MAP, FIGURE = "trainability.json", "trainability.png"
#: Time scales a boundary can follow: name -> (label, function of the evaluated theory).
SCALES = {
    "xi": ("forward xi", lambda ev: ev["xi"]),
    "backward": ("backward 1/|log m1|", lambda ev: 1 / np.abs(np.log(ev["m1"]))),
}


class TrainabilityError(SymmftError):
    """Invalid options of a trainability map."""


def point_name(axis: str, value: float) -> str:
    """The file stem (and run label) of a grid value."""
    return f"{axis}_{value:g}"


def write_points(cell, axis: str, values, base: dict, weights: str, folder: Path) -> dict:
    """One rule file per grid value under ``folder``; returns {file path: value}."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for v in values:
        h = params_mod.resolve(cell, {**base, axis: float(v)})
        rule = {"cell": cell.name, "cell_file_hash": cell.file_hash, "length": None, "weights": weights,
                "hyperparameters": {k: float(x) for k, x in h.items()}, "criteria": {}, "margins": {},
                "input_statistics": {}, "notes": [f"a grid point of a trainability map: {axis} = {v:g}, not a searched rule"]}
        path = folder / f"{point_name(axis, v)}.json"
        path.write_text(json.dumps(jsonable(rule), indent=1) + "\n")
        out[str(path)] = float(v)
    return out


def trainability(sweep: Sweep, axis: str, values, out_dir: str | Path, *, base: dict | None = None,
                 weights: str = "gaussian", threshold: float = 0.5, scheduler: str | None = None,
                 workers: int | None = None, processes: bool = True, progress: bool = False) -> dict:
    """Train ``sweep.cell`` on ``sweep.task`` at every (value of hyperparameter ``axis``, length, seed) from the
    cell's defaults with ``base`` values and ``weights`` recurrent matrices, plus ``sweep.inits`` (critical,
    baselines, rule files) at their own hyperparameters; write DIR/trainability.json and .png (see the module
    docstring) and return the map. Rerunning continues an interrupted map."""
    cell = load_cell(sweep.cell)
    base = dict(base or {})
    values = sorted(set(float(v) for v in values))
    if len(values) < 2 or not sweep.lengths:
        raise TrainabilityError("a trainability map needs at least two values of the hyperparameter and one length")
    if axis not in params_mod.names(cell):
        params_mod.resolve(cell, {axis: 0.0})  # the usual unknown-name message, with a suggestion
        raise TrainabilityError(f"{axis} is not a hyperparameter of cell {cell.name}")
    if axis in base:
        raise TrainabilityError(f"{axis} is the map's axis; it cannot also be fixed (--set)")
    if not 0 < threshold < 1:
        raise TrainabilityError(f"threshold must lie in (0, 1), got {threshold}")
    out = Path(out_dir)
    grid = write_points(cell, axis, values, base, weights, out / "points")
    labels = {Path(p).stem: v for p, v in grid.items()}
    summary = confirm(replace(sweep, inits=(*grid, *sweep.inits)), out, scheduler=scheduler, workers=workers,
                      processes=processes, progress=progress)
    result = build_map(summary, cell, axis, labels, base, weights, threshold)
    (out / MAP).write_text(json.dumps(jsonable(result), indent=1) + "\n")
    plot(result, out / FIGURE)
    return result


def build_map(summary: dict, cell, axis: str, labels: dict, base: dict, weights: str, threshold: float) -> dict:
    """The map from a confirm summary: grid of mean metrics, named points, theory curves, fitted constants."""
    rows, metric = summary["rows"], summary["metric"]
    lengths = sorted({r["length"] for r in rows})
    values = sorted(labels.values())
    by = {(r["init"], r["length"]): r for r in rows}
    inverse = {v: k for k, v in labels.items()}
    mean = np.array([[by[inverse[v], T]["mean"] for T in lengths] for v in values])
    chance = {T: by[inverse[values[0]], T]["chance"] for T in lengths}
    regression = metric != "accuracy"

    def score(m: float, T: int) -> float:  # 0 at chance, 1 perfect
        return 1 - m / chance[T] if regression else (m - chance[T]) / (1 - chance[T])

    scores = np.array([[score(mean[i, j], T) for j, T in enumerate(lengths)] for i in range(len(values))])
    best = float(np.max(scores))
    trained = scores >= threshold * best if best > 0 else np.zeros_like(scores, dtype=bool)
    sw = summary["sweep"]
    task = make_task(sw["task"], max(lengths), padding=sw.get("padding", "zeros"))
    theory = {**base, "q_x": task.q_x}
    points = [_named_point(r, axis, score(r["mean"], r["length"])) for r in rows if r["init"] not in labels]
    lo = min([values[0]] + [p["position"] for p in points if p["position"] is not None])
    hi = max([values[-1]] + [p["position"] for p in points if p["position"] is not None])
    fine = np.linspace(lo, hi, 81)
    ev_grid = evaluate_points(cell, {**theory, axis: np.array(values)}, weights=weights)
    ev_fine = evaluate_points(cell, {**theory, axis: fine}, weights=weights)
    fits, curves = {}, {"values": fine.tolist()}
    with np.errstate(all="ignore"):
        for name, (label, tau_of) in SCALES.items():
            tau = np.where(ev_grid["status"] == 0, tau_of(ev_grid), np.nan)
            fits[name] = {"label": label, "tau": tau.tolist(), **fit_constant(tau, lengths, trained, values)}
            curves[name] = np.where(ev_fine["status"] == 0, tau_of(ev_fine), np.nan).tolist()
    return {"cell": cell.name, "task": sw["task"], "axis": axis, "values": values, "lengths": lengths,
            "base": base, "weights": weights, "q_x": task.q_x, "metric": metric, "chance": [chance[T] for T in lengths],
            "mean": mean.tolist(), "score": scores.tolist(), "threshold": threshold, "best_score": best,
            "trained": trained.tolist(), "fits": fits, "curves": curves, "points": points, "sweep": sw}


def fit_constant(tau, lengths, trained, values) -> dict:
    """The constant c of "trained iff T <= c tau" that misclassifies the fewest cells, the range of constants with
    that count (``low``, ``high``; ``high`` inf when every longer boundary fits as well), c as the geometric middle
    of that range (its finite end when it is open), and the misclassified cells."""
    cells = [(T / t, bool(trained[i, j]), values[i], T) for i, t in enumerate(tau) for j, T in enumerate(lengths)
             if np.isfinite(t) and t > 0]
    if not cells:
        return {"constant": None, "low": None, "high": None, "errors": None, "cells": 0, "mismatched": []}
    ratios = sorted({r for r, *_ in cells})
    # c between consecutive ratios classifies all cells the same way; probe each gap and both open ends
    probes = [ratios[0] / 2] + [math.sqrt(a * b) for a, b in zip(ratios, ratios[1:])] + [ratios[-1] * 2]
    errors = [sum((r <= c) != ok for r, ok, *_ in cells) for c in probes]
    best = min(errors)
    k = errors.index(best)
    k_end = k
    while k_end + 1 < len(errors) and errors[k_end + 1] == best:
        k_end += 1
    low = ratios[k - 1] if k > 0 else 0.0
    high = ratios[k_end] if k_end < len(ratios) else math.inf
    constant = math.sqrt(low * high) if 0 < low and high < math.inf else (low if high == math.inf else high)
    c = probes[k]
    mismatched = [{"value": v, "length": T, "trained": ok, "ratio": r} for r, ok, v, T in cells if (r <= c) != ok]
    disjoint = any(e == best for e in errors[k_end + 1:])
    return {"constant": constant, "low": low, "high": high, "errors": best, "cells": len(cells),
            "mismatched": mismatched, "other_optimal_ranges": disjoint}


def _named_point(row: dict, axis: str, score: float) -> dict:
    """A named init (critical, a baseline, a rule file) at its own position on the axis: its value of the axis
    hyperparameter, plus beta_k E[log U] for a chrono bias on a mean axis."""
    h = row.get("hyperparameters") or {}
    position = h.get(axis)
    if position is not None and axis.startswith("mu_") and h.get(f"beta_{axis[3:]}") and h.get("chrono_length", 0) >= 3:
        position += h[f"beta_{axis[3:]}"] * loguniform_moments(h["chrono_length"])[0]
    return {"init": row["init"], "length": row["length"], "position": position, "mean": row["mean"], "score": score,
            "xi": row["xi"], "m1": row["m1"]}


def plot(result: dict, path: str | Path) -> Path:
    """Heatmap of the mean final metric over (axis value, T); each time scale times its fitted constant as a line;
    the named inits as labelled markers at their own positions, filled with their metric on the same colour scale."""
    plt = pyplot()
    values, lengths = np.array(result["values"]), np.array(result["lengths"], dtype=float)
    mean = np.array(result["mean"]).T  # rows: T
    fig, ax = plt.subplots(figsize=(7.2, 5.2))
    xe = _edges(values, log=False)
    ye = _edges(lengths, log=True)
    cmap = "viridis_r" if result["metric"] != "accuracy" else "viridis"
    every = [*np.ravel(mean), *(p["mean"] for p in result["points"])]  # one colour scale for cells and markers
    lo_c, hi_c = min(every), max(every)
    mesh = ax.pcolormesh(xe, ye, mean, cmap=cmap, vmin=lo_c, vmax=hi_c, shading="flat")
    fig.colorbar(mesh, ax=ax, label=f"final test {result['metric']} (chance {result['chance'][0]:.3g})")
    fine = np.array(result["curves"]["values"])
    for (name, fit), style, colour in zip(result["fits"].items(), ("-", "--"), ("magenta", "orange")):
        if fit["constant"]:
            ax.plot(fine, fit["constant"] * np.array(result["curves"][name], dtype=float), style, color=colour, lw=1.5,
                    label=f"{fit['constant']:.3g} x {fit['label']} ({fit['errors']}/{fit['cells']} cells off)")
    markers = "osD^vP*X"
    inits = list(dict.fromkeys(p["init"] for p in result["points"]))
    nudge = 0.02 * (xe[-1] - xe[0])
    shared: dict = {}  # inits at the same place (PyTorch and Keras at mu = 0) are drawn side by side
    for p in result["points"]:
        shared.setdefault((round(p["position"] or 0.0, 6), p["length"]), []).append(p["init"])

    def x(p):
        group = shared[round(p["position"], 6), p["length"]]
        return p["position"] + (group.index(p["init"]) - (len(group) - 1) / 2) * nudge

    for k, init in enumerate(inits):
        mine = [p for p in result["points"] if p["init"] == init and p["position"] is not None]
        if mine:
            ax.scatter([x(p) for p in mine], [p["length"] for p in mine], c=[p["mean"] for p in mine],
                       cmap=cmap, vmin=lo_c, vmax=hi_c, marker=markers[k % len(markers)], s=60, edgecolors="red",
                       linewidths=1.2, label=init, zorder=3)
    ax.set_yscale("log")
    ax.set_xlim(min(xe[0], fine[0]) - 3 * nudge, max(xe[-1], fine[-1]) + 3 * nudge)
    ax.set_ylim(ye[0], ye[-1])
    ax.set_xlabel(f"{result['axis']} (other hyperparameters: defaults{_base_text(result['base'])}, {result['weights']} weights)")
    ax.set_ylabel("T (task length)")
    sw = result["sweep"]
    ax.set_title(f"{result['cell']} on {result['task']}: width {sw['width']}, {sw['steps']} Adam steps, lr {sw['lr']:g}, "
                 f"batch {sw['batch']}, {len(sw['seeds'])} seed(s)", fontsize=8)
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, framealpha=0.6)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def _edges(x: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges around sorted centres x (midpoints; geometric when ``log``)."""
    t = np.log(x) if log else x
    mid = (t[1:] + t[:-1]) / 2 if len(t) > 1 else np.array([])
    step = (t[1] - t[0]) if len(t) > 1 else 1.0
    last = (t[-1] - t[-2]) if len(t) > 1 else 1.0
    e = np.concatenate([[t[0] - step / 2], mid, [t[-1] + last / 2]])
    return np.exp(e) if log else e


def _base_text(base: dict) -> str:
    return "".join(f", {k}={v:g}" for k, v in base.items())


def table(result: dict) -> tuple[list[str], list[list[str]]]:
    """(header, rows) of the human table: mean metric per (value, T), the named points, then the constants."""
    header = [result["axis"], *(f"T={T}" for T in result["lengths"])]
    rows = [[f"{v:g}", *(f"{m:.3f}{'*' if ok else ''}" for m, ok in zip(ms, oks))]
            for v, ms, oks in zip(result["values"], result["mean"], result["trained"])]
    for init in dict.fromkeys(p["init"] for p in result["points"]):
        by = {p["length"]: p for p in result["points"] if p["init"] == init}
        rows.append([init, *(f"{by[T]['mean']:.3f}" if T in by else "" for T in result["lengths"])])
    return header, rows


def constants_text(result: dict) -> list[str]:
    """One line per time scale: the fitted constant, its range, the misclassified cells."""
    out = []
    for fit in result["fits"].values():
        if fit["constant"] is None:
            out.append(f"{fit['label']}: no grid cell with a finite time scale")
            continue
        off = ", ".join(f"({m['value']:g}, T={m['length']}: {'trained' if m['trained'] else 'failed'})" for m in fit["mismatched"])
        out.append(f"boundary T = c x {fit['label']}: c = {fit['constant']:.3g} (equally good for c in "
                   f"[{fit['low']:.3g}, {fit['high']:.3g}]); {fit['errors']} of {fit['cells']} cells off{': ' + off if off else ''}")
    return out


__all__ = ["TrainabilityError", "build_map", "constants_text", "fit_constant", "plot", "table", "trainability"]
