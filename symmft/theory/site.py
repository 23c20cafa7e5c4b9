"""The single-site process of the tied network (docs/tied.md §1): the ``ops`` a cell's own ``step`` runs on.

What: at large width each unit of a tied network follows the same random process. Its affine map k is

    u^k_t = b_k + (W_k x_t) + sum_v eta^{k,v}_t,

with b_k the unit's own bias, drawn once (quenched: N(mu_k, rho2_k)); W_k x_t the input term, independent
across maps; at infinite input size iid over time, variance sigma2_k q_x (a/b covariance sigma2_k q_x c_x); at
finite input size m a Gaussian process with covariance sigma2_k x_t . x_s / m given the input sequence, which
the population shares (each group draws its own x_1, x_2, ..., as a network sees one input sequence: averaged
over x this is the per-unit Gram picture of docs/tied.md §3, with its coherent per-unit write means, plus the
common input-power fluctuations); and eta^{k,v} the
recurrent field of the matrix map k applies to vector v: a zero-mean Gaussian process in time with covariance
nu2_kv C_v(t, s), C_v the two-time correlation of v over the population, independent across matrices. Stage:
used by :mod:`symmft.theory.transient` and :mod:`symmft.theory.stationary`, which supply the recurrent fields
(a :class:`FieldSource`), and summarised by :mod:`symmft.theory.tied`.

How: arrays are (copy a|b, group, unit), on the device of the draws' array module (numpy, or CuPy: see
:mod:`symmft.backend`). The two copies are one unit under the two input sequences: they share
the bias and the input rows. ``tied=False`` redraws the bias every step (the untied law of theory.md §2; the
recurrent-field source redraws its fields too), which must reproduce :mod:`symmft.theory.population`.
"""

from __future__ import annotations

import math
from typing import Protocol

import numpy as np
from scipy import fft

from symmft.backend import array_module, scipy_for
from symmft.cell.graph import Cell
from symmft.errors import CellDefinitionError

X = object()  # the cell input: it only enters through ops.affine


