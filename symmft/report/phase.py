"""Section 4 of a report: phase diagrams of xi, m1 and the spectral variance m2 - m1^2 over two hyperparameters
(:func:`symmft.init.phase.phase_diagram`), with the critical line m1 = 1, the rule and the baselines as points.

Default plane: the memory gate's bias mean (LSTM mu_f, GRU mu_z; range as the search's, [0, log T + 3]) against
that gate's recurrent variance in [0, 3]; a cell without a memory gate gets its first recurrent variance against
its first input variance. The other hyperparameters sit at the rule's values (at the defaults when there is no
rule), so the rule is a point of the plane; a baseline differs from the rule in other hyperparameters too, so the
colour under its marker is not its own xi (its own values are in section 6's table).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from symmft.errors import HyperparameterError, Status
from symmft.extras import pyplot
from symmft.init.baselines import loguniform_moments
from symmft.init.evaluate import gate_roles
from symmft.init.phase import critical_line, phase_diagram
from symmft.init.search import default_bounds
from symmft.report.context import Context
from symmft.report.document import Section
from symmft.report.figures import save
from symmft.serialize import jsonable

PANELS = (("xi", "log10 xi (forward time scale, steps)"), ("m1", "m1 = tr(JJ^T)/N"),
          ("variance", "log10 spectral variance m2 - m1^2"))


def default_axes(ctx: Context) -> tuple[tuple[str, np.ndarray], tuple[str, np.ndarray]]:
    """The default plane (module docstring) at the profile's resolution."""
    cell, (nx, ny) = ctx.cell, ctx.profile.phase_points
    memory = list(gate_roles(cell)["memory"])
    recurrent = [i.hyperparameter for a in cell.affines for i in a.inputs if i.vector != "x"]
    inputs = [i.hyperparameter for a in cell.affines for i in a.inputs if i.vector == "x"]
    if memory:
        x = f"mu_{memory[0]}"
        own = [n for n in recurrent if n == f"nu2_{memory[0]}" or n.startswith(f"nu2_{memory[0]}_")]
        y = (own or recurrent or inputs)[0]
    elif recurrent and inputs:
        x, y = recurrent[0], inputs[0]
    else:
        raise HyperparameterError(f"cell {cell.name} has no memory gate and no recurrent and input matrix to draw; "
                                  "choose the plane with --x NAME=START:STOP:NUM --y NAME=START:STOP:NUM")
    bounds = default_bounds(cell, ctx.length, [x, y])
    return (x, np.linspace(*bounds[x], nx)), (y, np.linspace(*bounds[y], ny))


def build(ctx: Context, section: Section, out: Path) -> None:
    (xn, xv), (yn, yv) = ctx.axes or default_axes(ctx)
    rule = ctx.rule
    base = dict(rule.hyperparameters) if rule is not None else {}
    fixed = {k: v for k, v in base.items() if k not in (xn, yn)}
    weights = rule.weights if rule is not None else "orthogonal"
    section.assumes.append(f"Every point is an untied mean-field evaluation (section 3) with {weights} recurrent "
                           f"matrices; the other hyperparameters are held at {'the rule' if rule else 'their defaults'}"
                           f"'s values. Markers: the rule (star) and the baselines at their own {xn}, {yn} (their "
                           "other hyperparameters differ; their own xi and m1 are in section 6).")
    section.fails_where.append("Next to the critical line on the chaotic side the cross map converges slowly and some "
                               "points end NOT_CONVERGED (hatched); at large memory-gate bias the tied network's "
                               "second moments exceed these untied ones (section 5).")
    ctx.say(f"phase diagram {xn} x {yn} ({len(xv)} x {len(yv)} points)")
    result = phase_diagram(ctx.cell, (xn, xv), (yn, yv), fixed=fixed, weights=weights, length=ctx.length,
                           progress=ctx.progress)
    line = critical_line(result)
    marks = _marks(ctx, xn, yn)
    section.figure(_plot(result, line, marks, out / "phase.png"),
                   f"Over {xn} (horizontal) and {yn} (vertical): the forward time scale xi, the Jacobian's m1 and its "
                   "spectral variance; red: the critical line m1 = 1; dashed white: xi = T; hatched: failed points.")
    status = np.asarray(result["status"])
    section.text("Points by status: " + ", ".join(f"{s.name} {np.mean(status == s):.0%}" for s in Status
                                                 if np.any(status == s)) + ".")
    section.results.update(jsonable({
        "x_name": xn, "x": result["x"], "y_name": yn, "y": result["y"], "weights": weights, "fixed": result["fixed"],
        "xi": result["xi"], "m1": result["m1"], "variance": result["variance"],
        "status": [[Status(int(s)).name for s in row] for row in status],
        "critical_line": [seg.tolist() for seg in line], "marks": marks,
    }))


