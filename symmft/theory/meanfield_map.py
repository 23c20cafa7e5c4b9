"""The mean-field map as data: :class:`MeanFieldMap`, what :func:`symmft.theory.meanfield.derive` returns.

Stage: a leaf of the theory; :mod:`symmft.theory.meanfield` builds it, :mod:`symmft.theory.compile` compiles it,
:mod:`symmft.theory.jacobian` and the report read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from symmft.cell.graph import Cell


@dataclass(frozen=True)
class MeanFieldMap:
    """The derived map: ``update[key]`` is the new value of each key, in keys and hyperparameters.

    ``diagonal`` keys (means, second moments) depend on diagonal keys only; ``cross`` keys (cross moments between
    the two input sequences) on both. ``laws`` holds, per affine map, (mean, variance, cross covariance) for display;
    ``nonlinearity_laws``, per nonlinearity ("file:line tanh(argument)"), the law its expectations used
    (:data:`symmft.theory.conditional.LAWS`).
    """

    cell: Cell
    closure: str
    chrono: frozenset  # affine maps whose bias holds the chrono term beta_k log U
    diagonal: tuple[sp.Symbol, ...]
    cross: tuple[sp.Symbol, ...]
    update: dict
    laws: dict
    hyperparameters: tuple[sp.Symbol, ...]
    nonlinearity_laws: dict

    def equations(self) -> list[tuple[sp.Symbol, sp.Expr]]:
        """(key, new value) pairs in order: diagonal keys then cross keys."""
        return [(k, self.update[k]) for k in self.diagonal + self.cross]

    def text(self) -> str:
        """The recursions as readable text (``symmft derive``)."""
        lines = [f"# mean-field map of cell {self.cell.name!r} ({self.closure} closure; weights independent across steps)"]
        lines += [f"# law of {k}: {v}" for k, v in self.nonlinearity_laws.items()]
        lines.append("# Gaussian laws of the affine maps: mean, variance V, cross covariance K")
        for k, (m, v, c) in self.laws.items():
            lines.append(f"u_{k}: mean = {m};  V = {v};  K = {c}")
        lines.append("# recursions (primed = next step)")
        lines += [f"{k}' = {expr}" for k, expr in self.equations()]
        return "\n".join(lines)

    def latex(self) -> str:
        """The recursions as LaTeX (one aligned equation per key)."""
        rows = [rf"{sp.latex(k)}' &= {sp.latex(e)}" for k, e in self.equations()]
        return "\\begin{aligned}\n" + " \\\\\n".join(rows) + "\n\\end{aligned}"
