"""Array semantics of a traced cell's elementwise operations: part of the cell's definition, read alike by the
finite network (``symmft.network.spectrum``: exact Jacobians) and by the tied theory's tangents
(``symmft.theory.tangent``), so that neither re-derives what ``sigmoid`` or ``v * v`` means."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
from scipy.special import erf

#: Scalar functions of the ``ops`` namespace on arrays.
FUNCTIONS = {"sigmoid": lambda u: 0.5 * (1.0 + np.tanh(0.5 * u)), "tanh": np.tanh, "erf": erf}
#: Their derivatives, given the argument u and the value y (cheaper where y is known).
DERIVATIVES = {"sigmoid": lambda u, y: y * (1.0 - y), "tanh": lambda u, y: 1.0 - y * y,
               "erf": lambda u, y: (2.0 / math.sqrt(math.pi)) * np.exp(-u * u)}
ARITHMETIC = ("add", "sub", "mul")


def arguments(graph: nx.DiGraph, node) -> list:
    """A node's arguments in call order. A DiGraph keeps one edge per pair, so ``v * v`` has one in-edge: both
    arguments."""
    args = [p for p, _, _ in sorted(graph.in_edges(node, data="position"), key=lambda e: e[2])]
    return args * 2 if graph.nodes[node]["op"] in ARITHMETIC and len(args) == 1 else args


def evaluate(op: str, a: list):
    """The value of elementwise operation ``op`` (arithmetic, a function, ``output``) on its arguments ``a``, or
    None where ``op`` is not elementwise (the caller interprets it or says it cannot)."""
    if op in ARITHMETIC:
        return a[0] + a[1] if op == "add" else a[0] - a[1] if op == "sub" else a[0] * a[1]
    if op in FUNCTIONS:
        return FUNCTIONS[op](a[0])
    if op == "output":
        return a[0]
    return None
