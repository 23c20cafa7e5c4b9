"""The exceptions symmft raises for bad input, and the per-grid-point status of numeric work.

Every message says what must hold, where (``file:line`` or a hyperparameter name), what it got, and what to do.
Numeric failure on a grid is never an exception: it is a :class:`Status` value per grid point.
"""

from __future__ import annotations

import enum
import numbers


class SymmftError(Exception):
    """Base class of every error symmft raises on purpose."""


class CellDefinitionError(SymmftError):
    """A cell file is wrong; the message starts with ``file:line``."""


class HyperparameterError(SymmftError, ValueError):
    """A hyperparameter name or value is invalid; the message names the parameter."""


def integer_option(option: str, value, minimum: int = 1) -> int:
    """``value`` as an int, or a :class:`HyperparameterError` naming ``option`` unless it is an integer (Python's
    or numpy's, not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise HyperparameterError(f"option {option} must be an integer >= {minimum}, got {value!r}")
    return int(value)


class ClosureError(SymmftError):
    """The chosen closure cannot evaluate an expectation of this cell; the message names the node."""


class BackendError(SymmftError):
    """A numeric backend (numpy, cupy, mpmath) is unavailable or misused."""


class Status(enum.IntEnum):
    """Outcome of the fixed-point solve at one grid point. The message is the remedy."""

    OK = 0
    NOT_CONVERGED = 1
    DIVERGED = 2
    NAN = 3
    UNSTABLE = 4
    CROSS_NOT_CONVERGED = 5

    @property
    def message(self) -> str:
        return _STATUS_MESSAGES[self]


_STATUS_MESSAGES = {
    Status.OK: "converged",
    Status.NOT_CONVERGED: "fixed-point iteration did not converge (slow or oscillating); raise the budget "
    "(analyze --max-iterations, or max_iterations=) or inspect the dynamics near this point",
    Status.DIVERGED: "a state's second moment grew past 1e12 (without bound, or to a fixed point too large for "
    "float64): no usable fixed point at these hyperparameters",
    Status.NAN: "the map produced NaN/inf (hyperparameters out of range for the Gaussian expectations)",
    Status.UNSTABLE: "the fixed point found is unstable (an eigenvalue of the map has modulus > 1): the moments "
    "oscillate or leave it; simulate the network to see its actual behaviour",
    Status.CROSS_NOT_CONVERGED: "the fixed point (M, Q) was found, but the map of the correlation between two input "
    "sequences did not converge (typically right at the order-to-chaos transition): the fixed point and chi_1 are "
    "reported, c*, lambda and xi are NaN; raise the budget (analyze --max-iterations) or move off the transition",
}