def _marks(ctx: Context, xn: str, yn: str) -> dict:
    """{label: [x, y]} of the rule and each applicable baseline (a chrono bias at its mean log U)."""
    marks = {}
    if ctx.rule is not None:
        marks["rule"] = [ctx.rule.hyperparameters[xn], ctx.rule.hyperparameters[yn]]
    for b in ctx.baselines:
        if b["applicable"]:
            h = b["hyperparameters"]
            marks[b["name"]] = [_effective(h, xn, ctx.length), _effective(h, yn, ctx.length)]
    return marks


def _effective(h: dict, name: str, length: int) -> float:
    if name.startswith("mu_") and h.get(f"beta_{name[3:]}", 0.0):
        return h[name] + h[f"beta_{name[3:]}"] * loguniform_moments(length)[0]
    return h[name]


def _plot(result: dict, line, marks: dict, path: Path) -> Path:
    plt = pyplot()
    x, y = result["x"], result["y"]
    failed = np.asarray(result["status"]) != Status.OK
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4), sharey=True)
    for ax, (key, label) in zip(axes, PANELS):
        values = np.asarray(result[key], dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            shown = np.log10(np.clip(values, 1e-12, None)) if key != "m1" else values
        finite = np.isfinite(shown) & ~failed
        if key == "xi" and np.any(finite):  # xi = inf (|lambda| >= 1) shown at the top value
            shown = np.where(np.isposinf(values) & ~failed, np.max(shown[finite]), shown)
            finite = np.isfinite(shown) & ~failed
        if key == "m1":
            mesh = ax.pcolormesh(x, y, np.ma.masked_where(~finite, shown).T, shading="nearest", cmap="RdBu_r",
                                 vmin=0, vmax=2)
        else:
            mesh = ax.pcolormesh(x, y, np.ma.masked_where(~finite, shown).T, shading="nearest", cmap="viridis")
        fig.colorbar(mesh, ax=ax, label=label)
        for seg in line:
            ax.plot(seg[:, 0], seg[:, 1], color="red", lw=2)
        if key == "xi" and result["length"] and np.any(finite):
            level = math.log10(result["length"])
            if np.nanmin(shown[finite]) < level < np.nanmax(shown[finite]):
                ax.contour(x, y, np.ma.masked_where(~finite, shown).T, levels=[level], colors="white",
                           linestyles="dashed", linewidths=1)
        if np.any(failed):
            ax.contourf(x, y, failed.T.astype(float), levels=[0.5, 1.5], colors=["0.6"], hatches=["///"], alpha=0.8)
        for k, (label_, (px, py)) in enumerate(marks.items()):
            ax.plot(px, py, "*" if label_ == "rule" else "o", ms=13 if label_ == "rule" else 7,
                    color="gold" if label_ == "rule" else f"C{k}", mec="black", label=label_)
        ax.set_xlabel(result["x_name"])
        ax.set_xlim(x[0], x[-1])
        ax.set_ylim(y[0], y[-1])
    axes[0].set_ylabel(result["y_name"])
    if marks:
        fig.legend(*axes[0].get_legend_handles_labels(), loc="lower center", ncol=len(marks), fontsize=8,
                   bbox_to_anchor=(0.5, -0.06))
    fig.suptitle(f"{result['cell']}: phase diagrams ({result['weights']} recurrent matrices)", fontsize=10)
    return save(fig, path)