class Draws:
    """Standard normals for arrays with a group axis. After :meth:`fork` the group axis is doubled and every draw
    of group g is repeated for its replica g + G (common random numbers: a replica differs from its original only
    by what is done to it, so their difference is free of sampling noise).

    ``xp`` is the array module the draws land in and the single-site process computes with (numpy or CuPy);
    ``rng`` draws on its device (:func:`symmft.backend.random_generator`), or is a numpy Generator whose draws
    are copied to the device (CuPy then sees the numpy run's very draws: for checking its arithmetic)."""

    def __init__(self, rng, groups: int, xp=np):
        self.rng, self.groups, self.replicas, self.xp = rng, groups, 1, xp

    def normal(self, shape: tuple, axis: int = 0, dtype=np.float64, shared_by: int = 1) -> np.ndarray:
        """Normals of ``shape`` with the (un-replicated) group count inserted at ``axis``; ``shared_by``
        consecutive groups get the same draws."""
        shape = (*shape[:axis], self.groups // shared_by, *shape[axis:])
        z = self.xp.asarray(self.rng.standard_normal(shape, dtype=dtype))
        z = z if shared_by == 1 else self.xp.repeat(z, shared_by, axis=axis)
        return z if self.replicas == 1 else self.xp.concatenate([z] * self.replicas, axis=axis)

    def fork(self) -> None:
        self.replicas *= 2


class FieldSource(Protocol):
    """Unit-variance recurrent fields: ``fields(node, v)`` -> (maps, copy, group, unit), one independent
    Gaussian process per matrix applied to vector node ``node`` (whose value this step is ``v``), covariance
    C_v(t, s) = <v_t v_s>. ``begin(t)`` is called before step t's first field."""

    def begin(self, t: int) -> None: ...

    def fields(self, node: int, v: np.ndarray) -> np.ndarray: ...


def consumers(cell: Cell, input_too: bool = False) -> dict[int, list[tuple[str, str]]]:
    """Vector node -> [(map, variance name)] of every matrix that multiplies it (the input x only if
    ``input_too``). Maps sharing a vector share its covariance (LSTM: i, f, g, o all read h), so a source samples
    them together."""
    out: dict[int, list[tuple[str, str]]] = {}
    for amap in cell.affines:
        for inp in amap.inputs:
            if input_too or not inp.hyperparameter.startswith("sigma2_"):
                out.setdefault(inp.node, []).append((amap.name, inp.hyperparameter))
    return out


def input_node(cell: Cell) -> int | None:
    """The graph node of the cell input x (None if no map reads it)."""
    return next((i.node for a in cell.affines for i in a.inputs if i.hyperparameter.startswith("sigma2_")), None)


class SiteOps:
    """The ``ops`` of the single-site process for a population of (2, groups, units) copies. ``input_shared_by``:
    consecutive groups that see one finite-m input sequence (one population's units, in parts)."""

    def __init__(self, cell: Cell, h: dict, source: FieldSource, draws: Draws, shape: tuple[int, int], *,
                 input_dim: int | None = None, tied: bool = True, input_shared_by: int = 1):
        self.cell, self.h, self.source, self.draws, self.shape, self.tied = cell, h, source, draws, shape, tied
        self.input_dim, self.xp, self.input_shared_by = input_dim, draws.xp, input_shared_by
        self.consumers = consumers(cell, input_too=input_dim is not None)
        self.input_maps = [a.name for a in cell.affines if any(i.hyperparameter.startswith("sigma2_") for i in a.inputs)]
        self.bias = self._draw_bias()
        self.tanh, self.erf = self.xp.tanh, scipy_for(self.xp).special.erf
        self._fields: dict[int, np.ndarray] = {}
        self._inputs: dict[str, np.ndarray] = {}

    def sigmoid(self, u: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 + self.xp.tanh(0.5 * u))  # overflow-free logistic

    def _draw_bias(self) -> dict[str, np.ndarray]:
        h = self.h
        return {a.name: h[a.mean] + math.sqrt(h[a.bias_variance]) * self.draws.normal(self.shape[1:])
                for a in self.cell.affines}

    def fork(self) -> None:
        """Double the groups: groups G..2G-1 become replicas of 0..G-1 (same biases, inputs, draws)."""
        self.bias = {k: self.xp.concatenate([b, b]) for k, b in self.bias.items()}
        self.shape = (2 * self.shape[0], self.shape[1])

    def keep(self, units: int) -> None:
        """Keep the first ``units`` units of every group (the stationary solver's memory budget)."""
        self.bias = {k: b[:, :units] for k, b in self.bias.items()}
        self.shape = (self.shape[0], units)

    def _draw_inputs(self) -> dict[str, np.ndarray] | np.ndarray:
        """Infinite m: this step's input terms of every map reading x, (copy, group, unit) each, iid over time.
        Finite m: the groups' input vectors x_t (copy, group, m), a/b correlation c_x, for the source."""
        q, c = self.h["q_x"], self.h["c_x"]
        if self.input_dim is not None:
            z = self.draws.normal((2, self.input_dim), axis=1, shared_by=self.input_shared_by)
        else:
            z = self.draws.normal((2, len(self.input_maps), self.shape[1]), axis=2)
        z[1] = c * z[0] + math.sqrt(max(1.0 - c * c, 0.0)) * z[1]
        if self.input_dim is not None:
            return math.sqrt(q) * z
        return {k: math.sqrt(q * self.h[f"sigma2_{k}"]) * z[:, j] for j, k in enumerate(self.input_maps)}

    def affine(self, name: str, *vectors, **named) -> np.ndarray:
        amap, values = self.cell.affine(name), (*vectors, *named.values())
        if len(values) != len(amap.inputs):
            raise CellDefinitionError(f"{self.cell.path}: ops.affine({name!r}) differs from the traced cell")
        u = self.bias[name] + self.xp.zeros((2, *self.shape))
        for inp, v in zip(amap.inputs, values):
            if v is X and self.input_dim is None:
                u = u + self._inputs[name]
                continue
            if v is X:
                v = self._inputs  # the source conditions W_k x_t on the group's own inputs x_1..x_t
            if inp.node not in self._fields:  # first map reading this vector this step: sample all its matrices
                v = v if v is self._inputs else self.xp.broadcast_to(v, u.shape)
                self._fields[inp.node] = self.source.fields(inp.node, v)
            row = [k for k, _ in self.consumers[inp.node]].index(name)
            u = u + math.sqrt(self.h[inp.hyperparameter]) * self._fields[inp.node][row]
        return u

    def step(self, t: int, states: list[np.ndarray]) -> list[np.ndarray]:
        """States after step t (t = 0 is the first step from the initial states)."""
        self._fields.clear()
        self._inputs = self._draw_inputs()
        if not self.tied:
            self.bias = self._draw_bias()
        self.source.begin(t)
        out = self.cell.step(X, *states, self)
        out = out if isinstance(out, tuple) else (out,)
        return [self.xp.broadcast_to(self.xp.asarray(o), s.shape).copy() if getattr(o, "shape", ()) != s.shape
                else o for o, s in zip(out, states)]


def lagged(x: np.ndarray, y: np.ndarray, lags: int) -> np.ndarray:
    """sum over units of mean_t x_t y_{t+tau}, tau = 0..lags-1; x, y (..., T) with time on the last axis (FFT)."""
    T = x.shape[-1]
    n = fft.next_fast_len(2 * T)
    corr = fft.irfft(np.conj(fft.rfft(x, n, axis=-1)) * fft.rfft(y, n, axis=-1), n, axis=-1)[..., :lags]
    return corr.reshape(-1, lags).sum(axis=0) / (T - np.arange(lags))


def moments(states: list[np.ndarray]) -> np.ndarray:
    """(group, state, 3): per group the mean M, second moment Q (both over copies) and cross moment C = <s_a s_b>
    (on the states' device)."""
    xp = array_module(*states)
    return xp.stack([xp.stack([s.mean(axis=(0, -1)), (s * s).mean(axis=(0, -1)), (s[0] * s[1]).mean(axis=-1)],
                              axis=-1) for s in states], axis=1)
