"""Section 5 of a report: the theory against the finite network it describes.

Three comparisons at one point (the rule, or the defaults when there is no rule), every simulated curve the mean
over ``profile.seeds`` independent networks with a band of +-2 standard errors:

* the transient of each state's second moment Q_s(t) from the zero state: the untied map iterated from zero
  (:func:`iterate_map`; the compiled map of :mod:`symmft.theory.compile`) against :func:`symmft.network.simulate.simulate`
  untied and tied (and the tied theory's trajectory when available);
* the return of the correlation between two sequences whose states start decorrelated (Q = Q*, c = 0) and which
  then see identical inputs: 1 - c_s(t) decays like lambda^t, which is what xi measures;
* the squared singular values of the finite network's memory Jacobian (:func:`symmft.network.spectrum.empirical_jacobian_moments`),
  untied and tied, as a histogram against the predicted m1 and m2.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from symmft.cell import params as params_mod
from symmft.extras import pyplot
from symmft.network.simulate import simulate
from symmft.network.spectrum import empirical_jacobian_moments
from symmft.report.context import Context, TiedUnavailable
from symmft.report.document import Section
from symmft.report.figures import save
from symmft.serialize import jsonable
from symmft.theory.compile import compile_map
from symmft.theory.dynamics import analyze
from symmft.theory.jacobian import jacobian_moments
from symmft.theory.meanfield import derive


def iterate_map(cell, hyperparameters: dict, steps: int, initial: dict | None = None) -> dict:
    """The untied mean-field map iterated ``steps`` times from ``initial`` {key: value} (missing keys 0: the zero
    state); returns {key: array of length steps + 1}, t = 0..steps."""
    h = params_mod.resolve(cell, hyperparameters)
    mf = derive(cell, chrono=params_mod.chrono_maps(cell, h))
    cm = compile_map(mf, "numpy")
    initial = initial or {}
    d = [float(initial.get(k.name, 0.0)) for k in mf.diagonal]
    c = [float(initial.get(k.name, 0.0)) for k in mf.cross]
    rows = [d + c]
    for _ in range(steps):
        d, c = [float(v) for v in cm.diagonal(d, h)], [float(v) for v in cm.cross(d, c, h)]
        rows.append(d + c)
    names = [k.name for k in mf.diagonal + mf.cross]
    return {n: np.array(col) for n, col in zip(names, np.array(rows).T)}


def simulated(ctx: Context, h: dict, weights: str, tied: bool, initial=None) -> dict:
    """Per state, mean and standard error over ``profile.seeds`` networks of Q_s(t) and c_s(t)."""
    p = ctx.profile
    runs = [simulate(ctx.cell, h, width=p.width, steps=p.steps, tied=tied, weights=weights, seed=s, batch=2,
                     input_dim=ctx.input_dim, initial=initial) for s in range(p.seeds)]
    out = {}
    for state in ctx.cell.states:
        for key in ("second_moment", "correlation"):
            a = np.array([getattr(r.states[state], key) for r in runs])
            out[f"{key}_{state}"] = {"mean": a.mean(axis=0), "stderr": a.std(axis=0, ddof=1) / math.sqrt(len(runs))}
    return out


def build(ctx: Context, section: Section, out: Path) -> None:
    rule, p = ctx.rule, ctx.profile
    h = dict(rule.hyperparameters) if rule is not None else ctx.defaults
    weights = rule.weights if rule is not None else "gaussian"
    where = "the rule" if rule is not None else "the defaults (no rule)"
    section.assumes.append(f"At {where}, {weights} recurrent matrices; networks of width n = {p.width}"
                           f"{f', input size m = {ctx.input_dim}' if ctx.input_dim else ' (input size m = n)'}, "
                           f"{p.seeds} independent networks per curve (bands: +-2 standard errors), inputs i.i.d. "
                           "N(0, q_x) each step.")
    section.fails_where.append("The untied theory is exact for the untied network as n -> infinity; the tied "
                               "(real) network departs from it where the memory gate saturates, by coherent writes "
                               "through the reused weights and, at finite input size m, a term ~1/(m (1 - f)) "
                               "(theory.md §5). A long transient (1/(1 - E f) steps) can outlast the simulation.")
    ctx.say(f"simulating the finite network at {where} ({p.seeds} seeds x untied/tied, width {p.width})")
    a = analyze(ctx.cell, h)
    stationary = {k: float(v) for k, v in a.fixed_point.items()}
    from_zero = iterate_map(ctx.cell, h, p.steps)
    decorrelated = {k: v for k, v in stationary.items() if k.startswith("Q_")}
    returning = iterate_map(ctx.cell, h, p.steps, decorrelated)
    initial = {s: (stationary[f"Q_{s}"], 0.0) for s in ctx.cell.states}
    sims = {tied: {"transient": simulated(ctx, h, weights, tied),
                   "correlation": simulated(ctx, h, weights, tied, initial)} for tied in (False, True)}
    tied_theory, tied_note = None, ""
    try:
        tied_theory = ctx.analyze_tied(h, weights, steps=p.steps, stationary=False).trajectory
    except TiedUnavailable as e:
        tied_note = f" Tied theory {e}."
    section.figure(_plot_transient(ctx, from_zero, sims, tied_theory, out / "transient.png"),
                   "Second moments Q_s(t) from the zero state: the untied map iterated (black) against the untied "
                   "and tied networks (bands)." + tied_note)
    section.figure(_plot_correlation(ctx, returning, sims, out / "correlation.png"),
                   f"Two sequences start decorrelated (Q = Q*, c = 0) and see identical inputs: 1 - c_s(t) against "
                   f"the untied map (black); its slope is log lambda (lambda = {float(a.lambda_):.4g}, "
                   f"xi = {float(a.xi):.4g}).")
    ctx.say(f"finite network Jacobian spectrum (width {p.spectrum_width}, {p.spectrum_samples} networks)")
    predicted = jacobian_moments(a, weights=weights)
    spectra = {tied: empirical_jacobian_moments(ctx.cell, h, width=p.spectrum_width, burn_in=p.steps, tied=tied,
                                                weights=weights, samples=p.spectrum_samples)
               for tied in (False, True)}
    section.figure(_plot_spectrum(predicted, spectra, out / "spectrum.png"),
                   "Squared singular values of the finite network's memory Jacobian after "
                   f"{p.steps} steps from the zero state, against the predicted m1 (line) and m2.")
    rows = [["m1", float(predicted["m1"])] + [spectra[t]["m1"] for t in (False, True)],
            ["m2", float(predicted["m2"])] + [spectra[t]["m2"] for t in (False, True)]]
    section.table(["moment", "theory (untied)", "network untied", "network tied"], rows)
    section.results.update(jsonable({
        "hyperparameters": h, "weights": weights, "width": p.width, "steps": p.steps, "seeds": p.seeds,
        "theory_from_zero": from_zero, "theory_decorrelated": returning,
        "network": {("tied" if t else "untied"): v for t, v in sims.items()},
        "tied_theory": tied_theory,
        "spectrum": {"predicted": {"m1": float(predicted["m1"]), "m2": float(predicted["m2"])},
                     **{("tied" if t else "untied"): {k: s[k] for k in ("m1", "m2", "singular_values_squared", "N")}
                        for t, s in spectra.items()}},
    }))


def _band(ax, t, curve, colour, label, transform=lambda v: v):
    mean, err = curve["mean"], curve["stderr"]
    ax.plot(t, transform(mean), color=colour, lw=1, label=label)
    ax.fill_between(t, transform(mean - 2 * err), transform(mean + 2 * err), color=colour, alpha=0.25, lw=0)


def _plot_transient(ctx, theory, sims, tied_theory, path):
    plt = pyplot()
    states = ctx.cell.states
    fig, axes = plt.subplots(1, len(states), figsize=(5.2 * len(states), 3.6), squeeze=False)
    t = np.arange(ctx.profile.steps + 1)
    for ax, s in zip(axes[0], states):
        _band(ax, t, sims[False]["transient"][f"second_moment_{s}"], "C0", "network, untied")
        _band(ax, t, sims[True]["transient"][f"second_moment_{s}"], "C1", "network, tied")
        ax.plot(t, theory[f"Q_{s}"], color="black", lw=1.5, label="theory, untied")
        if tied_theory and s in tied_theory:
            ax.plot(np.arange(len(tied_theory[s]["second_moment"])), tied_theory[s]["second_moment"], "--",
                    color="black", lw=1.2, label="theory, tied")
        ax.set_xlabel("step t")
        ax.set_ylabel(f"Q_{s}(t)")
        ax.legend(fontsize=7)
    return save(fig, path)


def _plot_correlation(ctx, theory, sims, path):
    plt = pyplot()
    states = ctx.cell.states
    fig, axes = plt.subplots(1, len(states), figsize=(5.2 * len(states), 3.6), squeeze=False)
    t = np.arange(ctx.profile.steps + 1)
    floor = 1e-6  # 1 - c below this is rounding of the simulated correlation

    def gap(v):
        return np.clip(1 - v, floor, None)

    for ax, s in zip(axes[0], states):
        _band(ax, t, sims[False]["correlation"][f"correlation_{s}"], "C0", "network, untied", gap)
        _band(ax, t, sims[True]["correlation"][f"correlation_{s}"], "C1", "network, tied", gap)
        with np.errstate(divide="ignore", invalid="ignore"):
            c = theory[f"C_{s}"] / theory[f"Q_{s}"]
        ax.plot(t, gap(c), color="black", lw=1.5, label="theory, untied")
        ax.set_yscale("log")
        ax.set_xlabel("step t")
        ax.set_ylabel(f"1 - c_{s}(t)")
        ax.legend(fontsize=7)
    return save(fig, path)


def _plot_spectrum(predicted, spectra, path):
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    values = np.concatenate([s["singular_values_squared"] for s in spectra.values()])
    m1, m2 = float(predicted["m1"]), float(predicted["m2"])
    sd = math.sqrt(max(m2 - m1 * m1, 0.0))
    lo, hi = min(float(np.min(values)), m1 - sd), max(float(np.max(values)), m1 + sd)
    pad = 0.05 * (hi - lo) or 0.05 * abs(m1) or 0.05
    bins = np.linspace(lo - pad, hi + pad, 60)
    for tied, colour in ((False, "C0"), (True, "C1")):
        s = spectra[tied]
        ax.hist(s["singular_values_squared"], bins=bins, density=True, alpha=0.5, color=colour,
                label=f"network {'tied' if tied else 'untied'}: m1 = {s['m1']:.4g}, m2 = {s['m2']:.4g}")
    ax.axvline(m1, color="black", lw=1.5, label=f"theory: m1 = {m1:.4g}, m2 = {m2:.4g}")
    ax.axvspan(m1 - sd, m1 + sd, color="black", alpha=0.08, label="theory: m1 +- sqrt(m2 - m1^2)")
    ax.set_xlabel("squared singular value of J")
    ax.set_ylabel("density")
    ax.legend(fontsize=7)
    return save(fig, path)
