"""The tied single-site process stepped causally from the zero state (docs/tied.md §2): exact transients.

What: t = 1..T of the tied dynamical mean-field theory of a cell, from the zero state, for two input sequences
followed jointly. Stage: called by :func:`symmft.theory.tied.analyze_tied` (trajectories, and the stationary
values when the memory is short); also seeds :mod:`symmft.theory.stationary`.

How: the recurrent field a matrix applies to vector v is a Gaussian process with covariance C_v(t, s) =
<v_t v_s> over the population, and that covariance up to step t is known when step t's field is needed: the
field is *sampled conditionally on the unit's past fields*. Variables are ordered j = 2t + copy; per group the
Cholesky factor L of C (2T x 2T) grows by two rows a step (a triangular solve, O(t^2); or, with more variables
than units a group can pay that for, the same rows from the group's whitened past, see CausalFields); every
matrix keeps its standard-normal innovations Z (float32: the field needs ~1e-7, not 1e-16), and
field_j = L[j, :j+1] Z[:j+1] -- O(population x t) per step, O(P T^2) in all. A variable whose conditional
variance vanishes (e.g. the b copy when c_x = 1 and b = a, or a zero state) gets a zero innovation and a unit
pivot, so later solves stay defined and the field is the exact linear function of the past. Monte Carlo error: the population is PARTS
independent parts, each with its own C, so the spread of their averages holds C's own noise fed back into
the fields (one C for the whole population would move all of it together, unseen by any spread). Each part is
two halves (the GROUPS = 2 x PARTS groups), and a half's fields are drawn from the C of the *other* half
(cross-fitting): a unit's own past never enters the law of its own fields. A C that contains the unit biased
the moments by O(1/units in C) -- +12% at 125 units, the minimalRNN's Q at mu_u = 4 -- while C's noise alone
biases them far less (docs/tied.md §2). The finite-m input's covariance x_t . x_s / m has rank <= m (the x_t
lie in R^m): at most m of its variables are live, so its factor is stored, solved and applied over the columns of
those pivots only (O(m^2) and O(P m) a step, docs/tied.md §2). ``tied=False`` redraws every
field each step with the current covariance only (and site.SiteOps redraws the biases): the untied law.

Backends: ``backend="cupy"`` keeps every per-unit array on the GPU (the same code through the array module
``xp`` of :mod:`symmft.backend`; cuBLAS for the products, cupyx.scipy's triangular solve) and draws with cuRAND,
so a seed gives a different, statistically equivalent population: CuPy and numpy results agree within their
standard errors, not bit for bit (``host_draws=True`` copies numpy's draws to the GPU instead, to check the
arithmetic). :meth:`Transient.advance` returns host (numpy) moments on either backend.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack

from symmft.backend import array_module, get_xp, random_generator, scipy_for, to_numpy
from symmft.cell.graph import Cell
from symmft.errors import HyperparameterError
from symmft.theory.site import Draws, SiteOps, consumers, input_node, lagged, moments

PARTS = 8  # independent sub-populations, each with its own C: 7 degrees of freedom for every standard error
GROUPS = 2 * PARTS  # a part's two halves, groups 2r and 2r + 1: each draws its fields from the other's C
SOLVED_VARIABLES = 1024  # the most variables (2 x steps) whose Cholesky factors are stored and solved against
DEGENERATE = 1e-12  # a conditional variance below this fraction of the variance is taken as exactly zero


class CausalFields:
    """Recurrent fields conditioned on each unit's past, per vector node (see the module docstring).

    Layout, chosen so that a step is a few batched BLAS calls over all groups (profiled: the per-step products
    with the whole past are the cost, O(population x t) bytes a step): time-first, ``history[node]`` (group, 2T,
    units) float64 (and ``white[node]``, the whitened past, where used) and ``innovations[node]`` (group, 2T,
    maps x units) float32, so the past of a group is one contiguous block. After :meth:`fork` the replicas share
    the reference groups' innovations (common random numbers: the same draws) and their history before the fork, so the fork copies no per-unit array and a
    replica step reads the shared past once for both (a 4-row instead of a 2-row product). A finite-m input is the
    same for a replica and its original: they share its factor, and the replicas copy their originals' input fields.
    """

    def __init__(self, cell: Cell, steps: int, shape: tuple[int, int], draws: Draws, tied: bool = True,
                 input_dim: int | None = None):
        self.draws, self.tied, (self.G, self.p) = draws, tied, shape
        xp = self.xp = draws.xp
        self.solve_triangular = scipy_for(xp).linalg.solve_triangular
        self.base = self.G  # reference groups; after a fork groups base..2 base-1 are their replicas
        self.maps = {node: len(maps) for node, maps in consumers(cell, input_too=input_dim is not None).items()}
        dims = {node: self.p for node in self.maps} | ({input_node(cell): input_dim} if input_dim else {})
        n = 2 * (steps if tied else 1)
        self.history = {node: xp.zeros((self.G, n, dims[node])) for node in self.maps}  # the input's "units": m
        self.replica_history: dict[int, np.ndarray] = {}  # rows from the fork on, of the replicas
        own_input = self.own_input = input_node(cell) if input_dim else None  # finite m: the input is a vector node too
        population = [node for node in self.maps if node != own_input]
        # A new row of a group's Cholesky factor L is L^-1 c: a triangular solve, O(t^2) a group and step and
        # n^2 floats a group. With many variables per unit that is the cost (the tied check's T = 500 + 500 at
        # P = 4000: 2.8x the run) and the memory (4 GB at its T = 1000), so there the population vectors keep
        # their past whitened instead, W = V L^-T (V the history): the new row is W^T v / units, a pass over the
        # past like the fields' product, and L is not stored. Solves while n <= min(2 x units a group,
        # SOLVED_VARIABLES) (the per-step costs cross at t ~ units a group; the cap bounds L's memory).
        self.whiten = tied and n > min(2 * self.p, SOLVED_VARIABLES)
        self.white = {node: xp.zeros((self.G, n, self.p)) for node in population} if self.whiten else {}
        self.replica_white: dict[int, np.ndarray] = {}
        # One factor per group: a population vector's from the group's own C (cross-fitting: its partner half's
        # fields use it); the finite-m input's from x_t . x_s / m, the group's own input sequence, exact given it.
        # The input's keeps only the leading columns that hold its live pivots: at most m of them (its rank),
        # within the first 2m variables (m with c_x < 1, every a copy with c_x = 1) unless an early one is
        # degenerate, when it grows (see _solved_rows).
        self.chol = {node: xp.zeros((self.G, n, n)) for node in population if not self.whiten}
        if input_dim:
            self.chol[own_input] = xp.zeros((self.G, n, min(n, 2 * input_dim)))
        self.live = {node: xp.ones((self.G, n), dtype=np.float32) for node in self.maps}  # 0: degenerate pivot
        self.innovations = {node: xp.zeros((self.G, n, k * self.p), dtype=np.float32) for node, k in self.maps.items()}
        self.t, self.written, self.forked_at = 0, 0, None

    def begin(self, t: int) -> None:
        self.t = t if self.tied else 0
        self.written = 2 * self.t + 2

    def fork(self) -> None:
        """Double the groups (see :meth:`symmft.theory.site.Draws.fork`): replicas share the whole past."""
        if self.forked_at is not None:
            raise ValueError("the causal fields fork once")  # a bug, not user input
        self.forked_at = self.written if self.tied else 0
        for past, replicas in ((self.history, self.replica_history), (self.white, self.replica_white)):
            for node, a in past.items():
                if node != self.own_input:
                    replicas[node] = self.xp.zeros((self.base, a.shape[1] - self.forked_at, a.shape[2]))
        for table in (self.chol, self.live):
            for node, a in table.items():
                if node != self.own_input:  # a replica sees its original's input: it shares that input's factor
                    table[node] = self.xp.concatenate([a, a])
        self.G *= 2

    def _write(self, past: dict, replicas: dict, node: int, rows: np.ndarray, j: int) -> None:
        """Rows j, j + 1 of a time-first per-group array (history or white) from ``rows`` (group, copy, units):
        the reference groups' into ``past``, after a fork the replicas' into ``replicas`` (their own rows)."""
        B = self.base
        past[node][:, j:j + 2] = rows[:B]
        if self.forked_at is not None and node != self.own_input:
            replicas[node][:, j - self.forked_at:j + 2 - self.forked_at] = rows[B:]

    def _past_products(self, past: dict, replicas: dict, node: int, x: np.ndarray, J: int) -> np.ndarray:
        """(group, J, copy): every past row i < J of each group (the replicas': the shared rows before the fork,
        then their own) times ``x`` (group, copy, units), summed over units."""
        xp, B = self.xp, self.base
        rows, ref = past[node], x[:B].transpose(0, 2, 1)  # (B, units, copy)
        if self.forked_at is None or node == self.own_input:  # the reference groups only (a shared input)
            return xp.matmul(rows[:, :J], ref)
        f, rep = self.forked_at, x[B:].transpose(0, 2, 1)
        shared = xp.matmul(rows[:, :f], xp.concatenate([ref, rep], axis=2))  # the common past, read once
        return xp.concatenate([xp.concatenate([shared[..., :2], xp.matmul(rows[:, f:J], ref)], axis=1),
                               xp.concatenate([shared[..., 2:], xp.matmul(replicas[node][:, :J - f], rep)], axis=1)])

    def _past_combination(self, past: dict, replicas: dict, node: int, coef: np.ndarray, j: int) -> np.ndarray:
        """(group, copy, units): sum over the past rows i < j of coef[group, i, copy] times row i."""
        xp, B = self.xp, self.base
        rows, ref = past[node], coef[:B].transpose(0, 2, 1)  # (B, copy, j)
        if self.forked_at is None:
            return xp.matmul(ref, rows[:, :j])
        f, rep = self.forked_at, coef[B:].transpose(0, 2, 1)
        shared = xp.matmul(xp.concatenate([ref[..., :f], rep[..., :f]], axis=1), rows[:, :f])  # read once
        return xp.concatenate([shared[:, :2] + xp.matmul(ref[..., f:], rows[:, f:j]),
                               shared[:, 2:] + xp.matmul(rep[..., f:], replicas[node][:, :j - f])])

    def fields(self, node: int, v: np.ndarray) -> np.ndarray:
        j, live, Z = 2 * self.t, self.live[node], self.innovations[node]
        xp, J, k, B = self.xp, j + 2, self.maps[node], self.base
        vt = v.transpose(1, 0, 2)  # (group, copy, units)
        self._write(self.history, self.replica_history, node, vt, j)
        if node in self.white:
            rows, width = self._whitened_rows(node, vt, j), J
        else:
            rows, width = self._solved_rows(node, vt, j)
        # Innovations of the reference groups (a replica's draws are the same); a degenerate pivot's innovation
        # is masked out of the product (live = 0) rather than zeroed, so replicas can keep sharing Z.
        z = self.draws.normal((k, self.p, 2), dtype=np.float32)[:B]  # (B, maps, units, copy)
        Z[:, j:J] = z.transpose(0, 3, 1, 2).reshape(B, 2, k * self.p)
        replicas = len(rows) // B  # 1 for a shared input, whose replicas copy their originals' fields below
        weights = (rows * live[:, None, :J])[:, :, :width].astype(np.float32)  # (groups, copy, width)
        weights = weights.reshape(replicas, B, 2, width).transpose(1, 0, 2, 3).reshape(B, -1, width)
        out = xp.matmul(weights, Z[:, :width])  # (B, replica x copy, maps x units): one pass over the past
        out = out.reshape(B, replicas, 2, k, self.p).transpose(3, 2, 1, 0, 4)
        if replicas < self.G // B:
            out = xp.concatenate([out] * (self.G // B // replicas), axis=2)
        return out.reshape(k, 2, self.G, self.p)

    def _whitened_rows(self, node: int, vt: np.ndarray, j: int) -> np.ndarray:
        """(group, copy, j + 2): the two new rows of the Cholesky factor each group's fields use -- its partner
        half's (cross-fitting). Each group's own rows come from its whitened past W (Gram-Schmidt): the new
        variable's coefficients on W are W^T v / units, its pivot the norm of the remainder, and the normalised
        remainder becomes W's next row; row j (copy a) first, then row j + 1 (copy b) against it too."""
        xp, units = self.xp, vt.shape[-1]
        coef = self._past_products(self.white, self.replica_white, node, vt, j) / units  # (group, j, copy)
        rest = vt - self._past_combination(self.white, self.replica_white, node, coef, j)  # (group, copy, units)
        var = xp.mean(vt * vt, axis=-1)  # (group, copy): the new variables' variances
        pivot_a, ok_a = _pivot(xp.mean(rest[:, 0] ** 2, axis=-1), var[:, 0])
        white_a = rest[:, 0] / pivot_a[:, None]
        ab = xp.mean(white_a * rest[:, 1], axis=-1)  # copy b on copy a's new direction
        rest_b = rest[:, 1] - ab[:, None] * white_a
        pivot_b, ok_b = _pivot(xp.mean(rest_b ** 2, axis=-1), var[:, 1])
        self._write(self.white, self.replica_white, node, xp.stack([white_a, rest_b / pivot_b[:, None]], axis=1), j)
        rows = xp.zeros((len(vt), 2, j + 2))
        rows[:, :, :j] = coef.transpose(0, 2, 1)
        rows[:, 0, j], rows[:, 1, j], rows[:, 1, j + 1] = pivot_a, ab, pivot_b
        self.live[node][:, j:j + 2] = _partners(xp.stack([ok_a, ok_b], axis=1))
        return _partners(rows)

    def _solved_rows(self, node: int, vt: np.ndarray, j: int) -> tuple[np.ndarray, int]:
        """(group, copy, j + 2): the two new rows of the Cholesky factor each group's fields use, by triangular
        solves (a population vector's: its partner half's factor; the input's: its own), and the leading columns
        that hold the live pivots."""
        xp, L, live, J = self.xp, self.chol[node], self.live[node], j + 2
        cov = self._past_products(self.history, self.replica_history, node, vt, J) / vt.shape[-1]  # (group, J, copy)
        low_rank = node == self.own_input  # x_t . x_s / m has rank <= m: at most m live pivots
        if not low_rank:  # a half's law is its partner's C
            cov = _partners(cov)
        # Two new rows: row j (copy a) by a triangular solve against the past, row j + 1 (copy b) extends it by
        # the a/b element.
        rows = xp.zeros((len(cov), 2, J))
        for g in range(len(cov) if j else 0):
            # A degenerate variable's column is zero below its pivot (it is the past's linear function: no
            # innovation of its own), so the input's solve needs its live pivots only: O(m^2) instead of O(t^2).
            idx = xp.flatnonzero(live[g, :j]) if low_rank else None
            if idx is None or len(idx) == j:  # all live (m >= t): the leading block as it stands
                rows[g, :, :j] = self._solve_leading(L[g], j, cov[g, :j]).T
            else:
                rows[g][:, idx] = self.solve_triangular(L[g][xp.ix_(idx, idx)], cov[g, idx], lower=True,
                                                        check_finite=False).T
        var = cov[:, [j, j + 1], [0, 1]]  # (group, copy): the new variables' variances
        rows[:, 0, j], ok0 = _pivot(var[:, 0] - xp.einsum("gi,gi->g", rows[:, 0, :j], rows[:, 0, :j]), var[:, 0])
        rows[:, 1, j] = (cov[:, j, 1] - xp.einsum("gi,gi->g", rows[:, 0, :j], rows[:, 1, :j])) / rows[:, 0, j]
        if low_rank:  # keep a degenerate column exactly zero below its pivot (as computed: rounding noise)
            rows[:, 1, j] *= ok0
        rows[:, 1, J - 1], ok1 = _pivot(var[:, 1] - xp.einsum("gi,gi->g", rows[:, 1, :J - 1], rows[:, 1, :J - 1]),
                                        var[:, 1])
        live[:, j], live[:, j + 1] = ok0, ok1
        # width: the leading columns that hold every live pivot. For the low-rank input the columns past it are
        # zero and not stored (O(T m) memory, not O(T^2)), and the fields' product skips them (O(m) per unit
        # instead of O(t)).
        width = J
        if low_rank:
            any_live = live[:, :J].any(axis=0)
            width = int(xp.flatnonzero(any_live)[-1]) + 1 if bool(any_live.any()) else 1
        if width > L.shape[2]:  # more live pivots than leading columns kept (an early degenerate variable)
            L = self.chol[node] = xp.concatenate([L, xp.zeros((*L.shape[:2], max(width, 2 * L.shape[2]) - L.shape[2]))],
                                                 axis=2)
        L[:, j:J, :width] = rows[:, :, :width]
        return rows, width

    def _solve_leading(self, L: np.ndarray, j: int, b: np.ndarray) -> np.ndarray:
        """x with L[:j, :j] x = b, L lower triangular (n, n). On numpy, LAPACK's trtrs reads the leading block in
        place (L^T is Fortran-ordered, leading dimension n): solve_triangular would first copy the strided block,
        3x the solve's own time at j = 3000 (the same trtrs on the same numbers: bit-identical)."""
        if self.xp is not np:
            return self.solve_triangular(L[:j, :j], b, lower=True, check_finite=False)
        x, info = lapack.dtrtrs(L.T[:, :j], b, lower=0, trans=1)
        if info != 0:  # a zero pivot (never made: a pivot is 1 or above sqrt(DEGENERATE var)) or a bad argument
            raise np.linalg.LinAlgError(f"triangular solve failed (LAPACK info {info})")
        return x


