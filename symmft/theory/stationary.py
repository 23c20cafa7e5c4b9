"""The stationary state of the tied single-site process by a streaming spectral sampler (docs/tied.md §4).

What: the stationary moments, c* and two-time correlations of the tied theory when the memory is too long for
the causal solver (whose cost grows like T^2). Stage: called by :func:`symmft.theory.tied.analyze_tied`.

How: in the stationary state each recurrent field is a stationary Gaussian process: for the vector v, the a/b
pair has auto-covariance gamma(tau) = <v_t v_{t+tau}> (both copies) and cross-covariance kappa(tau) =
<v^a_t v^b_{t+tau}> (symmetrised: the copies are exchangeable). Its sum and difference modes (a +- b)/sqrt(2)
are independent with covariances gamma +- kappa, each drawn by :mod:`symmft.theory.spectral` (a static part
plus a decaying part through the minimum-phase root of its spectrum, streamed block by block, two-rate beyond
TWO_RATE lags), so the units run on for as long as needed: they are never restarted from zero. Every pass (a
whole number of blocks) re-estimates gamma and kappa from the pass's own v (lagged products by FFT against the
last L samples) and the next pass draws from them: the map gamma -> gamma iterated to self-consistency (with
Aitken's extrapolation on one-rate ranges) while the units stay warm, so a memory longer than a pass costs
passes, not a longer window. L doubles while the decaying part has not decayed by L/2 (the window adapts to
the measured correlation time; without quenched sources called as soon as lag L/2 is measured, with the drawn
covariance damped on two-rate ranges, DAMP), up to MAX_LAGS = 2^20. The static part is the population
mean's square unless something is quenched per unit (rho2 > 0, a chrono bias: then the covariance's plateau),
and without quenched sources a result must not move when the range doubles (docs/tied.md §4); a measured
nonzero mean of a multiplied vector counts as a quenched source (the fixed part (U 1) mean(v) of every unit's
field). Identical inputs (c_x = 1): the two copies are one trajectory (C = Q exactly, as in the causal solver),
so they are run as independent units instead (twice the population for the same cost). Memory: float32 noise
carries, field blocks and lag buffers, ~(32 k + 32) bytes per unit and full-rate lag for k matrices per vector,
capped by MEMORY_BYTES (the population is reduced to fit and the caller told); beyond it the block's normals and
the next block's, (16 k + 32 i) bytes for i maps reading the input (:func:`_budget`). Infinite input size only (finite m
conditions on one input sequence, which is not stationary: use the transient). docs/tied.md §4.

Speed (:mod:`symmft.theory.blocks`): every block's standard normals are drawn a block ahead in a second thread,
in the order the per-step solver drew them (the same seed gives the same numbers, with ``prefetch=False`` too),
and the steps run a chunk at a time with the affine maps and gates precomputed; at the T = 1000 LSTM rule the
solver's own thread then takes ~0.16 ms a step against ~0.37 (RESULTS §7.2b).
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np

from symmft.cell.trace import Cell
from symmft.theory import spectral  # its constants are read at call time (tests shrink them)
from symmft.theory.spectral import LaggedProducts, StreamingFields, layout, measured_reach
from symmft.theory.blocks import CHUNK, BlockNormals, BlockOps
from symmft.theory.passes import batch_error, halves_agree, pooled, ranges_agree
from symmft.theory.site import Draws, consumers

GROUPS = 16
MEMORY_BYTES = 1.5e9  # noise carries, field blocks, lag buffers (float32)
MIN_PASS = 1024  # steps per pass at least: moments and lagged products average over it
MEASURE = 6  # passes at least that the result averages once settled (their spread is part of its error)
EXTRAPOLATE = 0.75  # the largest pass-to-pass ratio the acceleration trusts (a jump of at most 3x the step)
ADEQUATE = 0.05  # the decaying covariance at lag L/2, as a fraction of its lag-1 value, must be below this
#: Without quenched sources, on two-rate ranges: the covariance the next pass draws from is this share the one the
#: pass drew from and the rest the pass's own measurement (a fixed point of the map is one of the damped map): an
#: average over ~1 / (1 - DAMP) passes. The fields are drawn as stationary from correlations measured over the last
#: L steps, which while the memories still fill are the rise's (units drifting away from zero together), so an
#: undamped loop keeps feeding the rise after the networks have levelled off: at the T = 1000 LSTM rule the passes
#: follow width-2000 networks to ~100 by 4.6x10^4 steps, then go on to 140-200 (at P = 1000 and 4000 alike). At
#: 0.5, seeds 1-3 overshot so and ended NOT_CONVERGED after 1.5-1.7x10^6 steps; at 0.8, seeds 0-7 end OK in
#: 1.9-2.6x10^5 steps, Q_c 105.7-123.1 (mean 113.2, scatter 6.9, reported errors 4.0-12.2) where the networks give
#: 112-117; at 0.875 the approach from below is slow enough that two ranges agreed at 96 and 102 (RESULTS §7.2c).
DAMP = 0.8
MAX_LAGS = 2 ** 20  # the longest lag range (two-rate beyond TWO_RATE: memory per unit no longer grows with it)
#: With quenched sources (:func:`quenched`), two-rate and a plateau above this share of a field's variance:
#: NOT_CONVERGED (reason "static"). The plateau is drawn as a permanent per-unit field; that is right for what
#: quenched biases fix (a large share, but reached within a short lag range: LSTM mu_f = 2-4 with rho2 = 0.1,
#: 0.48-0.66 at L <= 512, tied networks within 1-3%), and wrong for a correlation still decaying past the range:
#: drawn so without quenched sources, the T = 1000 LSTM rule (~0.6-0.7 at L = 2^18) gave Q_c 183-222, growing
#: with L, where tied networks level off at ~115 (docs/tied.md §5). Without quenched sources there is no plateau.
STATIC_TRUSTED = 0.3
#: Without quenched biases, a multiplied vector's population mean counts as a quenched source once a pass measures
#: it above this share of the vector's variance and above MEAN_SIGMAS standard errors of the groups' means
#: (:func:`_mean_source`): every unit's field then holds a fixed part (U 1) mean(v), so the units' long-time
#: averages differ and the static part is the plateau (docs/tied.md §4), not mean(v)^2 alone.
MEAN_SHARE = 0.01
MEAN_SIGMAS = 5.0
#: Why a solve ended NOT_CONVERGED (``reason``), in words for the command line.
REASONS = {
    "lags": "the field correlations outlast the largest lag range the solver keeps (or, without quenched sources, "
            "the moments still moved when it doubled)",
    "drift": "the moments still drift between passes at the end of the step budget",
    "clipped": "over 1% of the estimated spectrum was negative (a noisy covariance: raise the population)",
    "max_steps": "the step budget ran out before the passes agreed",
    "static": "with quenched biases, the plateau drawn as a permanent per-unit field is over 30% of a field's "
              "variance on a two-rate range, where it may be a correlation still decaying (docs/tied.md §4); the "
              "transient (--steps T) is exact",
    "nan": "the moments became NaN or infinite",
}


def adequate(g: np.ndarray, variance: float | None = None, static: float | None = None) -> bool:
    """Whether g's decaying part (above its plateau: ``static`` when given, else g's mean over its last quarter)
    is below ADEQUATE of its lag-1 value by lag L/2 (a part below 1% of the variance, g(0) unless given, counts
    as decayed: a lag-0 spike over a plateau, e.g. quenched biases, has none; on the coarse grid g(0) is a block
    mean's variance, and the fine one is given)."""
    L = len(g)
    plateau = g[3 * L // 4:].mean() if static is None else static
    variance = abs(g[0]) if variance is None else abs(variance)
    return bool(abs(g[L // 2] - plateau) <= max(ADEQUATE * abs(g[min(1, L - 1)] - plateau), 0.01 * variance))


def _still_correlated(coarse: np.ndarray, static: float) -> bool:
    """Whether a coarse covariance's decaying part (above ``static``) at lag L/2 (grid point COARSE_LAGS / 2,
    measured) is still positive and above ADEQUATE of its value at the first grid point: a range that
    :func:`adequate` will call short once the rest of the grid fills. One-sided: a negative value there may be
    a swing of the moments over the pass, not a correlation."""
    first, half = coarse[1] - static, coarse[len(coarse) // 2] - static
    return bool(np.isfinite(half) and first > 0 and half > ADEQUATE * first)


def _plateau_reached(gamma: dict) -> bool:
    """Whether, two-rate, every mode's fine covariance (auto +- cross) is at its plateau by half the fast range
    (:func:`adequate` against the plateau the grid draws: the mean of the measured grid's last quarter, as
    :meth:`~symmft.theory.spectral.StreamingFields.draw` takes it). Then the covariance is flat from there to
    the whole range L, many times longer: a plateau reached within a one-rate range, as the quenched points
    validated against networks have it, not a correlation still decaying past the range."""
    for auto, cross, coarse_auto, coarse_cross in gamma.values():
        for sign in (1.0, -1.0):
            G = coarse_auto + sign * coarse_cross
            reach = 2 ** int(math.log2(max(measured_reach(G), 8)))
            if not adequate(auto + sign * cross, variance=auto[0], static=float(G[3 * reach // 4:reach].mean())):
                return False
    return True


def quenched(h: dict) -> bool:
    """Whether the hyperparameters fix anything per unit beyond the recurrent matrices: a bias variance rho2_k > 0
    or a chrono bias (beta_k with chrono_length). Without such a source (and with iid inputs, as here) every unit
    follows the same law, so a unit's long-time average of v is the population mean: the static part of a field
    is nu2 times the mean's square, and a larger plateau in a measured covariance is a correlation still decaying
    (or a frozen pattern the dynamics does not keep: the T = 1000 LSTM rule, docs/tied.md §5), not a static field."""
    chrono = h.get("chrono_length", 0) and any(v != 0 for k, v in h.items() if k.startswith("beta_"))
    return bool(chrono or any(v > 0 for k, v in h.items() if k.startswith("rho2_")))


def _mean_source(group_totals: dict, counts: int, gamma: dict) -> int | None:
    """The first node whose pass mean of v is a quenched source (:data:`MEAN_SHARE`, :data:`MEAN_SIGMAS`), or
    None. ``group_totals``: per node the sums of v over each group's units and the pass's steps, (2 copies,
    GROUPS); ``counts``: the values in each such sum; ``gamma``: the pass's covariances (lag 0: the variance).
    Why both bars: the share keeps a finite population's residual mean (~Q / P: the T = 1000 LSTM rule's
    mean(h)^2 / Q_h ~ 1e-3) on the no-plateau path, and the standard error keeps noise off it (the groups are
    independent given gamma)."""
    for node, totals in group_totals.items():
        per_group = totals.mean(axis=0) / counts  # (GROUPS,): each group's mean over both copies
        m, se = per_group.mean(), per_group.std(ddof=1) / math.sqrt(len(per_group))
        variance = float(gamma[node][0][0])
        if np.isfinite(m) and abs(m) > MEAN_SIGMAS * se and m * m > MEAN_SHARE * abs(variance):
            return node
    return None


def _budget(maps: dict, lags: int) -> int:
    """Units per copy that fit MEMORY_BYTES at this lag range: per unit and matrix two modes' carries and the
    block's modes, slow part and fields (~4 x 2 x fast), two-rate the grid noise history (2 x COARSE_LAGS); per
    vector its recorded block, lag buffer and the FFT's input (~4 x 2 copies x fast) and, two-rate, the coarse lag
    buffer, its pass of block means and FFT input (~4 x 2 copies x COARSE_LAGS); float32. Not counted (so that the
    population, hence a seed's realization, is what it was before they were drawn a block ahead): the block's
    normals and the next block's, 2 x (8 k + 16 i) x fast bytes per unit for the i maps reading x (inputs in
    float64), ~1.6 GB at L = 2^20, P = 1000 for the LSTM."""
    stride, fast = layout(lags)
    k = sum(maps.values())
    per_unit = 4 * fast * (8 * k + 8 * len(maps))
    if stride > 1:
        per_unit += 4 * spectral.COARSE_LAGS * (2 * k + 8 * len(maps))
    return max(GROUPS * 2, int(MEMORY_BYTES / per_unit))


def _regrid(values: tuple, old: int, new: int) -> tuple:
    """A covariance's arrays (fine, coarse) on lag range ``old`` carried to range ``new`` as the next pass's
    starting guess: interpolated in the lag from whatever of the two grids is known, the last value beyond."""
    (s0, f0), (s1, f1) = layout(old), layout(new)
    fine, coarse = values
    lags = np.arange(f0, dtype=float)
    known = fine
    if s0 > 1:
        beyond = np.arange(len(coarse)) * s0 >= f0
        lags, known = np.concatenate([lags, np.arange(len(coarse))[beyond] * s0]), np.concatenate([fine, coarse[beyond]])
    ok = np.isfinite(known)
    at = lambda x: np.interp(x, lags[ok], known[ok])  # noqa: E731 (np.interp holds the last value beyond)
    return at(np.arange(f1)), (at(np.arange(spectral.COARSE_LAGS) * s1) if s1 > 1 else np.zeros(0))


def _run_block(ops: BlockOps, states: list[np.ndarray], record: np.ndarray, history: np.ndarray,
               first_half: int) -> list[np.ndarray]:
    """The steps of one block (its fields drawn), CHUNK at a time: the states after it. Adds each step's
    moments (:func:`~symmft.theory.site.moments`, computed per chunk) to ``record`` (the pass's halves: steps
    before ``first_half`` to the first) and the watched units' states to ``history`` (state, copy, group, unit,
    step)."""
    B, watch = history.shape[-1], history.shape[-2]
    with np.errstate(all="ignore"):
        for t0 in range(0, B, CHUNK):
            t1 = min(B, t0 + CHUNK)
            ops.prepare(t0, t1)
            run = [np.empty((t1 - t0, *s.shape)) for s in states]
            for t in range(t0, t1):
                states = ops.step(t, states)
                for i, s in enumerate(states):
                    run[i][t - t0] = s
            ops.flush()
            per_step = np.stack([np.stack([s.mean(axis=(1, 3)), (s * s).mean(axis=(1, 3)),
                                           (s[:, 0] * s[:, 1]).mean(axis=-1)], axis=-1) for s in run], axis=2)
            split = min(max(first_half - t0, 0), t1 - t0)
            record[0] += per_step[:split].sum(axis=0)
            record[1] += per_step[split:].sum(axis=0)
            for i, s in enumerate(run):
                history[i, ..., t0:t1] = np.moveaxis(s[..., :watch], 0, -1)
    return states


def solve_stationary(cell: Cell, h: dict, *, lags: int, population: int, seed: int, max_lags: int = MAX_LAGS,
                     max_steps: int = 2 ** 20, initial: dict | None = None,
                     progress: Callable[[dict], None] | None = None, target_error: float | None = None,
                     prefetch: bool = True) -> dict:
    """Run the streaming sampler, re-estimating the field covariances every pass, until the second and cross
    moments move by less than 3 standard errors or 0.5% between passes (geometric extrapolation of what is
    left), the pass is free of drift, the lag range covers the decaying covariances and the clipped spectral weight is < 1%; or
    until ``max_steps``. ``lags``: the starting lag range L (doubled up to ``max_lags`` as needed);
    ``initial``: starting covariances ({node: (auto, cross)}, e.g. the transient's; plateau beyond).
    ``progress``: called after every pass with {pass, steps, lags, population, Q, C, standard_error_Q,
    seconds, ...}.
    ``target_error``: once converged, keep averaging passes until every Q's standard error is at most this
    fraction of it (or ``max_steps``): the run length sized to the error asked for.
    ``prefetch``: draw the next block's random numbers in a second thread (the results do not depend on it).

    Returns moments (S, 3) mean and standard error, the states' two-time functions (lags < the fast range, and
    two-rate on the grid), the stride and fast range, the largest fraction of a field's variance drawn as a
    static per-unit part (``static_fraction``: without quenched sources mean(v)^2 / variance; with them the
    plateau's share, above :data:`STATIC_TRUSTED` on a two-rate range NOT_CONVERGED, reason ``static``), each
    range's pooled Q and its error where a result was confirmed by doubling the range (``ranges``: without
    quenched sources, docs/tied.md §4), ``mean_source`` (the vector node whose measured mean made a run without
    quenched biases draw the plateau, :func:`_mean_source`; None if none), passes, steps, the final L,
    population (per copy; reduced if MEMORY_BYTES demanded it), clipped weight, the relative drift of Q and C within the last pass, the last field
    covariances ``gamma``, and ``converged`` with ``reason`` when it is False. The second and cross moments are
    both watched for convergence and drift."""
    maps = {node: len(m) for node, m in consumers(cell).items()}
    identical = h["c_x"] == 1.0  # the copies are one trajectory: run them as independent units (c_x = 0)
    run_h = {**h, "c_x": 0.0} if identical else h
    lags = max(8, int(lags))
    max_lags = max(lags, int(max_lags))
    wanted = max(2, -(-int(population) // GROUPS))
    per_group = min(wanted, max(2, _budget(maps, lags) // GROUPS))
    shape = (GROUPS, per_group)
    rng = np.random.Generator(np.random.SFC64(seed))
    draws = Draws(rng, GROUPS)
    source = StreamingFields(maps, shape, lags, rng)
    ops = BlockOps(cell, run_h, source, draws, shape)
    normals = BlockNormals(rng, threaded=prefetch)  # the blocks' normals, drawn a block ahead
    states = [np.zeros((2, *shape)) for _ in cell.states]
    stride, fast = layout(lags)
    gamma = {}
    for node in maps:
        auto, cross = (initial or {}).get(node, (np.zeros(1), np.zeros(1)))
        auto, cross = np.asarray(auto, float), np.zeros(len(cross)) if identical else np.asarray(cross, float)
        at = [lambda x, g=g: np.interp(x, np.arange(len(g)), g) for g in (auto, cross)]  # the last value beyond
        grid = np.arange(spectral.COARSE_LAGS) * stride if stride > 1 else np.zeros(0)
        gamma[node] = (at[0](np.arange(fast)), at[1](np.arange(fast)), at[0](grid), at[1](grid))
    # Lagged products: at full rate up to the fast range, and (two-rate) of block means on the coarse grid.
    lagged = {node: LaggedProducts((2, *shape), fast, cross=not identical) for node in maps}
    coarse = ({node: LaggedProducts((2, *shape), spectral.COARSE_LAGS, cross=not identical) for node in maps}
              if stride > 1 else {})
    watch = min(per_group, max(1, 256 // GROUPS))  # units per group whose states give the two-time function
    two_time = [LaggedProducts((2, GROUPS, watch), fast, cross=False) for _ in cell.states]
    two_time_coarse = ([LaggedProducts((2, GROUPS, watch), spectral.COARSE_LAGS, cross=False) for _ in cell.states]
                       if stride > 1 else [])
    state_two_time_coarse = None
    # The static part of each field: without quenched sources only the population mean's square (ergodic units);
    # with them the covariance's plateau (docs/tied.md §4). Zero until a pass has measured the mean.
    static = None if quenched(h) else {node: (0.0, 0.0) for node in maps}
    mean_source = None  # the node whose measured mean switched a run without quenched biases to the plateau rule
    previous, change, converged, reason = None, None, False, "max_steps"
    confirming, confirm, ranges, honest = None, False, [], None  # no quenched source: the result at half the range
    steps, passes, mean, started, measured, measured_steps = 0, 0, None, time.process_time(), [], []
    while steps < max_steps:
        blocks = max(1, -(-max(MIN_PASS, source.lags // 32) // source.block))  # two-rate: the coarse FFTs per pass
        record = np.zeros((2, GROUPS, len(cell.states), 3))  # the pass's two halves
        clipped, pending, pending_states = 0.0, {node: [] for node in coarse}, [[] for _ in two_time_coarse]
        totals = {node: np.zeros(2) for node in maps}  # per copy: the sum of v over units and the pass's steps
        group_totals = {node: np.zeros((2, GROUPS)) for node in maps}  # the same per group (the mean's noise)
        for b in range(blocks):
            B = source.block
            noise = normals.take([*source.noise_plan(), ("inputs", ops.input_shape(B), np.float64, False)])
            clipped = max(clipped, source.draw(gamma, static, noise))
            ops.begin_block(noise["inputs"])
            history = np.empty((len(states), 2, GROUPS, watch, B), dtype=np.float32)
            states = _run_block(ops, states, record, history, first_half=blocks * B // 2 - b * B)
            for node, lag in lagged.items():
                lag.add(source.recorded[node])
                totals[node] += source.recorded[node].sum(axis=(1, 2, 3), dtype=np.float64)
                group_totals[node] += source.recorded[node].sum(axis=(2, 3), dtype=np.float64)
            for i, lag in enumerate(two_time):
                lag.add(history[i])
            for node in coarse:
                v = source.recorded[node]
                pending[node].append(v.reshape(*v.shape[:-1], -1, source.stride).mean(axis=-1))
            for i in range(len(two_time_coarse)):
                pending_states[i].append(history[i].reshape(*history[i].shape[:-1], -1, source.stride).mean(axis=-1))
            steps += B
        for node, lag in coarse.items():
            lag.add(np.concatenate(pending[node], axis=-1))
        for lag, block_means in zip(two_time_coarse, pending_states):
            lag.add(np.concatenate(block_means, axis=-1))
        passes += 1
        record /= blocks * source.block / 2
        per = record.mean(axis=0)
        if identical:
            per[..., 2] = per[..., 1]  # one trajectory: C = Q
        mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / math.sqrt(GROUPS)
        units, used = GROUPS * per_group, gamma
        gamma = {node: (*lag.take(units), *(coarse[node].take(units) if coarse else (np.zeros(0), np.zeros(0))))
                 for node, lag in lagged.items()}
        state_two_time = np.array([lag.take(GROUPS * watch)[0] for lag in two_time])
        if two_time_coarse:
            state_two_time_coarse = np.array([lag.take(GROUPS * watch)[0] for lag in two_time_coarse])
        if identical:
            gamma = {node: (g[0], np.zeros_like(g[1]), g[2], np.zeros_like(g[3])) for node, g in gamma.items()}
        if static is not None and source.stride > 1:  # damped (DAMP): where both are measured, same grids
            gamma = {node: tuple(np.where(np.isfinite(new) & np.isfinite(old), (1 - DAMP) * new + DAMP * old, new)
                                 if len(old) == len(new) else new for new, old in zip(gamma[node], used[node]))
                     for node in gamma}
        if static is not None and mean_source is None:
            # A measured nonzero mean is a quenched source (the fixed part (U 1) mean(v) of every unit's field):
            # from the next pass on the static part is the plateau (docs/tied.md §4), as with quenched biases.
            mean_source = _mean_source(group_totals, per_group * blocks * source.block, gamma)
            if mean_source is not None:
                static = None
        if static is not None:  # the population means' squares: <v^a_t v^b_s> of ergodic units at long lags
            means = {node: total / (units * blocks * source.block) for node, total in totals.items()}
            static = {node: ((m[0] ** 2 + m[1] ** 2) / 2, 0.0 if identical else m[0] * m[1])
                      for node, m in means.items()}
        # Two-rate: the coarse lags reach back further than the data since the last change of the grid (NaN):
        # neither settled nor short until they are measured.
        # Two-rate: the coarse lags reach back only as far as the data since the grid last changed (NaN beyond);
        # the range is judged on what is measured, and doubled only once all of it is.
        plateau = {node: None if static is None else static[node][0] for node in gamma}
        if source.stride == 1:
            covered, filling = all(adequate(g[0], static=plateau[node]) for node, g in gamma.items()), False
        else:
            reach = min(measured_reach(g[2]) for g in gamma.values())
            covered = reach >= min(64, spectral.COARSE_LAGS) and all(adequate(g[2][:reach], g[0][0], plateau[node])
                                                            for node, g in gamma.items())
            filling = not covered and reach < spectral.COARSE_LAGS
            if filling and static is not None and reach > spectral.COARSE_LAGS // 2:
                # Without quenched sources: once lag L/2 is measured and the decaying part there is still above
                # ADEQUATE of its lag-1 value, the range is short now. Waiting for the grid's other half to fill
                # (L/2 steps) found the same, and at the T = 1000 LSTM rule spent ~1.4x10^5 of 4.2x10^5 steps
                # on ranges up to 2^17 that were doubled anyway (RESULTS §7.2a; safe only damped: DAMP).
                filling = not any(_still_correlated(g[2], static[node][0]) for node, g in gamma.items())
        if not np.all(np.isfinite(mean)):
            reason = "nan"
            break
        # Watched: the second and cross moments (S, 2), on the scale of the second moment.
        watched, watched_se, scale = mean[:, 1:], se[:, 1:], np.abs(mean[:, 1:2])
        d = record[1, :, :, 1:] - record[0, :, :, 1:]
        d_mean, d_se = d.mean(axis=0), d.std(axis=0, ddof=1) / math.sqrt(GROUPS)
        drifting = bool(np.any((np.abs(d_mean) > 5 * d_se) & (np.abs(d_mean) > 0.01 * scale)))
        short = not covered and not filling
        settled = False
        if previous is not None and not filling:
            # The passes converge geometrically (ratio r ~ 0.4-0.7 for the LSTM at mu_f = 3-4): what is left is
            # about change * r / (1 - r). Stop when the change and what is left are both below 3 standard
            # errors or 0.5% (of Q: the cross moment C may be near zero).
            last, change = change, watched - previous
            r = np.clip(change / last, 0, 0.95) if last is not None else np.full_like(change, 0.5)
            left = np.abs(change) * r / (1 - r)
            tolerance = np.maximum(3 * watched_se, 0.005 * scale)
            settled = bool(np.all((left <= tolerance) & (np.abs(change) <= tolerance)))
            # Acceleration (Aitken's extrapolation along the slowest direction): while the passes still move
            # by far more than their noise in a geometric sequence, jump by r / (1 - r) times the last step.
            k = np.unravel_index(np.argmax(np.abs(change) / np.maximum(watched_se, 1e-300)), change.shape)
            # Not on a two-rate range: there the moments move with the slow part's relaxation over ~L steps, which
            # a jump of a pass's noisy slow covariance only throws into swings (T = 1000 LSTM rule: Q_c 58-117).
            if (not measured and last is not None and source.stride == 1 and abs(change[k]) > 5 * watched_se[k]
                    and 0.1 < r[k] < 1):
                w = min(r[k], EXTRAPOLATE) / (1 - min(r[k], EXTRAPOLATE))
                gamma = {node: tuple(new + w * (new - old) for new, old in zip(gamma[node], used[node]))
                         for node in gamma}
                change = None  # the next pass starts a new geometric sequence
        previous = watched
        if progress is not None:
            progress({"pass": passes, "steps": steps, "lags": source.lags, "stride": source.stride,
                      "filling": filling, "population": GROUPS * per_group,
                      "Q": mean[:, 1].tolist(), "C": mean[:, 2].tolist(), "standard_error_Q": se[:, 1].tolist(),
                      "standard_error_C": se[:, 2].tolist(), "drifting": drifting,
                      "short": short, "clipped": clipped, "seconds": time.process_time() - started})
        if (short or confirm) and source.lags < max_lags:  # the window is shorter than the correlation time
            # (also while measuring: the correlations have outgrown the range)
            confirm, measured, measured_steps = False, [], []
            old_lags, lags = source.lags, min(2 * source.lags, max_lags)
            (old_stride, _), (stride, fast) = layout(old_lags), layout(lags)
            gamma = {node: tuple(x for pair in zip(_regrid((g[0], g[2]), old_lags, lags),  # (auto, cross) fine,
                                                   _regrid((g[1], g[3]), old_lags, lags)) for x in pair)  # coarse
                     for node, g in gamma.items()}
            per_group = min(per_group, max(2, _budget(maps, lags) // GROUPS))  # fewer units if memory demands
            states = [s[..., :per_group] for s in states]
            ops.keep(per_group)
            source.keep(per_group)
            normals.rewind()  # the generator's next numbers are set_lags' (as they were before the block ahead)
            source.set_lags(lags)
            if stride > 1:  # the coarse grid: from the fine samples (one rate until now) or a grid twice as coarse
                for node in maps:
                    if old_stride == 1:
                        coarse[node] = LaggedProducts((2, *shape), old_lags, cross=not identical)
                        coarse[node].buffer, coarse[node].seen = lagged[node].buffer, lagged[node].seen
                    coarse[node].resize(spectral.COARSE_LAGS, per_group, coarsen=stride // old_stride)
                for i in range(len(cell.states)):
                    if old_stride == 1:
                        two_time_coarse.append(LaggedProducts((2, GROUPS, watch), old_lags, cross=False))
                        two_time_coarse[i].buffer, two_time_coarse[i].seen = two_time[i].buffer, two_time[i].seen
                    two_time_coarse[i].resize(spectral.COARSE_LAGS, min(watch, per_group), coarsen=stride // old_stride)
            for lag in lagged.values():
                lag.resize(fast, per_group)
            for lag in two_time:
                lag.resize(fast, min(watch, per_group))
            watch = min(watch, per_group)
            previous, change = None, None
            continue
        if (measured and not short) or (settled and not drifting and not short and clipped < 0.01):
            # Settled: measure over the passes from here on. A slow relaxation (the cross moment of the LSTM at
            # mu_f = 4 creeps by ~5% a pass, within one pass's noise) shows only over many passes: converged
            # when the first and second halves of the measured passes (at least MEASURE) agree within 2
            # standard errors or 0.5%; otherwise the oldest quarter is dropped as burn-in and the run goes on
            # (strict on purpose: a false alarm costs passes, a missed drift a biased number).
            # Every group draws its fields from the common gamma, so the groups' spread misses gamma's own
            # noise fed back (~1% a pass at the LSTM's mu_f = 3, P = 2000, twice the groups' error): the
            # standard errors come from the passes' spread as well.
            measured.append(per)
            measured_steps.append(blocks * source.block)
            m = len(measured)
            # At long memories a pass is short beside the correlation time and the moments creep by less than a
            # pass's noise: the halves are compared only once the measured passes span a quarter of the lag range
            # (the T = 1000 LSTM rule: Q_c rose ~1% a pass for 10^5 steps and halves of 6 passes agreed).
            if m >= MEASURE and sum(measured_steps) >= source.lags // 4:
                if not halves_agree(measured):
                    del measured[:max(1, m // 4)], measured_steps[:max(1, m // 4)]
                elif target_error is None or np.all(pooled(measured)[1][:, 1] <= target_error * np.abs(mean[:, 1])):
                    # Without quenched sources nothing holds the correlations past the range: the fields' are
                    # cut there, the measured ones follow the cut, and the passes agree at a value that grows
                    # with the range (T = 1000 LSTM rule: Q_c 59 / 82 / ~115 at L = 2^16 / 2^17 / 2^19; LSTM
                    # mu_f = 5: 145 at 2048). Converged only once doubling the range leaves the moments where
                    # they were.
                    if static is not None:
                        now = (*pooled(measured), source.lags)
                        ranges.append({"lags": now[2], "Q": now[0][:, 1].tolist(),
                                       "standard_error_Q": now[1][:, 1].tolist()})
                        if confirming is None or not ranges_agree(confirming, now):
                            if source.lags >= max_lags:
                                reason = "lags"
                                break
                            confirming, confirm = now, True
                            continue
                        honest = batch_error(confirming, now, measured)
                    converged = True
                    break
            reason = "drift"
            continue
        reason = "lags" if short else "clipped" if clipped >= 0.01 else "drift" if drifting else "max_steps"
    normals.rewind()
    if (converged and static is None and source.stride > 1 and source.static_fraction > STATIC_TRUSTED
            and not _plateau_reached(gamma)):
        converged, reason = False, "static"  # its own criteria met, but on a plateau it cannot tell from a memory
    if len(measured) > 1:
        mean, se = pooled(measured)
    if honest is not None:
        se = honest  # confirmed by doubling the range: the batch means' error (:func:`batch_error`)
    return {"mean": mean, "standard_error": se, "two_time": state_two_time, "gamma": gamma,
            "two_time_coarse": state_two_time_coarse, "stride": source.stride, "fast_lags": source.fast,
            "static_fraction": source.static_fraction, "ranges": ranges, "mean_source": mean_source,
            "passes": passes, "steps": steps, "lags": source.lags, "population": GROUPS * per_group,
            "clipped": clipped, "drift": (d_mean / mean[:, 1:2]).tolist() if mean is not None else None,
            "converged": converged, "reason": None if converged else reason}
