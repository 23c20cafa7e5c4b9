"""The tied single-site process stepped causally from the zero state (docs/tied.md §2): exact transients.

What: t = 1..T of the tied dynamical mean-field theory of a cell, from the zero state, for two input sequences
followed jointly. Stage: called by :func:`symmft.theory.tied.analyze_tied` (trajectories, and the stationary
values when the memory is short); also seeds :mod:`symmft.theory.stationary`.

How: the recurrent field a matrix applies to vector v is a Gaussian process with covariance C_v(t, s) =
<v_t v_s> over the population, and that covariance up to step t is known when step t's field is needed: the
field is *sampled conditionally on the unit's past fields*. Variables are ordered j = 2t + copy; per group the
Cholesky factor L of C (2T x 2T) grows by two rows a step (a triangular solve, O(t^2)); every matrix keeps its
standard-normal innovations Z (float32: the field needs ~1e-7, not 1e-16), and field_j = L[j, :j+1] Z[:j+1] --
O(population x t) per step, O(P T^2) in all. A variable whose conditional variance vanishes (e.g. the b copy
when c_x = 1 and b = a, or a zero state) gets a zero innovation and a unit pivot, so later solves stay defined
and the field is the exact linear function of the past. GROUPS independent sub-populations each estimate their
own C (their own L): the spread between groups is an honest Monte Carlo error. ``tied=False`` redraws every
field each step with the current covariance only (and site.SiteOps redraws the biases): the untied law.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_triangular

from symmft.cell.trace import Cell
from symmft.errors import HyperparameterError
from symmft.theory.site import Draws, SiteOps, consumers, input_node, lagged, moments

GROUPS = 16  # independent sub-populations: 15 degrees of freedom for every standard error
DEGENERATE = 1e-12  # a conditional variance below this fraction of the variance is taken as exactly zero


class CausalFields:
    """Recurrent fields conditioned on each unit's past, per vector node (see the module docstring)."""

    def __init__(self, cell: Cell, steps: int, shape: tuple[int, int], draws: Draws, tied: bool = True,
                 input_dim: int | None = None):
        self.draws, self.tied, (self.G, self.p) = draws, tied, shape
        self.maps = {node: len(maps) for node, maps in consumers(cell, input_too=input_dim is not None).items()}
        dims = {node: self.p for node in self.maps} | ({input_node(cell): input_dim} if input_dim else {})
        n = 2 * (steps if tied else 1)
        # Time last: a step reads the prefix [:j] of every unit's row (a strided gemv, ~5x faster here than
        # time-first rows of (maps x units)). The input's "population" is its m coordinates.
        self.history = {node: np.zeros((self.G, dims[node], n)) for node in self.maps}
        self.chol = {node: np.zeros((self.G, n, n)) for node in self.maps}
        self.innovations = {node: np.zeros((self.G, k, self.p, n), dtype=np.float32) for node, k in self.maps.items()}
        self.t = 0

    def begin(self, t: int) -> None:
        self.t = t if self.tied else 0

    def fork(self) -> None:
        """Double the groups (see :meth:`symmft.theory.site.Draws.fork`): replicas share the whole past."""
        for table in (self.history, self.chol, self.innovations):
            for node, a in table.items():
                table[node] = np.concatenate([a, a])
        self.G *= 2

    def fields(self, node: int, v: np.ndarray) -> np.ndarray:
        j, hist, L, Z = 2 * self.t, self.history[node], self.chol[node], self.innovations[node]
        hist[:, :, j:j + 2] = v.transpose(1, 2, 0)  # (G, p, copy)
        out = np.empty((self.maps[node], 2, self.G, self.p))
        z = self.draws.normal((self.maps[node], self.p, 2), dtype=np.float32)  # (G, maps, p, copy)
        for g in range(self.G):
            # New covariance columns: <v_i v_new> for every earlier variable i and both copies (j + 2, 2).
            cov = (v[:, g] @ hist[g, :, :j + 2]).T / v.shape[-1]
            for c in (0, 1):
                r = j + c
                row = solve_triangular(L[g, :r, :r], cov[:r, c], lower=True, check_finite=False) if r else cov[:0, c]
                d2 = cov[r, c] - row @ row
                L[g, r, :r] = row
                if d2 <= DEGENERATE * max(cov[r, c], 1e-300):  # exactly determined by the past
                    L[g, r, r], z[g, ..., c] = 1.0, 0.0
                else:
                    L[g, r, r] = np.sqrt(d2)
            Z[g, :, :, j:j + 2] = z[g]
            out[:, :, g] = (Z[g, :, :, :j + 2] @ L[g, j:j + 2, :j + 2].T.astype(np.float32)).transpose(0, 2, 1)
        return out


