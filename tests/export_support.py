"""Shared by the export tests: init rules with a distinct value per map (so a gate block in the wrong place shows),
and importing an emitted module from a file the way a user would."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from symmft import load_cell


def make_rule(cell: str, weights: str = "orthogonal", scale: float = 1.0, **overrides) -> dict:
    """A rule-shaped dict for built-in ``cell`` (its current file hash). Map j (in the cell's order) gets
    sigma2 = 0.5 * 2^j, nu2 = 0.25 * 2^j (per state-derived vector), mu = (-1)^j 0.3 (j + 1), rho2 = 0.05 * 4^j:
    factors of 2 to 4 between maps, far outside the statistical tolerances, so a block holding another map's
    parameters fails. ``scale`` multiplies the variances; ``overrides`` set single values."""
    c = load_cell(cell)
    h: dict = {"q_x": 1.0, "c_x": 1.0, "chrono_length": 0.0}
    for j, a in enumerate(c.affines):
        for inp in a.inputs:
            h[inp.hyperparameter] = scale * (0.5 if inp.vector == "x" else 0.25) * 2 ** j
        h[a.mean], h[a.bias_variance], h[f"beta_{a.name}"] = (-1) ** j * 0.3 * (j + 1), scale * 0.05 * 4 ** j, 0.0
    h.update(overrides)
    return {"cell": c.name, "cell_file_hash": c.file_hash, "length": 100, "weights": weights, "hyperparameters": h,
            "criteria": {}, "margins": {}, "input_statistics": {"q_x": 1.0, "c_x": 1.0}}


def load_emitted(text: str, directory: Path, name: str):
    """Write ``text`` to ``directory/name.py`` and import it as a fresh module."""
    path = Path(directory) / f"{name}.py"
    path.write_text(text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Keras' serializable registration looks the class's module up
    spec.loader.exec_module(module)
    return module
