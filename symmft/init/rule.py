"""The init rule: a critical initialization as JSON (every hyperparameter, the predicted criteria, the margins,
the weight distribution, how the inputs were assumed, the cell and its file hash), written by ``symmft critical``
and read by the exporters and the training harness."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path


from symmft.cell.graph import Cell
from symmft.init.criteria import Criteria
from symmft.errors import SymmftError
from symmft.serialize import jsonable

#: Input statistics the search assumes unless fixed otherwise; the sentence is part of every rule.
INPUT_ASSUMPTION = (
    "q_x = {q_x:g}: inputs standardized to per-coordinate second moment x.x/m = {q_x:g}; c_x = {c_x:g}: the two "
    "input sequences are identical at every step after the one where they differ, so xi is how long a difference "
    "injected at one step stays visible (the slope of the cross map at c = 1). Fix q_x (and c_x) to match your data."
)




# ---------------------------------------------------------------- the result


@dataclass(frozen=True)
class CriticalResult:
    """An init rule: every hyperparameter, the predicted quantities, the margins, and how it was found."""

    cell: Cell
    length: int
    weights: str
    hyperparameters: dict  # name -> float, every hyperparameter of the cell
    free: tuple[str, ...]
    predicted: dict  # xi, lambda, m1, m2, variance, spread, Q_s, M_s
    criteria: Criteria
    margins: dict  # free name -> {"down", "up", "down_limit", "up_limit"}
    search: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    #: set by :func:`symmft.init.tied_search.find_critical_tied`: the rule was judged (and corrected) on the tied
    #: network's theory, and ``predicted`` holds the tied values; this holds their standard errors, the untied
    #: rule's hyperparameters, the corrections and every tied evaluation
    tied: dict | None = None

    def input_statistics(self) -> dict:
        q, c = self.hyperparameters["q_x"], self.hyperparameters["c_x"]
        return {"q_x": q, "c_x": c, "assumption": INPUT_ASSUMPTION.format(q_x=q, c_x=c)}

    def to_json(self) -> dict:
        """The rule as JSON-ready data (non-finite numbers as "inf"/"-inf", NaN as null)."""
        return jsonable({
            "cell": self.cell.name,
            "cell_file_hash": self.cell.file_hash,
            "length": self.length,
            "weights": self.weights,
            "hyperparameters": self.hyperparameters,
            "free": list(self.free),
            "criteria": {**self.predicted, "status": "OK"},
            "thresholds": self.criteria.thresholds(),
            "margins": self.margins,
            "input_statistics": self.input_statistics(),
            "notes": list(self.notes),
            "search": self.search,
            **({"theory": "tied", "tied": self.tied} if self.tied is not None else {"theory": "untied"}),
        })

    @classmethod
    def from_json(cls, data: dict, cell: Cell) -> "CriticalResult":
        """A rule read back (:func:`read_rule`) for ``cell``, e.g. to judge or correct it on the tied theory."""
        if data.get("cell_file_hash") != cell.file_hash:
            raise SymmftError(f"the rule was written for another version of cell {data.get('cell')!r} (file hash "
                              f"{data.get('cell_file_hash')}, this file {cell.file_hash}): search it again")
        th, length = data["thresholds"], int(data["length"])
        # rules written before the mean-gain criterion hold |m1 - 1| <= m1_tolerance: T m1_tolerance to first order
        gain = th["max_log_gain"] if "max_log_gain" in th else th["m1_tolerance"] * length
        criteria = Criteria(length, gain, th["max_second_moment"], th["max_spread"], th.get("min_second_moment", 0.0))
        predicted = {k: v for k, v in data["criteria"].items() if k != "status"}
        return cls(cell, length, data["weights"], dict(data["hyperparameters"]),
                   tuple(data.get("free", ())), predicted, criteria, dict(data["margins"]), dict(data.get("search", {})),
                   tuple(data.get("notes", ())), data.get("tied"))

    def write_rule(self, path: str | Path) -> Path:
        """Write the rule as JSON to ``path``; returns the path."""
        path = Path(path)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        except OSError as e:
            raise SymmftError(f"cannot write the rule to {path}: {e.strerror or e}; choose another path") from None
        return path


RULE_KEYS = ("cell", "cell_file_hash", "length", "weights", "hyperparameters", "criteria", "margins", "input_statistics")


def read_rule(path: str | Path) -> dict:
    """Read an init rule written by :meth:`CriticalResult.write_rule`, checking its keys."""
    try:
        rule = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise SymmftError(f"cannot read init rule {path}: {e}") from None
    missing = [k for k in RULE_KEYS if k not in rule]
    if missing:
        raise SymmftError(f"{path} is not an init rule: keys {missing} are missing (write one with symmft critical -o)")
    return rule
