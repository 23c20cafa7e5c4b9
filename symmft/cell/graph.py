"""What a traced cell is: the :class:`Cell` (its computation graph), its affine maps, and the vocabulary of
operations a cell file may use.

Stage 1's result type, a leaf: :mod:`symmft.cell.tracer` builds a ``Cell``'s graph and :mod:`symmft.cell.trace`
loads a cell file into one; every later stage reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import networkx as nx

from symmft.errors import CellDefinitionError

#: Elementwise nonlinearities a cell may use; each is defined once more in every interpreter (meanfield, simulate).
NONLINEARITIES = ("sigmoid", "tanh", "erf")
#: Every name an ``ops`` namespace offers to a cell file.
OPS = ("affine",) + NONLINEARITIES
#: The name of the cell input: step's first parameter, and the vector "x" of ops.affine.
INPUT = "x"


@dataclass(frozen=True)
class AffineInput:
    """One vector multiplied by its own random matrix inside an affine map.

    ``vector`` is ``"x"`` for the cell input (weights ~ N(0, sigma2_k/m)) or a state-derived name (weights ~
    N(0, nu2/n)); ``hyperparameter`` is the variance name that scales that matrix; ``node`` the graph node.
    """

    vector: str
    hyperparameter: str
    node: int


@dataclass(frozen=True)
class AffineMap:
    """``u^k = sum_v M_kv v + b_k``: one independent random matrix per input vector plus a bias vector."""

    name: str
    inputs: tuple[AffineInput, ...]
    node: int
    where: str

    @property
    def mean(self) -> str:
        return f"mu_{self.name}"

    @property
    def bias_variance(self) -> str:
        return f"rho2_{self.name}"


@dataclass(frozen=True)
class Cell:
    """A traced cell: its graph, state names, affine maps and the original step function."""

    name: str
    path: Path
    file_hash: str
    states: tuple[str, ...]
    graph: nx.MultiDiGraph  # multi: in ``v * v`` both arguments are edges from v
    outputs: dict[str, int]  # new state name -> node
    affines: tuple[AffineMap, ...]
    step: Callable
    doc: str

    def hyperparameter_names(self) -> tuple[str, ...]:
        """Every weight/bias hyperparameter of the cell, in definition order (without q_x, c_x)."""
        names = []
        for a in self.affines:
            names += [i.hyperparameter for i in a.inputs] + [a.mean, a.bias_variance]
        return tuple(names)

    def affine(self, name: str) -> AffineMap:
        return next(a for a in self.affines if a.name == name)

    def where(self, node: int) -> str:
        return self.graph.nodes[node]["where"]


def primary_states(cell: Cell) -> tuple[str, ...]:
    """States whose new value depends on no other state's new value (LSTM: ``("c",)``; one-state cells: all).

    The others are *derived* (the LSTM's h' = o*tanh(c')); the memory Jacobian is taken over the primary ones.
    """

    def derived(state: str) -> bool:
        node = cell.outputs[state]
        upstream = nx.ancestors(cell.graph, node) | {node}
        return any(cell.outputs[o] in upstream for o in cell.states if o != state)

    primary = tuple(s for s in cell.states if not derived(s))
    if not primary:
        raise CellDefinitionError(f"{cell.path}: every state's new value depends on another state's new value "
                                  f"({', '.join(cell.states)}), so no state is primary; return distinct values")
    return primary

