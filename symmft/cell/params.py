"""Hyperparameters of a cell: names, meanings, defaults and validation.

Names follow one spelling end to end (sympy symbol = keyword = JSON key = CLI name):

    sigma2_k      variance scale of the matrix applied to the cell input x: entries ~ N(0, sigma2_k / m)
    nu2_k         variance scale of the matrix applied to a state-derived vector: entries ~ N(0, nu2_k / n)
    nu2_k_v       the same, for vector v, when map k multiplies several state-derived vectors
    mu_k, rho2_k  mean and variance of the bias of map k: b_k,i ~ N(mu_k, rho2_k)
    beta_k        coefficient of the shared chrono bias L = log U, U ~ Uniform[1, T-1], in map k's bias (0: none)
    chrono_length T of the chrono bias (0: off; >= 3 when any beta_k is set). Chrono init: beta_f = 1, beta_i = -1
    q_x           per-coordinate second moment of the input, x.x/m
    c_x           correlation of the two input sequences, x^a.x^b/(m q_x)

Values may be numbers or arrays (a grid); arrays broadcast against each other.
"""

from __future__ import annotations

import difflib
from typing import Mapping

import numpy as np

from symmft.cell.graph import Cell
from symmft.errors import HyperparameterError

GLOBAL_DEFAULTS = {"q_x": 1.0, "c_x": 1.0}


def default(name: str) -> float:
    """Default value: variances 1 (sigma2, nu2), bias means 0, bias variances 0."""
    if name in GLOBAL_DEFAULTS:
        return GLOBAL_DEFAULTS[name]
    return 1.0 if name.startswith(("sigma2_", "nu2_")) else 0.0


def chrono_names(cell: Cell) -> tuple[str, ...]:
    """The chrono-bias names: one coefficient per affine map, then the length T."""
    return tuple(f"beta_{a.name}" for a in cell.affines) + ("chrono_length",)


def names(cell: Cell) -> tuple[str, ...]:
    """Every hyperparameter of ``cell``: weights and biases, the chrono bias, the input statistics."""
    return cell.hyperparameter_names() + chrono_names(cell) + tuple(GLOBAL_DEFAULTS)


def chrono_maps(cell: Cell, h: Mapping[str, object]) -> frozenset[str]:
    """Affine maps whose bias holds the chrono term (beta_k nonzero somewhere on the grid)."""
    maps = frozenset(a.name for a in cell.affines if np.any(np.asarray(h.get(f"beta_{a.name}", 0.0)) != 0))
    if maps and np.any(np.asarray(h.get("chrono_length", 0.0)) < 3):
        raise HyperparameterError(
            f"beta_{'/beta_'.join(sorted(maps))} set but chrono_length < 3: the chrono bias log U, U ~ U[1, T-1], "
            "needs T = chrono_length >= 3 (e.g. the longest dependency in the task)"
        )
    return maps


def describe(cell: Cell) -> list[dict]:
    """One record per hyperparameter: name, default and meaning (for ``symmft params``)."""
    rows = []
    for a in cell.affines:
        for i in a.inputs:
            if i.vector == "x":
                meaning = f"variance scale of the input matrix of map {a.name}: entries ~ N(0, {i.hyperparameter}/m)"
            else:
                meaning = f"variance scale of the matrix of map {a.name} applied to {i.vector}: entries ~ N(0, {i.hyperparameter}/n)"
            rows.append({"name": i.hyperparameter, "default": default(i.hyperparameter), "meaning": meaning})
        rows.append({"name": a.mean, "default": 0.0, "meaning": f"mean of the bias of map {a.name}"})
        rows.append({"name": a.bias_variance, "default": 0.0, "meaning": f"variance of the bias of map {a.name}"})
    for a in cell.affines:
        rows.append({"name": f"beta_{a.name}", "default": 0.0,
                     "meaning": f"coefficient of the shared chrono bias log U, U ~ U[1, chrono_length-1], in map {a.name}'s bias"})
    rows.append({"name": "chrono_length", "default": 0.0, "meaning": "T of the chrono bias (0: off; >= 3 when a beta_k is set)"})
    rows.append({"name": "q_x", "default": 1.0, "meaning": "per-coordinate second moment of the input, x.x/m"})
    rows.append({"name": "c_x", "default": 1.0, "meaning": "correlation of the two input sequences, x^a.x^b/(m q_x)"})
    return rows


