"""Section 3 of a report: fixed points, c*, lambda, xi, the Jacobian moments m1, m2 and the status, at the
defaults and at the critical rule, from the untied theory (:func:`symmft.theory.dynamics.analyze`,
:func:`symmft.theory.jacobian.jacobian_moments`) and, beside it, the tied theory when it is available."""

from __future__ import annotations

from pathlib import Path

from symmft.errors import Status
from symmft.report.context import Context, TiedUnavailable
from symmft.report.document import Section, num
from symmft.serialize import jsonable
from symmft.theory.dynamics import analyze
from symmft.theory.jacobian import jacobian_moments


def untied(ctx: Context, hyperparameters: dict) -> dict:
    """The untied theory's statics at one point: per state M, Q and c*, lambda, xi, backward time scale, m1, m2
    (Gaussian and orthogonal recurrent matrices) and the status name."""
    a = analyze(ctx.cell, hyperparameters)
    out = {k: float(v) for k, v in a.fixed_point.items()}
    out.update({f"c*_{s}": float(v) for s, v in a.correlation.items()})
    out.update({"lambda": float(a.lambda_), "xi": float(a.xi), "status": Status(int(a.status)).name})
    for w in ("gaussian", "orthogonal"):  # m1 is the same for both (to rounding): shown once, the Gaussian one
        j = jacobian_moments(a, weights=w, length=ctx.length)
        if w == "gaussian":
            out["m1"], out["xi_backward"] = float(j["m1"]), float(j["xi_backward"])
        out[f"m2_{w}"] = float(j["m2"])
    return out


def tied(ctx: Context, hyperparameters: dict, weights: str = "gaussian") -> dict:
    """The tied theory's statics at one point, or {"available": False, "reason"}."""
    try:
        t = ctx.analyze_tied(hyperparameters, weights)
    except TiedUnavailable as e:
        return {"available": False, "reason": str(e)}
    out = {k: float(v) for k, v in t.fixed_point.items()}
    out.update({f"c*_{s}": float(v) for s, v in t.correlation.items()})
    status = t.status.name if isinstance(t.status, Status) else str(t.status)
    out.update({"lambda": float(t.lambda_), "xi": float(t.xi), "status": status, "available": True})
    return out


ROWS = ("M_", "Q_", "c*_", "lambda", "xi", "xi_backward", "m1", "m2_gaussian", "m2_orthogonal", "status")
MEANING = {"lambda": "slope of the cross map at c*", "xi": "forward time scale -1/log|lambda| (steps)",
           "xi_backward": "backward time scale 1/|log m1| (steps)", "m1": "tr(JJ^T)/N",
           "m2_gaussian": "tr((JJ^T)^2)/N, Gaussian U", "m2_orthogonal": "tr((JJ^T)^2)/N, orthogonal U",
           "status": "fixed point found?"}


def build(ctx: Context, section: Section, out: Path) -> None:
    section.assumes.append("Inputs standardized (q_x = 1) and the two sequences identical (c_x = 1), so c* = 1 "
                           "wherever that fixed point is stable and xi says how long a one-step difference "
                           "survives. m1, m2 are of the memory Jacobian at the fixed point (section 2).")
    section.fails_where.append("The untied theory ignores that a real network reuses its weights: with a saturated "
                               "memory gate (large bias mean) the tied network's second moments grow far above the "
                               "untied prediction (an LSTM's Q_c: +34% at mu_f = 2, +203% at mu_f = 3, README), "
                               "while m1 holds; the tied column, where available, accounts for it.")
    ctx.say("statics at the defaults and at the rule")
    points = ctx.points()
    results = {}
    for name, h in points.items():
        weights = ctx.rule.weights if name == "rule" else "gaussian"  # the defaults' matrices are Gaussian
        results[name] = {"hyperparameters": h, "untied": untied(ctx, h) if ctx.wants("untied") else None,
                         "tied": tied(ctx, h, weights)}
    columns = [(p, t) for p in results for t in ("untied", "tied") if ctx.wants(t)]
    rows = []
    for k in _keys(results, columns):
        rows.append([k, MEANING.get(k, _meaning(k))] + [_cell(results[p][t], k) for p, t in columns])
    section.table(["quantity", "meaning"] + [f"{p} ({t})" for p, t in columns], rows)
    if "rule" not in points:
        section.text(f"No critical rule for T = {ctx.length}, so only the defaults are shown: {ctx.rule_error}")
    unavailable = {r["tied"]["reason"] for r in results.values() if not r["tied"].get("available", True)}
    if ctx.wants("tied") and unavailable:
        section.text("tied theory " + "; ".join(sorted(unavailable)) + ".")
    section.results.update(jsonable(results))


def _keys(results: dict, columns) -> list[str]:
    """The quantities any column has, in the order of ROWS (a prefix "M_" stands for every state's M_s)."""
    present = dict.fromkeys(k for p, t in columns for k in (results[p][t] or {}) if k not in ("available", "reason"))
    return [k for row in ROWS for k in present if k == row or (row.endswith("_") and k.startswith(row))]


def _cell(values: dict | None, key: str) -> str:
    if values is None:
        return "-"
    if not values.get("available", True):
        return "not available"
    v = values.get(key)
    return v if isinstance(v, str) else num(v)


def _meaning(key: str) -> str:
    kind, _, state = key.partition("_")
    return {"M": f"mean of {state}", "Q": f"second moment of {state}", "c*": f"correlation of {state}"}.get(kind, "")


__all__ = ["build", "tied", "untied"]
