"""The initializations people use, converted to symmft's hyperparameters and evaluated by the same criteria.

Stage: ``Cell`` -> baseline hyperparameters for width H and input dimension m -> :func:`symmft.init.evaluate.evaluate_points`
-> rows (xi, m1, m2, ..., which criteria fail for length T), shown by ``symmft critical`` beside the rule and
exportable like a rule (:mod:`symmft.export.spec`).

**Baselines** (:func:`evaluate_baselines`) for width H and input dimension m (default m = H), in the project's
convention W_k,ij ~ (sigma2_k/m), U_k,ij ~ (nu2_k/H) (frameworks.md for each framework's layout):

| baseline | framework facts (frameworks.md) | hyperparameters |
|---|---|---|
| ``pytorch`` | every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)), variance 1/(3H); one bias per matmul (b_ih + b_hh) | sigma2 = m/(3H); nu2 = 1/3; mu = 0; rho2 = (matrices of the map)/(3H): 2/(3H) for LSTM gates |
| ``keras`` | glorot_uniform on the fused (m, G H) kernel, G gates fed by x (LSTM 4): var 2/(m + G H); orthogonal on the fused (H, G H) recurrent kernel: orthonormal rows, entry var 1/(G H); zero biases, unit_forget_bias +1 | sigma2 = 2m/(m + G H); nu2 = 1/G (a gate's block is NOT orthogonal: a truncated Haar matrix whose scaled squared singular values have m2 = 2 - 1/G, 7/4 for the LSTM by sampling, against 2 Gaussian and 1 orthogonal); mu = 0 except the LSTM forget gate mu_f = 1; rho2 = 0 |
| ``forget1`` | Jozefowicz et al. 2015: forget-gate bias 1 | PyTorch weights and biases, memory-gate mean +1 |
| ``chrono`` | Tallec & Ollivier 2018: b_f ~ log U[1, T-1], b_i = -b_f | PyTorch weights; the memory gate's whole bias log U, the write gate's -log U (exact with the ``beta_k``/``chrono_length`` hyperparameters when symmft has them, else a moment-matched Gaussian, flagged) |

Uniform i.i.d. weights have the large-width spectral moments of Gaussian ones with the same variance, so the
PyTorch-family baselines are evaluated with ``weights="gaussian"``; so is Keras when G > 1 (its blocks' m2 = 7/4 is
closer to the Gaussian 2 than to the orthogonal 1), and with ``"orthogonal"`` when G = 1 (one block: truly
orthogonal). ``weights=`` forces one distribution for all.
"""

from __future__ import annotations

import math

from symmft.cell import params as params_mod
from symmft.cell.graph import Cell
from symmft.cell.trace import load_cell
from symmft.init.criteria import Criteria
from symmft.init.evaluate import evaluate_points, gate_roles
from symmft.errors import HyperparameterError, Status
from symmft.serialize import jsonable

BASELINES = {
    "pytorch": "PyTorch default: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H))",
    "keras": "Keras default: glorot_uniform fused kernel, orthogonal fused recurrent kernel, zero biases, unit_forget_bias",
    "forget1": "forget-gate bias 1 (Jozefowicz et al. 2015) on PyTorch-default weights",
    "chrono": "chrono (Tallec & Ollivier 2018): b_f ~ log U[1, T-1], b_i = -b_f, PyTorch-default weights",
}


