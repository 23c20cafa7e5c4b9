"""The tied network's mean squared gain over a sequence: forward tangents in the single-site process.

What: for sequences of length T the gradient crosses the Jacobians of T steps, and the criterion on its size
(docs/criteria.md) needs G(T) = ||J_{T+1} ... J_2 delta||^2 / ||delta||^2 for a random delta on the primary
states at step 1 (J the memory Jacobian of docs/theory.md §3; ``symmft.network.spectrum.jacobian_product_growth``
measures the same product on a finite network with ``burn_in=1``). The free-probability moments give
log G = sum_t log m1(t) only if the steps' Jacobians are free; a tied network reuses its matrices and its units
keep their gates, so they are not. Stage: hyperparameters -> :class:`TiedGain`, consumed by
:mod:`symmft.init.tied_check`.

How: forward-mode tangent propagation applies the matrices and never their transposes, so the tangents are more
vectors of the same Netsor program (Yang 2019) and the tied DMFT (docs/tied.md §1) extends to them exactly at
large width: the matrix U_kv applied to v_t and to its tangent dv_t gives fields (U v_t, U dv_t) that are jointly
Gaussian over time with covariance nu2_kv <[v_t, dv_t] [v_s, dv_s]> over the population. The causal sampler of
:mod:`symmft.theory.transient` draws exactly such a pair per vector when its two "copies" are the value and the
tangent (instead of two input sequences), so :class:`CausalFields` is used unchanged. The step is interpreted
over the cell graph (as :mod:`symmft.network.spectrum` does for the finite network), so the memory Jacobian's
second pass -- derived states (the LSTM's h = o tanh(c)) recomputed from the primary states' new tangents with
the step's other quantities held -- is the same as there. The tangent is renormalized every step by one factor
common to the whole population (the map is linear, and the sampler's covariance of the stored, rescaled
tangents is the true one rescaled by known factors), and the factors are accumulated in logs. Standard error:
the spread of the log gains of the sampler's independent parts (``parts``, default PARTS), each with its own
covariance (so the spread holds that covariance's noise fed back, docs/tied.md §2).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import networkx as nx
import numpy as np

from symmft.cell.elementwise import DERIVATIVES, arguments, evaluate
from symmft.cell.graph import Cell, primary_states
from symmft.errors import ClosureError, Status, integer_option
from symmft.theory.analysis import DIVERGENCE
from symmft.theory.site import Draws, consumers, input_node
from symmft.theory.transient import PARTS, CausalFields, part_means



@dataclass(frozen=True)
class TiedGain:
    """log G(t) for t = 1..T Jacobians, G(t) = <|d_{t+1}|^2> / <|d_1|^2> over the primary states of the population
    (the mean squared singular value of the product), with the spread of the sampler's independent parts' own
    log gains as its standard error, and the value copy's moments (t = 1..T+1, state, [mean, second moment])."""

    length: int
    log_gain: np.ndarray
    standard_error: np.ndarray
    moments: np.ndarray
    status: Status
    population: int

    @property
    def total(self) -> tuple[float, float]:
        """log G(T) and its standard error: the log of the mean squared gain over the whole sequence."""
        return float(self.log_gain[-1]), float(self.standard_error[-1])


