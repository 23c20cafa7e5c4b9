"""The stationary state of the tied single-site process by a streaming spectral sampler (docs/tied.md §4).

What: the stationary moments, c* and two-time correlations of the tied theory when the memory is too long for
the causal solver (whose cost grows like T^2). Stage: called by :func:`symmft.theory.tied.analyze_tied`.

How: in the stationary state each recurrent field is a stationary Gaussian process: for the vector v, the a/b
pair has auto-covariance gamma(tau) = <v_t v_{t+tau}> (both copies) and cross-covariance kappa(tau) =
<v^a_t v^b_{t+tau}> (symmetrised: the copies are exchangeable). Its sum and difference modes (a +- b)/sqrt(2)
are independent with covariances gamma +- kappa. Each mode is a static part (the plateau at long lags, e.g. the
quenched per-unit means: one draw per unit) plus a decaying part up to lag L, drawn as white noise convolved
with the minimum-phase square root of its spectrum (a causal kernel of length L). The convolution is streamed
block by block (overlap-add, FFT: O(log L) per sample), so the fields are seamless across blocks and the units
run on for as long as needed: they are never restarted from zero. Every pass (a whole number of blocks)
re-estimates gamma and kappa from the pass's own v (lagged products by FFT against the last L samples) and the
next pass draws from them: the map gamma -> gamma iterated to self-consistency (with Aitken's extrapolation)
while the units stay warm, so a memory longer than a pass costs passes, not a longer window. L doubles while
the decaying part has not decayed by L/2 (the window adapts to the measured correlation time). Identical inputs
(c_x = 1): the two copies are one trajectory (C = Q exactly, as in the causal solver), so they are run as
independent units instead (twice the population for the same cost). Memory: float32 noise carries, field
blocks and lag buffers, ~(24 k + 32) L bytes per unit for k matrices per vector, capped by MEMORY_BYTES (the
population is reduced to fit and the caller told). Infinite input size only (finite m conditions on one input
sequence, which is not stationary: use the transient). docs/tied.md §4.
"""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
from scipy import fft

from symmft.cell.trace import Cell
from symmft.theory.site import Draws, SiteOps, consumers, moments

GROUPS = 16
MEMORY_BYTES = 1.5e9  # noise carries, field blocks, lag buffers (float32)
MIN_PASS = 1024  # steps per pass at least: moments and lagged products average over it
MEASURE = 6  # passes at least that the result averages once settled (their spread is part of its error)
EXTRAPOLATE = 0.75  # the largest pass-to-pass ratio the acceleration trusts (a jump of at most 3x the step)
ADEQUATE = 0.05  # the decaying covariance at lag L/2, as a fraction of its lag-1 value, must be below this
FFT_SERIES = 256  # series per FFT call (bounds the complex workspace)
MAX_LAGS = 32768  # the longest lag range: at it the LSTM's memory budget leaves ~350 units (the T = 1000 rule needs more)