def baseline_hyperparameters(cell: Cell, name: str, length: int, width: int = 128, input_dim: int | None = None) -> tuple[dict, list[str]]:
    """(hyperparameters, notes) of baseline ``name`` for width H and input dimension m (default H); see the table
    in the module docstring. Raises :class:`HyperparameterError` where the baseline does not apply to the cell."""
    if name not in BASELINES:
        raise HyperparameterError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    H, m = int(width), int(input_dim or width)
    if H < 1 or m < 1:
        raise HyperparameterError(f"width and input dimension must be >= 1, got H={H}, m={m}")
    roles = gate_roles(cell)
    notes: list[str] = []
    h: dict = {}
    if name == "keras":
        G = _fused_gates(cell)
        for a in cell.affines:
            for i in a.inputs:
                h[i.hyperparameter] = 2 * m / (m + G * H) if i.vector == "x" else 1 / G
            h[a.mean], h[a.bias_variance] = 0.0, 0.0
        if roles["write"]:  # unit_forget_bias exists for the LSTM only
            for k, s in roles["memory"].items():
                h[f"mu_{k}"] = float(s)
        if G > 1:
            notes.append(f"recurrent kernel orthogonal as one (H, {G}H) matrix: each gate's block has entry variance "
                         f"1/({G}H) (nu2 = 1/{G}) and is NOT orthogonal (a truncated Haar matrix, spectral m2 = "
                         f"{2 - 1 / G:g} against 2 Gaussian, 1 orthogonal); evaluated with Gaussian weights")
        return h, notes
    for a in cell.affines:  # PyTorch family
        for i in a.inputs:
            h[i.hyperparameter] = m / (3 * H) if i.vector == "x" else 1 / 3
        h[a.mean], h[a.bias_variance] = 0.0, len(a.inputs) / (3 * H)
    if name in ("forget1", "chrono") and not roles["memory"]:
        raise HyperparameterError(f"baseline {name} sets a memory (forget) gate's bias; cell {cell.name} has none")
    if name == "forget1":
        for k, s in roles["memory"].items():
            h[f"mu_{k}"] = float(s)
    if name == "chrono":
        if length < 3:
            raise HyperparameterError("chrono needs T >= 3 (b_f ~ log U[1, T-1])")
        signs = {**roles["memory"], **{k: -s for k, s in roles["write"].items()}}
        if "chrono_length" in params_mod.names(cell):  # the theory integrates the log-uniform bias exactly
            for k, s in signs.items():
                h[f"mu_{k}"], h[f"rho2_{k}"], h[f"beta_{k}"] = 0.0, 0.0, float(s)
            h["chrono_length"] = float(length)
            notes.append("chrono bias integrated exactly: one L = log U per unit, b_f = L, b_i = -L")
        else:
            mean, var = loguniform_moments(length)
            for k, s in signs.items():
                h[f"mu_{k}"], h[f"rho2_{k}"] = s * mean, var
            notes.append(f"MOMENT-MATCHED APPROXIMATION: log U[1, T-1] replaced by a Gaussian N({mean:.4g}, {var:.4g}) "
                         "and b_i = -b_f treated as independent; symmft cannot integrate the log-uniform bias here")
    return h, notes


def _fused_gates(cell: Cell) -> int:
    """G: the number of maps fed by the input, the gate blocks of a Keras fused kernel."""
    return sum(any(i.vector == "x" for i in a.inputs) for a in cell.affines)


def natural_weights(cell: Cell, name: str) -> str:
    """The weight distribution a baseline's recurrent blocks are closest to, which its evaluation uses (see the
    module docstring)."""
    return "orthogonal" if name == "keras" and _fused_gates(cell) == 1 else "gaussian"


def loguniform_moments(length: int) -> tuple[float, float]:
    """Mean and variance of log U, U ~ Uniform[1, T-1] (closed forms of the integrals of log u and log^2 u)."""
    b = length - 1.0
    L = math.log(b)
    mean = (b * (L - 1) + 1) / (b - 1)
    second = (b * (L * L - 2 * L + 2) - 2) / (b - 1)
    return mean, second - mean * mean


def evaluate_baselines(cell: Cell | str, length: int, width: int = 128, input_dim: int | None = None,
                       weights: str | None = None, fixed: dict | None = None,
                       names: tuple[str, ...] | list[str] | None = None) -> list[dict]:
    """The baselines (``BASELINES``) for ``cell`` at width H = ``width``, input dimension m = ``input_dim``
    (default H): per baseline its hyperparameters, notes, the weight distribution used (each baseline's natural
    one unless ``weights`` forces one), the predicted xi, lambda, m1, m2, variance, spread, Q_s, status, and which
    criteria it fails for length T. ``fixed`` (e.g. q_x) applies to all; ``names`` picks some baselines (default
    all). Baselines that do not apply are skipped with a note."""
    cell = cell if isinstance(cell, Cell) else load_cell(cell)
    criteria = Criteria(int(length))
    rows = []
    for name in names or BASELINES:
        if name not in BASELINES:
            raise HyperparameterError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
        description = BASELINES[name]
        try:
            h, notes = baseline_hyperparameters(cell, name, length, width, input_dim)
        except HyperparameterError as e:
            rows.append({"name": name, "description": description, "applicable": False, "notes": [str(e)]})
            continue
        w = weights or natural_weights(cell, name)
        full = params_mod.resolve(cell, {**h, **(fixed or {})})
        ev = evaluate_points(cell, full, weights=w, length=criteria.length)
        row = {"name": name, "description": description, "applicable": True, "weights": w, "notes": notes,
               "hyperparameters": {k: float(v) for k, v in full.items()},
               **{k: float(v[0]) for k, v in ev.items() if k != "status"},
               "status": Status(int(ev["status"][0])).name}
        row["fails"] = criteria.failures(ev)[0]
        rows.append(row)
    return rows


def rows_json(rows: list[dict]) -> list[dict]:
    """Baseline rows as JSON-ready data."""
    return jsonable(rows)
