"""Section 6 of a report: the initialization for length T: the critical rule (:func:`symmft.init.search.find_critical`)
with its margins and predictions, the baselines (:func:`symmft.init.baselines.evaluate_baselines`), and the rule
exported for PyTorch, Flax and Keras (:func:`symmft.export.spec.export_source`: the code the exporters write).
Beside the rule's untied spread, the spread measured on finite tied networks of the rule
(:func:`symmft.init.tied_check.network_spread`), which is what the real network has."""

from __future__ import annotations

import math
from pathlib import Path

from symmft.errors import SymmftError
from symmft.export.spec import export_source
from symmft.report.context import Context
from symmft.report.document import Section
from symmft.serialize import jsonable

#: Export targets shown, with their names in the report.
TARGETS = {"torch": "PyTorch", "flax": "Flax", "keras": "Keras 3"}


def build(ctx: Context, section: Section, out: Path) -> None:
    section.assumes.append(f"The criteria of `symmft critical` for T = {ctx.length}: xi >= T, |m1 - 1| <= 1e-3, "
                           "every Q_s <= 10, spread T (m2/m1^2 - 1) <= 1, fixed point found; among such points the "
                           "smallest spectral variance. Inputs standardized (q_x = 1). Baselines converted to "
                           f"width H = {ctx.width}, input size m = {ctx.input_dim or ctx.width}."
                           + (" Quick report: a lighter search (fewer starting points and iterations), so the "
                              "rule may be less isometric than `symmft critical`'s." if ctx.profile.name == "quick"
                              else ""))
    section.fails_where.append("The rule is an untied prediction: with a saturated memory gate a real (tied) "
                               "network's second moments can be far above it while m1 holds (section 5); short T "
                               "can leave no point that meets every criterion.")
    rule = ctx.rule
    if rule is None:
        section.text(f"No critical rule for T = {ctx.length}: {ctx.rule_error}")
        section.results["rule"] = None
        section.results["rule_error"] = ctx.rule_error
    else:
        data = rule.to_json()
        section.text(f"Critical rule for T = {ctx.length} ({rule.weights} recurrent matrices), found in "
                     f"{data['search']['seconds']:.1f} s from {data['search']['points_evaluated']} evaluated points. "
                     "Free parameters and how far each can move before a criterion fails (the others held):")
        section.table(["name", "value", "margin down", "limited by", "margin up", "limited by"],
                      [[n, data["hyperparameters"][n], m["down"], m["down_limit"], m["up"], m["up_limit"]]
                       for n, m in data["margins"].items()])
        c, th = data["criteria"], data["thresholds"]
        section.table(["predicted", "value", "criterion"],
                      [["xi", c["xi"], f">= {th['xi_min']}"], ["m1", c["m1"], f"|T log m1| <= {th['max_log_gain']:g}: in [{th['m1_range'][0]:.6g}, {th['m1_range'][1]:.6g}]"],
                       ["m2", c["m2"], ""], ["variance m2 - m1^2", c["variance"], "minimized"],
                       ["spread T (m2/m1^2 - 1)", c["spread"], f"<= {th['max_spread']:g}"]]
                      + [[k, v, f"<= {th['max_second_moment']:g}" if k.startswith("Q_") else ""]
                         for k, v in c.items() if k.startswith(("Q_", "M_"))])
        for note in data["notes"]:
            section.text(f"Note: {note}")
        section.results["rule"] = data
        _tied_spread(ctx, section, data)
    _baselines(ctx, section)
    if rule is not None:
        _snippets(section, rule.to_json())


