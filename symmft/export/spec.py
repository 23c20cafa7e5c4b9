"""Export an init rule to a framework: a small standalone Python module that initializes the framework's own layer.

Stage: the last one. An init rule (JSON from ``symmft critical``, or :func:`baseline_rule`) -> :class:`ExportSpec`
(per affine map of the cell: sigma2, nu2, mu, rho2, beta) -> source text from one of ``symmft.export.emit.*``
(PyTorch, Flax, Keras) or a plain JSON description (``json``). The emitted module never imports symmft.

Convention check. A rule holds numbers for one function: the cell it was derived for. Before exporting to a
framework the rule's ``cell`` must name a built-in cell and its ``cell_file_hash`` must equal that file's hash
(``symmft.cell.trace.load_cell(name).file_hash``): otherwise the rule may describe another function (a user cell, an
edited file) and is refused, unless ``as_cell`` names the built-in cell whose convention the caller vouches for.
Each framework exporter then states which of its layers compute that cell (``LAYOUTS``) and why the others do not
(``REFUSED``: e.g. PyTorch has no reset-before GRU). Layer options that change the function (Keras hard_sigmoid,
``nn.RNN(nonlinearity="relu")``, ``proj_size``) are refused by the emitted code at run time, where the layer is seen.

Hyperparameters (docs/theory.md §1, in the layer's own sizes): map k's input block ~ N(0, sigma2_k/m) with m the
matrix's input size, recurrent block ~ N(0, nu2_k/n) or sqrt(nu2_k) * Haar-orthogonal n x n *per gate block*,
bias ~ N(mu_k, rho2_k) + beta_k log U with U ~ Uniform[1, chrono_length - 1] drawn once per unit.
"""

from __future__ import annotations

import importlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

from symmft.cell.trace import available_cells, load_cell
from symmft.errors import HyperparameterError, SymmftError
from symmft.init.rule import read_rule  # the JSON format, read without the theory

#: Export targets; a framework target is a module ``symmft.export.emit.<name>``.
TARGETS = ("torch", "flax", "keras", "json")
FRAMEWORKS = ("torch", "flax", "keras")


class ExportError(SymmftError):
    """A rule cannot be exported to the requested target; the message says why and what to do instead."""


@dataclass(frozen=True)
class MapInit:
    """The distribution of one affine map's parameters: input matrix scale ``sigma2`` (None: the map has no input
    matrix), recurrent scale ``nu2`` (None: no recurrent matrix), bias mean ``mu``, variance ``rho2``, chrono
    coefficient ``beta``."""

    sigma2: float | None
    nu2: float | None
    mu: float
    rho2: float
    beta: float

    def has_bias(self) -> bool:
        """True when the bias is not identically zero."""
        return self.mu != 0 or self.rho2 != 0 or self.beta != 0


@dataclass(frozen=True)
class ExportSpec:
    """Everything an exporter needs: the cell convention, each map's distribution, the weight law and the
    provenance text that goes into the emitted module's docstring."""

    cell: str
    cell_file_hash: str
    weights: str  # "orthogonal" | "gaussian" (recurrent blocks)
    chrono_length: float  # 0: no chrono term
    maps: dict[str, MapInit]
    provenance: tuple[str, ...]
    sizes: tuple[int, int] | None = None  # (hidden, input) a baseline rule was made for; None: any size


# ---------------------------------------------------------------- reading and checking rules


def check_convention(rule: dict, target: str, as_cell: str | None = None) -> str:
    """The built-in cell whose convention ``rule`` is exported in for ``target``; raises :class:`ExportError`
    when the rule's cell is not a built-in one, its file hash differs, or the target has no layer for it."""
    if target not in TARGETS:
        raise ExportError(f"unknown export target {target!r}; choose one of {', '.join(TARGETS)}")
    name = as_cell or rule["cell"]
    if target == "json" and not as_cell:  # a description of the rule itself: any cell, no layer to match
        return name
    builtin = available_cells()
    if name not in builtin:
        what = f"--as-cell {as_cell}" if as_cell else f"the rule's cell {name!r}"
        raise ExportError(
            f"{what} is not a built-in cell ({', '.join(builtin)}): a framework layer computes one of those "
            "functions only. Export to json for a user cell, or pass --as-cell NAME (as_cell=) naming the built-in "
            "cell your cell is identical to")
    if target == "json":  # described in as_cell's convention: every hyperparameter of that cell must be there
        missing = [n for n in load_cell(name).hyperparameter_names() if n not in rule["hyperparameters"]]
        if missing:
            raise ExportError(
                f"--as-cell {as_cell}: the rule (cell {rule['cell']}) has no {', '.join(missing)}, which cell "
                f"{as_cell} needs (the rule has {', '.join(sorted(rule['hyperparameters']))}): it was derived for "
                f"another function. Export without --as-cell to describe the rule in its own cell's terms")
        return name
    if as_cell is None and rule["cell_file_hash"] != load_cell(name).file_hash:
        raise ExportError(
            f"the rule was derived from a cell file named {name} with sha256 {rule['cell_file_hash'][:12]}..., but "
            f"the built-in cells/{name}.py has {load_cell(name).file_hash[:12]}...: the file changed or the rule "
            f"is from a user cell of the same name, and a different function may need different numbers. "
            f"Re-derive the rule (symmft critical {name} ...), or pass --as-cell {name} (as_cell=) if you know "
            "the function is the same")
    module = exporter(target)
    if name not in module.LAYOUTS:
        raise ExportError(f"{module.FRAMEWORK} has no layer computing cell {name}: "
                          f"{module.REFUSED.get(name, 'no layout is known for it')}. Export to json instead")
    return name