def kernel(g: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The causal convolution kernel (length L) whose white-noise output has covariance g - plateau tapered to
    zero at lag L; the plateau (a static per-unit part, >= 0); the clipped (negative) spectral weight.

    g: covariance at lags 0..L-1. The plateau is g's mean over its last quarter; the decaying part is tapered
    by a cos^2 ramp over [L/2, L) so that its spectrum is smooth. The kernel is the minimum-phase square root of
    that spectrum (cepstral method, on a circle of 4L against the cepstrum's aliasing): causal, with its weight
    on the most recent noise, so that when the covariance is re-estimated between passes the fields follow
    within their own correlation time (a zero-phase root would lag by L steps). A covariance supported on lags
    < L has a minimum-phase root supported on < L (Fejer-Riesz): the kernel's length is L, exact to ~1e-9."""
    L = len(g)
    plateau = max(0.0, float(g[3 * L // 4:].mean()))
    taper = np.ones(L)
    taper[L // 2:] = np.cos(0.5 * np.pi * np.linspace(0.0, 1.0, L - L // 2)) ** 2
    d = (g - plateau) * taper
    n = 4 * L
    spectrum = fft.rfft(np.concatenate([d, np.zeros(n - 2 * L + 1), d[:0:-1]])).real
    clipped = float(-spectrum.clip(max=0).sum() / max(spectrum.clip(min=0).sum(), 1e-300))
    top = spectrum.max()
    if top <= 0:
        return np.zeros(L), plateau, clipped
    cepstrum = fft.irfft(0.5 * np.log(spectrum.clip(min=1e-12 * top)), n)
    cepstrum[1:n // 2] *= 2  # fold onto positive quefrencies: the causal, minimum-phase factor
    cepstrum[n // 2 + 1:] = 0.0
    return fft.irfft(np.exp(fft.rfft(cepstrum)), n)[:L], plateau, clipped


def adequate(g: np.ndarray) -> bool:
    """Whether g's decaying part (above its plateau) is below ADEQUATE of its lag-1 value by lag L/2 (a part
    below 1% of g(0) counts as decayed: a lag-0 spike over a plateau, e.g. quenched biases, has none)."""
    L = len(g)
    plateau = g[3 * L // 4:].mean()
    return bool(abs(g[L // 2] - plateau) <= max(ADEQUATE * abs(g[min(1, L - 1)] - plateau), 0.01 * abs(g[0])))


class _Lagged:
    """Sums over a stream of blocks of x_t y_{t-tau}, tau < lags, over series: auto (a a + b b) and cross
    (a b + b a) for arrays (copy, ...series, time). FFT against a buffer of each series' last ``lags`` samples."""

    def __init__(self, shape: tuple, lags: int, cross: bool):
        self.lags, self.cross = lags, cross
        self.buffer = np.zeros((*shape, lags), dtype=np.float32)
        self.auto_sum, self.cross_sum, self.pairs = np.zeros(lags), np.zeros(lags), np.zeros(lags)
        self.seen = 0  # samples streamed so far: the buffer's older part is zero, not data, until it is full

    def add(self, block: np.ndarray) -> None:
        L, B = self.lags, block.shape[-1]
        n = fft.next_fast_len(2 * L + B, real=True)
        x = np.concatenate([self.buffer, block], axis=-1).reshape(2, -1, L + B)
        acc = np.zeros((2, n // 2 + 1), dtype=np.complex128)
        for s in range(0, x.shape[1], FFT_SERIES):
            X = fft.rfft(x[:, s:s + FFT_SERIES], n, axis=-1, workers=2)
            y = np.zeros_like(x[:, s:s + FFT_SERIES])
            y[..., L:] = x[:, s:s + FFT_SERIES, L:]
            Y = fft.rfft(y, n, axis=-1, workers=2)
            acc[0] += (Y * X.conj()).sum(axis=(0, 1))
            if self.cross:
                acc[1] += (Y[0] * X[1].conj() + Y[1] * X[0].conj()).sum(axis=0)
        out = fft.irfft(acc, n, axis=-1)[:, :L]
        self.auto_sum += out[0]
        self.cross_sum += out[1]
        self.pairs += np.clip(B + min(self.seen, L) - np.arange(L), 0, B)  # t - tau within the data seen
        self.seen += B
        self.buffer = x[..., B:].reshape(self.buffer.shape).copy()

    def take(self, series: int) -> tuple[np.ndarray, np.ndarray]:
        """(auto, cross) means per series, copy and pair since the last take; resets the sums."""
        norm = 2 * series * np.maximum(self.pairs, 1)
        out = self.auto_sum / norm, self.cross_sum / norm
        self.auto_sum, self.cross_sum, self.pairs = np.zeros(self.lags), np.zeros(self.lags), np.zeros(self.lags)
        return out

    def resize(self, lags: int, units: int | None = None) -> None:
        """A longer lag range (the buffer keeps its samples; older ones unknown: zero), and optionally only the
        first ``units`` of the second-to-last series axis."""
        buffer = self.buffer if units is None else self.buffer[..., :units, :]
        pad = np.zeros((*buffer.shape[:-1], lags - self.lags), dtype=np.float32)
        self.buffer = np.concatenate([pad, buffer], axis=-1)
        self.lags, self.auto_sum, self.cross_sum, self.pairs = lags, np.zeros(lags), np.zeros(lags), np.zeros(lags)


class StreamingFields:
    """The recurrent fields of every unit, one block of steps at a time (a :class:`~symmft.theory.site.FieldSource`
    for the steps of the current block); records each vector's values for the lagged products."""

    def __init__(self, maps: dict, shape: tuple[int, int], lags: int, rng: np.random.Generator):
        self.maps, self.shape, self.rng = maps, shape, rng
        self.static = {node: rng.standard_normal((k, 2, *shape)).astype(np.float32) for node, k in maps.items()}
        self.carry: dict[int, np.ndarray] = {}
        self.set_lags(lags)
        self.t = 0

    def set_lags(self, lags: int) -> None:
        """Kernels of length ``lags``, blocks of ``lags`` steps; carries are kept (zero-padded when longer)."""
        self.lags, self.block = lags, lags
        for node, k in self.maps.items():
            old = self.carry.get(node)
            carry = np.zeros((k, 2, *self.shape, lags - 1), dtype=np.float32)
            if old is not None:
                carry[..., :old.shape[-1]] = old
            self.carry[node] = carry

    def keep(self, units: int) -> None:
        """Keep the first ``units`` units of every group."""
        self.shape = (self.shape[0], units)
        self.static = {node: a[..., :units] for node, a in self.static.items()}
        self.carry = {node: a[..., :units, :].copy() for node, a in self.carry.items()}

    def draw(self, gamma: dict) -> float:
        """Fields for the next block from the covariances ``gamma`` ({node: (auto, cross)}, lags 0..L-1); returns
        the largest clipped spectral weight."""
        B, K, clipped = self.block, self.lags, 0.0
        n = fft.next_fast_len(B + K - 1, real=True)
        self.values, self.recorded = {}, {}
        for node, k in self.maps.items():
            auto, cross = gamma[node]
            kernels, scales = [], []
            for g in (auto + cross, auto - cross):
                c, plateau, cl = kernel(g)
                kernels.append(fft.rfft(c, n))
                scales.append(math.sqrt(plateau))
                clipped = max(clipped, cl)
            carry = self.carry[node].reshape(k, 2, -1, K - 1)
            modes = np.empty((k, 2, carry.shape[2], B), dtype=np.float32)
            for m in range(2):
                for s in range(0, carry.shape[2], FFT_SERIES):
                    z = self.rng.standard_normal((k, carry[:, m, s:s + FFT_SERIES].shape[1], B), dtype=np.float32)
                    y = fft.irfft(fft.rfft(z, n, axis=-1, workers=2) * kernels[m], n, axis=-1, workers=2)
                    y = y[..., :B + K - 1]
                    y[..., :K - 1] += carry[:, m, s:s + FFT_SERIES]
                    modes[:, m, s:s + FFT_SERIES] = y[..., :B]
                    carry[:, m, s:s + FFT_SERIES] = y[..., B:]
            modes = modes.reshape(k, 2, *self.shape, B)
            modes += (np.array(scales, dtype=np.float32).reshape(1, 2, 1, 1) * self.static[node])[..., None]
            modes *= np.float32(1 / math.sqrt(2))
            values = np.empty_like(modes)  # copies a, b = (plus +- minus) / sqrt(2)
            np.add(modes[:, 0], modes[:, 1], out=values[:, 0])
            np.subtract(modes[:, 0], modes[:, 1], out=values[:, 1])
            self.values[node] = values
            self.recorded[node] = np.empty((2, *self.shape, B), dtype=np.float32)
        return clipped

    def begin(self, t: int) -> None:
        self.t = t

    def fields(self, node: int, v: np.ndarray) -> np.ndarray:
        self.recorded[node][..., self.t] = v
        return self.values[node][..., self.t]


def _budget(maps: dict, lags: int) -> int:
    """Units per copy that fit MEMORY_BYTES at this lag range: per unit and matrix two modes' carries and the
    block's modes and fields (3 x 2 x L); per vector its recorded block, lag buffer and the FFT's input
    (~4 x 2 copies x L); float32."""
    per_unit = 4 * lags * (6 * sum(maps.values()) + 8 * len(maps))
    return max(GROUPS * 2, int(MEMORY_BYTES / per_unit))


def _pooled(measured: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the measurement passes ((GROUPS, S, 3) each): the larger of the passes'
    spread and the groups' (the passes' includes the common gamma's noise fed back)."""
    passes_mean = np.array([p.mean(axis=0) for p in measured])
    group_se = np.array([p.std(axis=0, ddof=1) / math.sqrt(GROUPS) for p in measured])
    spread = passes_mean.std(axis=0, ddof=1)
    return passes_mean.mean(axis=0), np.maximum(spread, np.sqrt((group_se ** 2).mean(axis=0))) / math.sqrt(len(measured))


def solve_stationary(cell: Cell, h: dict, *, lags: int, population: int, seed: int, max_lags: int = MAX_LAGS,
                     max_steps: int = 2 ** 20, initial: dict | None = None,
                     progress: Callable[[dict], None] | None = None, target_error: float | None = None) -> dict:
    """Run the streaming sampler, re-estimating the field covariances every pass, until the second and cross
    moments move by less than 3 standard errors or 0.5% between passes (geometric extrapolation of what is
    left), the pass is free of drift, the lag range covers the decaying covariances and the clipped spectral weight is < 1%; or
    until ``max_steps``. ``lags``: the starting lag range L (doubled up to ``max_lags`` as needed);
    ``initial``: starting covariances ({node: (auto, cross)}, e.g. the transient's; plateau beyond).
    ``progress``: called after every pass with {pass, steps, lags, population, Q, C, standard_error_Q,
    seconds, ...}.
    ``target_error``: once converged, keep averaging passes until every Q's standard error is at most this
    fraction of it (or ``max_steps``): the run length sized to the error asked for.

    Returns moments (S, 3) mean and standard error, the states' two-time functions (lags < L), passes, steps,
    the final L, population (per copy; reduced if MEMORY_BYTES demanded it), clipped weight, the relative drift
    of Q and C within the last pass, the last field covariances ``gamma``, and ``converged`` with ``reason``
    when it is False. The second and cross moments are both watched for convergence and drift."""
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
    ops = SiteOps(cell, run_h, source, draws, shape)
    states = [np.zeros((2, *shape)) for _ in cell.states]
    gamma = {node: (np.zeros(lags), np.zeros(lags)) for node in maps}
    for node, (auto, cross) in (initial or {}).items():
        if node in gamma:
            n = min(len(auto), lags)
            gamma[node][0][:], gamma[node][1][:] = auto[n - 1], cross[n - 1]
            gamma[node][0][:n], gamma[node][1][:n] = auto[:n], cross[:n]
            if identical:
                gamma[node][1][:] = 0.0
    lagged = {node: _Lagged((2, *shape), lags, cross=not identical) for node in maps}
    watch = min(per_group, max(1, 256 // GROUPS))  # units per group whose states give the two-time function
    two_time = [_Lagged((2, GROUPS, watch), lags, cross=False) for _ in cell.states]
    previous, change, converged, reason = None, None, False, "max_steps"
    steps, passes, mean, started, measured = 0, 0, None, time.process_time(), []
    while steps < max_steps:
        blocks = max(1, -(-MIN_PASS // source.block))
        record = np.zeros((2, GROUPS, len(cell.states), 3))  # the pass's two halves
        clipped = 0.0
        for b in range(blocks):
            clipped = max(clipped, source.draw(gamma))
            B = source.block
            history = np.empty((len(states), 2, GROUPS, watch, B), dtype=np.float32)
            with np.errstate(all="ignore"):
                for t in range(B):
                    states = ops.step(t, states)
                    record[int(2 * (b * B + t) >= blocks * B)] += moments(states)
                    for i, s in enumerate(states):
                        history[i, ..., t] = s[:, :, :watch]
            for node, lag in lagged.items():
                lag.add(source.recorded[node])
            for i, lag in enumerate(two_time):
                lag.add(history[i])
            steps += B
        passes += 1
        record /= blocks * source.block / 2
        per = record.mean(axis=0)
        if identical:
            per[..., 2] = per[..., 1]  # one trajectory: C = Q
        mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / math.sqrt(GROUPS)
        units, used = GROUPS * per_group, gamma
        gamma = {node: lag.take(units) for node, lag in lagged.items()}
        state_two_time = np.array([lag.take(GROUPS * watch)[0] for lag in two_time])
        if identical:
            gamma = {node: (auto, np.zeros_like(cross)) for node, (auto, cross) in gamma.items()}
        if not np.all(np.isfinite(mean)):
            reason = "nan"
            break
        # Watched: the second and cross moments (S, 2), on the scale of the second moment.
        watched, watched_se, scale = mean[:, 1:], se[:, 1:], np.abs(mean[:, 1:2])
        d = record[1, :, :, 1:] - record[0, :, :, 1:]
        d_mean, d_se = d.mean(axis=0), d.std(axis=0, ddof=1) / math.sqrt(GROUPS)
        drifting = bool(np.any((np.abs(d_mean) > 5 * d_se) & (np.abs(d_mean) > 0.01 * scale)))
        short = not all(adequate(auto) for auto, _ in gamma.values())
        settled = False
        if previous is not None:
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
            if not measured and last is not None and abs(change[k]) > 5 * watched_se[k] and 0.1 < r[k] < 1:
                w = min(r[k], EXTRAPOLATE) / (1 - min(r[k], EXTRAPOLATE))
                gamma = {node: tuple(new + w * (new - old) for new, old in zip(gamma[node], used[node]))
                         for node in gamma}
                change = None  # the next pass starts a new geometric sequence
        previous = watched
        if progress is not None:
            progress({"pass": passes, "steps": steps, "lags": source.lags, "population": GROUPS * per_group,
                      "Q": mean[:, 1].tolist(), "C": mean[:, 2].tolist(), "standard_error_Q": se[:, 1].tolist(),
                      "standard_error_C": se[:, 2].tolist(), "drifting": drifting,
                      "short": short, "clipped": clipped, "seconds": time.process_time() - started})
        if short and source.lags < max_lags and not measured:  # the window is shorter than the correlation time: double it
            lags = min(2 * source.lags, max_lags)
            gamma = {node: tuple(np.concatenate([g, np.full(lags - len(g), g[-1])]) for g in pair)
                     for node, pair in gamma.items()}
            per_group = min(per_group, max(2, _budget(maps, lags) // GROUPS))  # fewer units if memory demands
            states = [s[..., :per_group] for s in states]
            ops.keep(per_group)
            source.keep(per_group)
            source.set_lags(lags)
            for lag in lagged.values():
                lag.resize(lags, per_group)
            for lag in two_time:
                lag.resize(lags, min(watch, per_group))
            watch = min(watch, per_group)
            previous, change = None, None
            continue
        if measured or (settled and not drifting and not short and clipped < 0.01):
            # Settled: measure over the passes from here on. A slow relaxation (the cross moment of the LSTM at
            # mu_f = 4 creeps by ~5% a pass, within one pass's noise) shows only over many passes: converged
            # when the first and second halves of the measured passes (at least MEASURE) agree within 2
            # standard errors or 0.5%; otherwise the oldest quarter is dropped as burn-in and the run goes on
            # (strict on purpose: a false alarm costs passes, a missed drift a biased number).
            # Every group draws its fields from the common gamma, so the groups' spread misses gamma's own
            # noise fed back (~1% a pass at the LSTM's mu_f = 3, P = 2000, twice the groups' error): the
            # standard errors come from the passes' spread as well.
            measured.append(per)
            m = len(measured)
            if m >= MEASURE:
                (first, first_se), (second, second_se) = _pooled(measured[:m // 2]), _pooled(measured[m - m // 2:])
                q = np.abs(first[:, 1:2])
                agree = np.all(np.abs(first - second)[:, 1:] <= np.maximum(2 * np.hypot(first_se, second_se)[:, 1:],
                                                                            0.005 * q))
                if not agree:
                    del measured[:max(1, m // 4)]
                elif target_error is None or np.all(_pooled(measured)[1][:, 1] <= target_error * np.abs(mean[:, 1])):
                    converged = True
                    break
            reason = "drift"
            continue
        reason = "lags" if short else "clipped" if clipped >= 0.01 else "drift" if drifting else "max_steps"
    if len(measured) > 1:
        mean, se = _pooled(measured)
    return {"mean": mean, "standard_error": se, "two_time": state_two_time, "gamma": gamma,
            "passes": passes, "steps": steps, "lags": source.lags, "population": GROUPS * per_group,
            "clipped": clipped, "drift": (d_mean / mean[:, 1:2]).tolist() if mean is not None else None,
            "converged": converged, "reason": None if converged else reason}