def _tied_spread(ctx: Context, section: Section, rule: dict) -> None:
    """The spread of the rule measured on finite tied networks (the tied check's, at the profile's networks and
    the report's input size) beside the untied value, with its standard error, ratio and verdict."""
    p, untied, threshold = ctx.profile, rule["criteria"]["spread"], rule["thresholds"]["max_spread"]
    options = {k: v for k, v in (("width", p.spread_width), ("networks", p.spread_networks)) if v is not None}
    try:  # imported here: the tied check needs the tied theory, which the report treats as optional
        from symmft.init.tied_check import UNCERTAIN, network_spread
    except ImportError as e:
        return _no_tied_spread(section, f"not available: this symmft cannot import the tied check ({e})")
    try:
        ctx.say("measuring the rule's spread on finite tied networks")
        record = network_spread(ctx.cell, rule["hyperparameters"], ctx.length, weights=rule["weights"],
                                input_dim=ctx.input_dim, **options)
    except Exception as e:  # another stage's computation: the row says why and the section goes on
        return _no_tied_spread(section, f"not measured: {type(e).__name__}: {e}")
    spread, se = record["spread"], record["standard_error"]
    if record["status"] != "OK":
        verdict = "fails (a network's product overflowed or vanished)"
    elif abs(spread - threshold) <= UNCERTAIN * se:
        verdict = f"undecided (within {UNCERTAIN:g} standard errors of the threshold)"
    else:
        verdict = "meets" if spread <= threshold else "fails"
    ratio = spread / untied if untied > 0 else math.nan
    networks = f"{len(record['seeds'])} of width {record['width']}, input size {record['input_dim']}"
    infinite = " standing for m = infinity" if ctx.input_dim is None else ""
    section.text("The spread measured on the real network: the exact product of the T memory Jacobians of tied "
                 f"networks ({networks}{infinite}), from the zero state ({record['cpu_seconds']:g} s CPU). The "
                 "untied value sums the steps' spreads as if each step's Jacobian were free of the others (weights "
                 "redrawn every step); a tied network reuses its weights, so the steps' Jacobians are correlated and "
                 "the product's singular values spread further, an O(1/N) fluctuation no infinite-width theory gives "
                 "(at the LSTM rules 1.2x the sum at T = 20, 18-53x at T = 200-1000: docs/criteria.md, \"On the "
                 "tied network\"). `symmft critical --theory tied` judges and corrects the rule on it.")
    section.table(["spread T (m2/m1^2 - 1)", "value", "standard error", "ratio to untied", "criterion", "verdict"],
                  [["untied (free-probability sum)", untied, "-", 1.0, f"<= {threshold:g}",
                    "meets" if untied <= threshold else "fails"],
                   [f"tied networks ({networks})", spread, se, ratio, f"<= {threshold:g}", verdict]])
    section.results["tied_spread"] = {"available": True, **record, "untied": untied, "ratio": ratio,
                                      "threshold": threshold, "verdict": verdict}


def _no_tied_spread(section: Section, reason: str) -> None:
    section.text(f"The spread on finite tied networks: {reason}")
    section.results["tied_spread"] = {"available": False, "reason": reason}


def _baselines(ctx: Context, section: Section) -> None:
    rows = []
    for b in ctx.baselines:
        if not b["applicable"]:
            rows.append([b["name"], "-", "-", "-", "-", "-", "not applicable: " + b["notes"][0]])
        else:
            rows.append([b["name"], b["weights"], b["xi"], b["m1"], b["variance"], b["status"],
                         "trainable" if not b["fails"] else "fails " + ", ".join(b["fails"])])
    section.text(f"The initializations people use, judged by the same criteria for T = {ctx.length}:")
    section.table(["baseline", "weights", "xi", "m1", "variance", "status", f"for T = {ctx.length}"], rows)
    for b in ctx.baselines:
        for note in b["notes"] if b["applicable"] else []:
            section.text(f"Note ({b['name']}): {note}")
    section.results["baselines"] = jsonable(ctx.baselines)


def _snippets(section: Section, rule: dict) -> None:
    section.text("The rule exported (`symmft export RULE.json --to torch|flax|keras`): standalone modules that do "
                 "not import symmft.")
    section.results["exports"] = {}
    for target, name in TARGETS.items():
        try:
            source = export_source(rule, target)
        except SymmftError as e:  # a user cell matches no framework layer: say so, show the neutral description
            section.text(f"{name}: not exported: {e}")
            section.results["exports"][target] = {"error": str(e)}
            continue
        section.code(source, title=f"{name} initializer")
        section.results["exports"][target] = {"lines": source.count("\n")}
    if not any("lines" in v for v in section.results["exports"].values()):
        section.code(export_source(rule, "json"), language="json", title="framework-neutral description (--to json)")