def exporter(target: str):
    """The exporter module of a framework target (``symmft.export.torch`` ...)."""
    return importlib.import_module(f"symmft.export.{target}")


def spec_from_rule(rule: dict, as_cell: str | None = None, source: str = "") -> ExportSpec:
    """Per-map distributions of ``rule`` for its (or ``as_cell``'s) built-in cell; checks every needed value."""
    cell = load_cell(as_cell or rule["cell"])
    h = rule["hyperparameters"]

    def value(key: str, default: float | None = None) -> float:
        if key not in h and default is None:
            raise HyperparameterError(f"the rule has no hyperparameter {key}, which cell {cell.name} needs "
                                      f"(it has {', '.join(sorted(h))}); export a rule derived for {cell.name}")
        v = h.get(key, default)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise HyperparameterError(f"the rule's {key} = {v!r} is not a finite number")
        if (key.startswith(("sigma2_", "nu2_", "rho2_"))) and v < 0:
            raise HyperparameterError(f"the rule's {key} = {v} is a variance and must be >= 0")
        return float(v)

    maps = {}
    for a in cell.affines:
        scales: dict[str, list[float]] = {"x": [], "state": []}
        for i in a.inputs:
            scales["x" if i.vector == "x" else "state"].append(value(i.hyperparameter))
        if len(scales["state"]) > 1:  # the minimalRNN's u = sigmoid(U_h h + U_z z + b): no framework layer
            raise ExportError(f"map {a.name} of cell {cell.name} multiplies {len(scales['state'])} state-derived "
                              "vectors; no framework layer has that layout. Export to json instead")
        maps[a.name] = MapInit(sigma2=(scales["x"] or [None])[0], nu2=(scales["state"] or [None])[0],
                               mu=value(a.mean), rho2=value(a.bias_variance), beta=value(f"beta_{a.name}", 0.0))
    chrono = value("chrono_length", 0.0)
    if any(m.beta for m in maps.values()) and chrono < 3:
        raise HyperparameterError(f"the rule sets a chrono coefficient beta_k but chrono_length = {chrono:g} < 3")
    weights = rule.get("weights", "gaussian")
    if weights not in ("orthogonal", "gaussian"):
        raise HyperparameterError(f"the rule's weights = {weights!r}; it must be 'orthogonal' or 'gaussian'")
    base = rule.get("baseline")
    sizes = (int(base["width"]), int(base["input_dim"])) if base else None
    return ExportSpec(cell=cell.name, cell_file_hash=cell.file_hash, weights=weights, chrono_length=chrono,
                      maps=maps, provenance=_provenance(rule, cell.name, as_cell, source), sizes=sizes)


def _provenance(rule: dict, cell: str, as_cell: str | None, source: str) -> tuple[str, ...]:
    lines = [f"Init rule{f' {source}' if source else ''}: cell {rule['cell']} (cell file sha256 "
             f"{rule['cell_file_hash']}), sequence length T = {rule.get('length')}, recurrent weights "
             f"{rule.get('weights')}."]
    if as_cell:
        lines.append(f"Exported AS built-in cell {as_cell} (--as-cell): the caller vouches the functions agree.")
    if rule.get("baseline"):
        b = rule["baseline"]
        lines.append(f"Baseline {b['name']} ({b['description']}) for hidden size {b['width']}, input size "
                     f"{b['input_dim']}; weights Gaussian with the baseline's variances (the large-width theory "
                     "sees only variances).")
    crit = rule.get("criteria") or {}
    shown = [k for k in ("xi", "lambda", "m1", "m2", "spread") if k in crit] + sorted(k for k in crit if k.startswith("Q_"))
    if shown:
        lines.append("Predicted at the mean-field fixed point (untied weights): "
                     + ", ".join(f"{k} = {_g(crit[k])}" for k in shown) + ".")
    stats = rule.get("input_statistics") or {}
    if stats.get("assumption"):
        lines.append(f"Input assumption: {stats['assumption']}")
    lines.extend(rule.get("notes") or [])
    return tuple(lines)


def _g(v) -> str:
    return f"{v:.6g}" if isinstance(v, (int, float)) else str(v)


# ---------------------------------------------------------------- export