class TangentProcess:
    """A population of the tied single-site process carrying a forward tangent beside every value.

    ``horizon``: steps it may take; ``population``: units (rounded up to a multiple of 2 x ``parts``);
    ``input_dim``: m (None: infinite); ``parts``: independent sub-populations (default PARTS), each two
    cross-fitted halves (the sampler's groups). States and tangents are dicts state -> (group, unit) arrays.
    """

    def __init__(self, cell: Cell, h: dict, horizon: int, *, population: int, seed: int,
                 input_dim: int | None = None, parts: int = PARTS):
        self.cell, self.h, self.input_dim = cell, h, input_dim
        self.shape = (2 * parts, max(2, -(-int(population) // (2 * parts))))
        self.draws = Draws(np.random.Generator(np.random.SFC64(seed)), 2 * parts)
        # copy 0 of the sampler is the value, copy 1 its tangent: the pair's joint fields are what is needed
        self.source = CausalFields(cell, horizon, self.shape, self.draws, True, input_dim)
        self.consumers = consumers(cell, input_too=input_dim is not None)
        self.x_node = input_node(cell)
        self.bias = {a.name: h[a.mean] + math.sqrt(h[a.bias_variance]) * self.draws.normal(self.shape[1:])
                     for a in cell.affines}
        self.order = list(nx.topological_sort(cell.graph))
        self.primary = primary_states(cell)
        self.derived = [s for s in cell.states if s not in self.primary]
        self.t = 0

    def step(self, states: dict, tangents: dict, seed: dict | None = None) -> tuple[dict, dict]:
        """One step of values and tangents; ``seed`` replaces the primary states' new tangents (the product's
        start). Derived states' tangents follow the memory Jacobian (docs/theory.md §3)."""
        self.source.begin(self.t)
        g, cell = self.cell.graph, self.cell
        values, tan, fields = {}, {}, {}
        inputs = self._draw_inputs()
        for node in self.order:
            attrs, args = g.nodes[node], arguments(g, node)
            op = attrs["op"]
            if op == "input":
                values[node] = None  # the input enters through the affine maps only
            elif op == "state":
                values[node], tan[node] = states[attrs["name"]], tangents.get(attrs["name"])
            elif op == "const":
                values[node] = attrs["value"]
            elif op == "affine":
                values[node], tan[node] = self._affine(attrs["name"], values, tan, fields, inputs)
            else:
                values[node] = _value(op, [values[p] for p in args])
                tan[node] = _tangent(op, [values[p] for p in args], [tan.get(p) for p in args], values[node])
        self.t += 1
        new = {s: np.broadcast_to(values[cell.outputs[s]], self.shape) for s in cell.states}
        out = {s: tan.get(cell.outputs[s]) for s in cell.states}
        out.update(seed or {})
        if self.derived:  # second pass, seeded only at the primary states' new values
            second = {cell.outputs[p]: out[p] for p in self.primary}
            for node in self.order:  # nodes upstream of the seeds get no tangent (no state node is seeded)
                attrs, args = g.nodes[node], arguments(g, node)
                if node in second or attrs["op"] in ("input", "state", "const"):
                    continue
                if attrs["op"] == "affine":
                    if any(second.get(p) is not None for p in args):
                        raise ClosureError(f"{cell.where(node)}: a derived state is computed from a primary one "
                                           "through a matrix in the same step; the tied gain does not cover that cell")
                    continue
                second[node] = _tangent(attrs["op"], [values[p] for p in args], [second.get(p) for p in args],
                                        values[node])
            out.update({s: second.get(cell.outputs[s]) for s in self.derived})
        zero = np.zeros(self.shape)
        return new, {s: zero if d is None else np.broadcast_to(d, self.shape) for s, d in out.items()}

    def _draw_inputs(self):
        """Infinite m: each input map's term this step, (group, unit), iid over time. Finite m: the groups'
        input vectors x_t (group, m), which the sampler turns into the input maps' fields."""
        q = self.h["q_x"]
        if self.input_dim is not None:
            return math.sqrt(q) * self.draws.normal((self.input_dim,), shared_by=2)  # a part's halves share x
        return {a.name: math.sqrt(q * self.h[i.hyperparameter]) * self.draws.normal(self.shape[1:])
                for a in self.cell.affines for i in a.inputs if i.node == self.x_node}

    def _affine(self, name: str, values: dict, tan: dict, fields: dict, inputs) -> tuple[np.ndarray, np.ndarray | None]:
        amap = self.cell.affine(name)
        u, du = self.bias[name], None
        for inp in amap.inputs:
            if inp.node == self.x_node and self.input_dim is None:
                u = u + inputs[name]
                continue
            if inp.node not in fields:  # the first map reading this vector this step samples all its matrices
                v = inputs if inp.node == self.x_node else np.broadcast_to(values[inp.node], self.shape)
                dv = tan.get(inp.node)
                dv = np.zeros(v.shape) if dv is None else np.broadcast_to(dv, v.shape)
                fields[inp.node] = self.source.fields(inp.node, np.stack([v, dv]))
            row = [k for k, _ in self.consumers[inp.node]].index(name)
            scale = math.sqrt(self.h[inp.hyperparameter])
            u = u + scale * fields[inp.node][row, 0]
            if inp.node != self.x_node:  # the input has no tangent
                du = scale * fields[inp.node][row, 1] + (0.0 if du is None else du)
        return u, du


def tied_gain(cell: Cell, h: dict, length: int, *, input_dim: int | None = None, population: int = 4000,
              seed: int = 0, parts: int = PARTS) -> TiedGain:
    """The tied network's log mean squared gain over ``length`` T memory Jacobians from step 1 of a sequence
    started at the zero state (``h``: resolved scalar hyperparameters), with standard errors from ``parts``
    independent sub-populations."""
    for name, value, least in (("length", length, 1), ("population", population, 32), ("input_dim", input_dim, 1),
                               ("parts", parts, 2)):
        if value is not None:
            integer_option(name, value, least)
    run = TangentProcess(cell, h, length + 1, population=population, seed=seed, input_dim=input_dim, parts=parts)
    G, p = run.shape
    states = {s: np.zeros(run.shape) for s in cell.states}
    delta = {s: run.draws.normal((p,)) for s in run.primary}  # isotropic on the primary states at step 1
    log_scale, per_part, pooled, moments = 0.0, [], [], []
    status = Status.OK
    with np.errstate(all="ignore"):  # overflow/NaN becomes a status
        states, tangents = run.step(states, {}, seed=delta)
        for t in range(length + 1):
            if t:
                states, tangents = run.step(states, tangents)
            moments.append([[np.mean(states[s]), np.mean(states[s] ** 2)] for s in cell.states])
            norm2 = part_means(np.mean([np.mean(tangents[s] ** 2, axis=-1) for s in run.primary], axis=0), 0)  # (part,)
            per_part.append(log_scale + np.log(norm2))
            pooled.append(log_scale + math.log(norm2.mean()) if norm2.mean() > 0 else -math.inf)
            if not (np.isfinite(pooled[-1]) and norm2.mean() > 0):
                status = Status.NAN
                break
            factor = 1.0 / math.sqrt(norm2.mean())  # one common factor keeps the tangent map linear
            tangents, log_scale = {s: d * factor for s, d in tangents.items()}, pooled[-1]
    moments = np.array(moments)
    if status == Status.OK and np.any(moments[..., 1] > DIVERGENCE):
        status = Status.DIVERGED
    if status != Status.OK or len(pooled) < length + 1:
        nan = np.full(length, np.nan)
        return TiedGain(length, nan, nan, moments, Status.NAN if status == Status.OK else status, G * p)
    by_part = np.array(per_part)  # (t, part): each independent part's own log gain
    log_gain = np.array(pooled[1:]) - pooled[0]
    spread = (by_part[1:] - by_part[0]).std(axis=1, ddof=1) / math.sqrt(by_part.shape[1])
    return TiedGain(length, log_gain, spread, moments, status, G * p)


def _value(op: str, a: list):
    value = evaluate(op, a)
    if value is None:
        raise ClosureError(f"the tied gain cannot interpret graph operation {op!r}")
    return value


def _tangent(op: str, a: list, ta: list, y):
    """The tangent of one elementwise node by the chain rule; None is a zero tangent."""
    if all(t is None for t in ta):
        return None
    if op in ("add", "sub"):
        t0, t1 = (0.0 if t is None else t for t in ta)
        return t0 + t1 if op == "add" else t0 - t1
    if op == "mul":
        return sum(a[1 - k] * ta[k] for k in (0, 1) if ta[k] is not None)
    if op in DERIVATIVES:
        return DERIVATIVES[op](a[0], y) * ta[0]
    if op == "output":
        return ta[0]
    raise ClosureError(f"the tied gain cannot differentiate graph operation {op!r}")