def _partners(a: np.ndarray) -> np.ndarray:
    """``a`` (group, ...) with each pair of groups 2r, 2r + 1 swapped: a half's law is its partner's (the fork
    keeps pairs adjacent)."""
    return a.reshape(-1, 2, *a.shape[1:])[:, ::-1].reshape(a.shape)


def _pivot(d2: np.ndarray, var: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A Cholesky pivot from the conditional variance ``d2`` of variables of variance ``var``, and whether it is
    live: below DEGENERATE x var the variable is exactly the past's linear function (unit pivot, masked innovation)."""
    xp = array_module(d2)
    ok = d2 > DEGENERATE * xp.maximum(var, 1e-300)
    return xp.where(ok, xp.sqrt(xp.where(ok, d2, 1.0)), 1.0), ok


def part_means(x: np.ndarray, axis: int) -> np.ndarray:
    """Averages of the two halves of each part (groups 2r and 2r + 1) along ``axis``: the independent samples
    whose spread is a standard error."""
    shape = x.shape[:axis] + (x.shape[axis] // 2, 2) + x.shape[axis + 1:]
    return x.reshape(shape).mean(axis=axis + 1)


class Transient:
    """A population of the tied single-site process stepped from the zero state.

    ``horizon``: the most steps it will take (the Cholesky factors and innovations are allocated for it);
    ``population``: units (rounded up to a multiple of GROUPS), in PARTS independent parts; ``tied`` False:
    fields and biases redrawn each step (the untied law); ``input_dim``: m (None: infinite); ``backend``:
    "numpy" or "cupy" (the module docstring: a seed fixes each backend's draws, not both alike); ``host_draws``:
    with CuPy, draw numpy's stream on the host and copy it to the GPU (the numpy run's very draws, for checking the
    arithmetic; slower).
    """

    def __init__(self, cell: Cell, h: dict, horizon: int, *, population: int, seed: int,
                 input_dim: int | None = None, tied: bool = True, backend: str = "numpy",
                 host_draws: bool = False):
        if input_dim is not None and not tied:
            raise HyperparameterError("a finite input size belongs to the tied network (untied input rows are "
                                      "redrawn every step): drop input_dim or keep tied=True")
        per_group = max(2, -(-int(population) // GROUPS))
        shape = (GROUPS, per_group)
        xp = self.xp = get_xp(backend)
        self.draws = Draws(random_generator(np if host_draws else xp, seed), GROUPS, xp)
        self.source = CausalFields(cell, horizon, shape, self.draws, tied, input_dim)
        # a finite-m input sequence is the part's: both halves see it (their fields follow each other's C)
        self.ops = SiteOps(cell, h, self.source, self.draws, shape, input_dim=input_dim, tied=tied, input_shared_by=2)
        self.states = [xp.zeros((2, *shape)) for _ in cell.states]
        self.t, self.horizon = 0, horizon

    def advance(self, steps: int) -> np.ndarray:
        """Take ``steps`` steps; moments (steps, part, state, 3) of each independent part (2 x PARTS after
        :meth:`fork`, the replicas' last): mean, second moment, a/b cross moment (numpy)."""
        if self.t + steps > self.horizon:
            raise ValueError(f"the transient was allocated for {self.horizon} steps")  # a bug, not user input
        record = self.xp.empty((steps, self.ops.shape[0], len(self.states), 3))  # on the device: one copy back
        with np.errstate(all="ignore"):  # overflow/NaN becomes a status in the caller
            for i in range(steps):
                self.states = self.ops.step(self.t, self.states)
                self.t += 1
                record[i] = moments(self.states)
        return to_numpy(part_means(record, axis=1))

    def fork(self) -> None:
        """Groups G..2G-1 become replicas of groups 0..G-1 from now on (common random numbers)."""
        self.draws.fork()
        self.source.fork()
        self.ops.fork()
        self.states = [self.xp.concatenate([s, s], axis=1) for s in self.states]

    def field_covariances(self, lags: int) -> dict:
        """Per vector node, (auto, cross) <v_t v_{t+tau}>, <v^a_t v^b_{t+tau}> over the last half of the run
        (reference groups), tau < lags: the stationary solver's starting point."""
        G, out = self.source.base, {}
        for node, hist in self.source.history.items():
            if node not in consumers(self.ops.cell):
                continue  # the input (finite m) is not a field of the population
            v = to_numpy(hist[:G, 2 * (self.t // 2): 2 * self.t]).transpose(0, 2, 1)  # reference groups, (G, units, t)
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
                b += eta * self.xp.sqrt(self.xp.mean(a * a)) * self.xp.asarray(rng.standard_normal(b.shape))
            else:
                b += eta * (a - b)