def export_source(rule: dict, target: str, *, as_cell: str | None = None, source: str = "") -> str:
    """The text of the exported module (framework targets) or JSON document (``json``) for ``rule``.

    ``as_cell`` skips the cell-file hash check and exports in that built-in cell's convention; ``source`` (the
    rule's path) is recorded in the header."""
    check_convention(rule, target, as_cell)
    if target == "json":
        return json.dumps(json_description(rule, as_cell), indent=1) + "\n"
    spec = spec_from_rule(rule, as_cell=as_cell, source=source)
    return exporter(target).render(spec)


def write_export(rule: dict, target: str, path: str | Path, **options) -> Path:
    """Write :func:`export_source` to ``path``; returns the path."""
    text = export_source(rule, target, **options)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as e:
        raise SymmftError(f"cannot write {path}: {e.strerror or e}; choose another path") from None
    return path


def json_description(rule: dict, as_cell: str | None = None) -> dict:
    """A framework-neutral description: per affine map the matrices' variance scales (with their fan-in), the bias
    law and the chrono term; works for any cell, user cells included (the maps are read from the names)."""
    h = rule["hyperparameters"]
    maps = {}
    names = sorted((k[3:] for k in h if k.startswith("mu_")), key=len, reverse=True)  # longest first: hn before h
    for k in sorted(names):
        entry = {"matrices": {}, "mu": h[f"mu_{k}"], "rho2": h.get(f"rho2_{k}", 0.0), "beta": h.get(f"beta_{k}", 0.0)}
        if f"sigma2_{k}" in h:
            entry["matrices"]["x"] = {"name": f"sigma2_{k}", "value": h[f"sigma2_{k}"],
                                      "entries": "N(0, value/m), m = input size"}
        for key in h:
            if key.startswith("nu2_") and _owner(key[4:], names) == k:
                entry["matrices"][key[4 + len(k) + 1:] or "h"] = {
                    "name": key, "value": h[key],
                    "entries": "sqrt(value) * Haar-orthogonal n x n" if rule.get("weights") == "orthogonal"
                    else "N(0, value/n), n = hidden size"}
        maps[k] = entry
    return {
        "format": "symmft-init/1",
        "cell": as_cell or rule["cell"], "cell_file_hash": rule["cell_file_hash"], "length": rule.get("length"),
        "weights": rule.get("weights"), "chrono_length": h.get("chrono_length", 0.0),
        "convention": "u_k = sum_v M_kv v + b_k per affine map k of the cell file; bias b_k ~ N(mu, rho2) + "
                      "beta * log U, U ~ Uniform[1, chrono_length - 1] drawn once per unit and shared by all maps",
        "maps": maps, "predicted": rule.get("criteria"), "input_statistics": rule.get("input_statistics"),
        **({"baseline": rule["baseline"]} if rule.get("baseline") else {}),
    }


def _owner(rest: str, maps: list[str]) -> str | None:
    """The map a ``nu2_<rest>`` name belongs to (``rest`` = map or map_vector; longest map name wins)."""
    for k in maps:
        if rest == k or rest.startswith(k + "_"):
            return k
    return None


# ---------------------------------------------------------------- baselines as rules


def baseline_rule(cell: str, name: str, length: int, width: int, input_dim: int | None = None) -> dict:
    """Baseline ``name`` (``symmft.init.search.BASELINES``) for ``cell`` at hidden size ``width`` and input size
    ``input_dim`` (default the width), as a rule-shaped dict: exportable like a critical rule, with the baseline's
    predicted quantities (and the criteria it fails for length T) under ``criteria``."""
    from symmft.init.baselines import BASELINES, evaluate_baselines, rows_json  # the theory, loaded only here

    if name not in BASELINES:
        raise HyperparameterError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    c = load_cell(cell)
    (row,) = rows_json(evaluate_baselines(c, int(length), int(width), input_dim, names=[name]))
    if not row["applicable"]:
        raise ExportError(f"baseline {name} does not apply to cell {c.name}: {'; '.join(row['notes'])}")
    skip = {"name", "description", "applicable", "weights", "notes", "hyperparameters"}
    return {
        "cell": c.name, "cell_file_hash": c.file_hash, "length": int(length), "weights": row["weights"],
        "hyperparameters": row["hyperparameters"], "free": [],
        "criteria": {k: v for k, v in row.items() if k not in skip}, "margins": {},
        "input_statistics": {"q_x": row["hyperparameters"]["q_x"], "c_x": row["hyperparameters"]["c_x"]},
        "notes": row["notes"],
        "baseline": {"name": name, "description": row["description"], "width": int(width),
                     "input_dim": int(input_dim or width)},
    }


__all__ = ["ExportError", "ExportSpec", "FRAMEWORKS", "MapInit", "TARGETS", "baseline_rule", "check_convention",
           "export_source", "exporter", "json_description", "read_rule", "spec_from_rule", "write_export"]