def resolve(cell: Cell, values: Mapping[str, object] | None = None) -> dict[str, np.ndarray | float]:
    """Complete ``values`` with defaults and validate every entry.

    Raises :class:`HyperparameterError` for unknown names (with the closest known name), non-numeric or
    non-finite values, negative variances, q_x < 0 and |c_x| > 1.
    """
    known = names(cell)
    out: dict[str, np.ndarray | float] = {n: default(n) for n in known}
    for name, value in (values or {}).items():
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise HyperparameterError(
                f"unknown hyperparameter {name!r} for cell {cell.name!r}{hint} (known: {', '.join(known)})"
            )
        out[name] = _check(name, value)
    grids = {n: v for n, v in out.items() if isinstance(v, np.ndarray)}
    try:
        np.broadcast_shapes(*(v.shape for v in grids.values()))
    except ValueError:
        shapes = ", ".join(f"{n} {v.shape}" for n, v in grids.items())
        raise HyperparameterError(
            f"hyperparameter grids must broadcast against each other, got shapes {shapes}; "
            "give one axis per swept parameter, e.g. with np.meshgrid"
        ) from None
    return out


def _check(name: str, value) -> np.ndarray | float:
    try:
        if value is None:  # np.asarray(None, dtype=float) is NaN, which would read as "not finite"
            raise TypeError
        array = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise HyperparameterError(f"hyperparameter {name} must be a number or array of numbers, got {value!r}") from None
    if not np.all(np.isfinite(array)):
        raise HyperparameterError(f"hyperparameter {name} must be finite, got {value!r}")
    is_variance = name.startswith(("sigma2_", "nu2_", "rho2_")) or name in ("q_x", "chrono_length")
    if is_variance and np.any(array < 0):
        raise HyperparameterError(f"hyperparameter {name} is a variance and must be >= 0, got {array.min():g}")
    if name == "c_x" and np.any(np.abs(array) > 1):
        raise HyperparameterError(f"hyperparameter c_x is a correlation and must lie in [-1, 1], got {value!r}")
    return float(array) if array.ndim == 0 else array


def parse_assignment(text: str) -> tuple[str, float]:
    """``NAME=VALUE`` from the command line -> (name, value)."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise HyperparameterError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, float(value)
    except ValueError:
        raise HyperparameterError(f"hyperparameter {name}: {value!r} is not a number") from None


def parse_grid(text: str) -> tuple[str, np.ndarray]:
    """``NAME=START:STOP:NUM`` -> (name, linspace)."""
    name, start, stop, num = parse_grid_spec(text)
    return name, np.linspace(start, stop, num)


def parse_grid_spec(text: str) -> tuple[str, float, float, int]:
    """``NAME=START:STOP:NUM`` -> (name, start, stop, num), checked, nothing allocated (so a caller can weigh
    the grid's cost first)."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    parts = spec.split(":")
    if not sep or not name or len(parts) != 3:
        raise HyperparameterError(f"expected NAME=START:STOP:NUM, got {text!r}")
    try:
        start, stop, num = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise HyperparameterError(f"grid {text!r}: START and STOP must be numbers and NUM an integer") from None
    if num < 1:
        raise HyperparameterError(f"grid {text!r}: NUM must be >= 1")
    if num == 1 and start != stop:  # linspace would silently drop STOP
        raise HyperparameterError(f"grid {text!r}: NUM = 1 gives START only, not STOP; give NUM >= 2 to reach "
                                  f"{parts[1]}, or {name}={parts[0]}:{parts[0]}:1 (or --set) for one value")
    return name, start, stop, num