class Transient:
    """A population of the tied single-site process stepped from the zero state.

    ``horizon``: the most steps it will take (the Cholesky factors and innovations are allocated for it);
    ``population``: units (rounded up to a multiple of GROUPS); ``tied`` False: fields and biases redrawn each
    step (the untied law); ``input_dim``: m (None: infinite).
    """

    def __init__(self, cell: Cell, h: dict, horizon: int, *, population: int, seed: int,
                 input_dim: int | None = None, tied: bool = True):
        if input_dim is not None and not tied:
            raise HyperparameterError("a finite input size belongs to the tied network (untied input rows are "
                                      "redrawn every step): drop input_dim or keep tied=True")
        per_group = max(2, -(-int(population) // GROUPS))
        shape = (GROUPS, per_group)
        self.draws = Draws(np.random.Generator(np.random.SFC64(seed)), GROUPS)
        self.source = CausalFields(cell, horizon, shape, self.draws, tied, input_dim)
        self.ops = SiteOps(cell, h, self.source, self.draws, shape, input_dim=input_dim, tied=tied)
        self.states = [np.zeros((2, *shape)) for _ in cell.states]
        self.t, self.horizon = 0, horizon

    def advance(self, steps: int) -> np.ndarray:
        """Take ``steps`` steps; moments (steps, group, state, 3): mean, second moment, a/b cross moment."""
        if self.t + steps > self.horizon:
            raise ValueError(f"the transient was allocated for {self.horizon} steps")  # a bug, not user input
        record = np.empty((steps, self.ops.shape[0], len(self.states), 3))
        with np.errstate(all="ignore"):  # overflow/NaN becomes a status in the caller
            for i in range(steps):
                self.states = self.ops.step(self.t, self.states)
                self.t += 1
                record[i] = moments(self.states)
        return record

    def fork(self) -> None:
        """Groups G..2G-1 become replicas of groups 0..G-1 from now on (common random numbers)."""
        self.draws.fork()
        self.source.fork()
        self.ops.fork()
        self.states = [np.concatenate([s, s], axis=1) for s in self.states]

    def field_covariances(self, lags: int) -> dict:
        """Per vector node, (auto, cross) <v_t v_{t+tau}>, <v^a_t v^b_{t+tau}> over the last half of the run
        (reference groups), tau < lags: the stationary solver's starting point."""
        G, out = GROUPS, {}
        for node, hist in self.source.history.items():
            if node not in consumers(self.ops.cell):
                continue  # the input (finite m) is not a field of the population
            v = hist[:G, :, : 2 * self.t][..., 2 * (self.t // 2):]
            a, b = v[..., 0::2], v[..., 1::2]
            n = min(lags, a.shape[-1])
            units = a.shape[0] * a.shape[1]
            out[node] = ((lagged(a, a, n) + lagged(b, b, n)) / (2 * units),
                         (lagged(a, b, n) + lagged(b, a, n)) / (2 * units))
        return out

    def kick(self, eta: float, rng: np.random.Generator) -> None:
        """Perturb the b copy of the replica groups: toward a by a fraction eta, or, with identical inputs
        (c_x = 1: b equals a up to rounding), by eta sqrt(Q) times fresh noise."""
        G = self.ops.shape[0] // 2
        for s in self.states:
            a, b = s[0, G:], s[1, G:]
            if self.ops.h["c_x"] == 1.0:
                b += eta * np.sqrt(np.mean(a * a)) * rng.standard_normal(b.shape)
            else:
                b += eta * (a - b)
