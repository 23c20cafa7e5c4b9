"""Stationary Gaussian fields streamed through spectral factors: the sampler of the stationary solver.

What: for every unit, the recurrent fields of a stationary Gaussian process with a given auto- and cross-covariance,
one block of steps at a time, for as long as the caller runs (docs/tied.md §4). Stage: used by
:mod:`symmft.theory.stationary`, which re-estimates the covariances between passes.

How: a covariance is a static part (one draw per unit) plus a decaying part up to lag L, drawn as white noise
convolved with the minimum-phase square root of its spectrum (:func:`kernel`: a causal kernel of length L). The
convolution is streamed block by block (overlap-add, FFT: O(log L) per sample), so the fields are seamless across
blocks. Beyond TWO_RATE lags the sampler is two-rate: the slow part of each mode is a process on a grid of
L / COARSE_LAGS steps (grid white noise through the minimum-phase root of the covariance of block means: the
noise's history filtered by the current root every block), linearly interpolated, and the fast kernel
(>= FAST_LAGS lags) carries what that leaves of the fine lags; :class:`LaggedProducts` measures the lagged products
at full rate over the fast range and as block means on the grid, so memory per unit no longer grows with L.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft

FFT_SERIES = 256  # series per FFT call (bounds the complex workspace)
TWO_RATE = 4096  # beyond this lag range the slow part of the covariance goes on a coarse grid
COARSE_LAGS = 512  # points of the coarse grid (its stride is lags / COARSE_LAGS: >= 16 steps once two-rate)
FAST_LAGS = 1024  # the shortest full-rate range once two-rate (at least 4 strides)
ROWS = 16  # series per direct convolution step (cache-sized)
DIRECT = 32  # kernels up to this many lags are applied by direct convolution (cheaper than two FFTs)
SHORT = 0.01  # two-rate: the fast remainder is cut where it stays below this fraction of the variance (noise)


def kernel(g: np.ndarray, static: float | None = None) -> tuple[np.ndarray, float, float]:
    """The causal convolution kernel (length L) whose white-noise output has covariance g - plateau tapered to
    zero at lag L; the plateau (a static per-unit part, >= 0); the clipped (negative) spectral weight.

    g: covariance at lags 0..L-1. The plateau is ``static`` when given (the population mean's square when nothing is
    quenched, :func:`quenched`; 0 for a fast remainder whose slow part the grid carries), else g's mean over its
    last quarter; the decaying part is tapered by a cos^2 ramp over [L/2, L) so that its spectrum is smooth. The
    kernel is the minimum-phase square root of that spectrum (cepstral method, on a circle of 4L against the
    cepstrum's aliasing): causal, with its weight on the most recent noise, so that when the covariance is re-
    estimated between passes the fields follow within their own correlation time (a zero-phase root would lag by L
    steps). A covariance supported on lags < L has a minimum-phase root supported on < L (Fejer-Riesz): the kernel's
    length is L, exact to ~1e-9.
    """
    L = len(g)
    plateau = max(0.0, float(g[3 * L // 4:].mean()) if static is None else float(static))
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


def layout(lags: int) -> tuple[int, int]:
    """(stride, fast) for a lag range: up to TWO_RATE one rate (stride 1, the whole range at full rate); beyond,
    the slow part on a grid of COARSE_LAGS points of ``stride`` steps and the fast remainder at full rate over
    ``fast`` >= 4 strides lags."""
    if lags <= TWO_RATE:
        return 1, lags
    stride = lags // COARSE_LAGS
    return stride, max(FAST_LAGS, 4 * stride)


def slow_covariance(grid: np.ndarray, stride: int, length: int) -> np.ndarray:
    """The covariance at lags 0..length-1 of a process on a grid of ``stride`` steps with covariance ``grid``
    (grid lags 0, 1, ...; its last value beyond), linearly interpolated between grid points, averaged over the
    phase within a stride: sum over grid lags k of grid(|k|) w(tau - k s), w the hat function's autocorrelation /
    s (the B-spline of order 3 on the grid). The fast remainder is the covariance minus this, so the two parts
    add up exactly at lags < length."""
    s = stride
    hat = 1.0 - np.abs(np.arange(-(s - 1), s)) / s
    w = np.correlate(hat, hat, "full") / s  # lags -(2s - 2) .. 2s - 2
    k = np.abs(np.arange(-2, length // s + 3))
    impulses = np.zeros((len(k) - 1) * s + 1)
    impulses[::s] = grid[np.minimum(k, len(grid) - 1)]
    smooth = np.convolve(impulses, w, mode="same")  # index i is lag (i - 2s)
    return smooth[2 * s:2 * s + length]


class LaggedProducts:
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
        """(auto, cross) means per series, copy and pair since the last take (NaN at lags no pair reached yet);
        resets the sums."""
        norm = np.where(self.pairs > 0, 2 * series * self.pairs, np.nan)
        out = self.auto_sum / norm, self.cross_sum / norm
        self.auto_sum, self.cross_sum, self.pairs = np.zeros(self.lags), np.zeros(self.lags), np.zeros(self.lags)
        return out

    def resize(self, lags: int, units: int | None = None, coarsen: int = 1) -> None:
        """Another lag range (the buffer keeps its latest samples; older ones unknown: zero), optionally only the
        first ``units`` of the second-to-last series axis, and ``coarsen`` > 1: the samples become means over
        groups of that many (a coarser grid: the buffer ends on a group boundary)."""
        buffer = self.buffer if units is None else self.buffer[..., :units, :]
        if coarsen > 1:
            buffer = buffer.reshape(*buffer.shape[:-1], -1, coarsen).mean(axis=-1)
            self.seen //= coarsen
        buffer = buffer[..., max(0, buffer.shape[-1] - lags):]
        pad = np.zeros((*buffer.shape[:-1], lags - buffer.shape[-1]), dtype=np.float32)
        self.buffer = np.concatenate([pad, buffer], axis=-1)
        self.seen = min(self.seen, buffer.shape[-1])  # samples of data, not padding
        self.lags, self.auto_sum, self.cross_sum, self.pairs = lags, np.zeros(lags), np.zeros(lags), np.zeros(lags)


def _short(d: np.ndarray, variance: float) -> np.ndarray:
    """The fast remainder d up to the shortest power-of-two range (>= 8) beyond whose half it stays below SHORT of
    the variance: what the slow part leaves at longer lags is the measured covariance's noise (wiggles of ~1e-3
    over hundreds of lags at the T = 1000 LSTM rule), which as part of the fast kernel would have a negative
    spectrum at low frequencies."""
    small = np.abs(d) <= SHORT * abs(variance)
    beyond = np.flatnonzero(~small)
    last = beyond[-1] if len(beyond) else 0  # the last lag above the cut
    L = 8
    while L // 2 <= last and L < len(d):
        L *= 2
    return d[:L]


def _filtered(kernels: list[np.ndarray], noise: np.ndarray, steps: int) -> np.ndarray:
    """The last ``steps`` samples of each mode's white noise ``noise`` (k, 2, S, history + steps; oldest first)
    through that mode's causal kernel, the whole history filtered by the kernel given now: (k, 2, S, steps)."""
    n = noise.shape[-1]
    size = fft.next_fast_len(n + max(len(c) for c in kernels), real=True)
    out = np.empty((*noise.shape[:-1], steps), dtype=np.float32)
    for m, c in enumerate(kernels):
        spectrum = fft.rfft(c, size)
        for s in range(0, noise.shape[2], FFT_SERIES):
            y = fft.irfft(fft.rfft(noise[:, m, s:s + FFT_SERIES], size, axis=-1, workers=2) * spectrum, size,
                          axis=-1, workers=2)
            out[:, m, s:s + FFT_SERIES] = y[..., n - steps:n]
    return out


def _stream(noise, kernels: list[np.ndarray], carry: np.ndarray, steps: int, live: int | None = None,
            out: np.ndarray | None = None) -> np.ndarray:
    """White noise through each mode's causal kernel, overlap-add: the next ``steps`` samples (k, 2, S, steps) of
    the two modes. ``noise``: the block's standard normals (k, 2, S, steps), or a generator to draw them from
    (mode, then FFT_SERIES series at a time); ``kernels``: the modes' kernels (length K), ``carry`` (k, 2, S,
    K - 1): what earlier noise still adds to the coming samples, updated in place (zero beyond its first ``live``
    lags when given: afterwards, beyond the kernels' length - 1); float32, into ``out`` when given.

    The convolutions are as long as this block's kernels need (steps + their length - 1), not the carry's reach:
    once two-rate the fast remainder is cut to a few lags (:func:`_short`: 8 at the T = 1000 LSTM rule, against
    2048-4096 of carry), which halves the sampler's FFTs (RESULTS §7.2a); kernels of at most DIRECT lags are
    applied directly, into the output (a few multiply-adds a sample instead of two FFTs and a copy). Needs
    ``steps`` >= the carry's length (a block is at least as long as the kernels' range)."""
    K, reach = carry.shape[-1] + 1, max(len(c) for c in kernels)
    live = K - 1 if live is None else min(int(live), K - 1)
    if steps < K - 1 or reach > K:
        raise ValueError(f"_stream: {steps} steps with a carry of {K - 1} and kernels of {reach} lags")
    n = fft.next_fast_len(steps + reach - 1, real=True)
    spectra = [fft.rfft(c, n) for c in kernels] if reach > DIRECT else None
    out = np.empty((*carry.shape[:-1], steps), dtype=np.float32) if out is None else out
    for m in range(2):
        for s in range(0, carry.shape[2], FFT_SERIES):
            shape = (carry.shape[0], carry[:, m, s:s + FFT_SERIES].shape[1], steps)
            z = (noise.standard_normal(shape, dtype=np.float32) if isinstance(noise, np.random.Generator)
                 else noise[:, m, s:s + FFT_SERIES])
            o, c = out[:, m, s:s + FFT_SERIES], carry[:, m, s:s + FFT_SERIES]
            if spectra is None:
                tail = np.zeros((*shape[:2], reach - 1), dtype=np.float32)
                for i in range(shape[0]):  # (k: out's rows of one map are contiguous)
                    _direct(z[i], np.asarray(kernels[m], dtype=np.float32), o[i], tail[i])
            else:
                y = fft.irfft(fft.rfft(z, n, axis=-1, workers=2) * spectra[m], n, axis=-1, workers=2)
                o[...] = y[..., :steps]
                tail = y[..., steps:steps + reach - 1]
            o[..., :live] += c[..., :live]  # what earlier noise adds (within this block)
            c[..., :reach - 1] = tail
            c[..., reach - 1:max(live, reach - 1)] = 0.0
    return out


def _direct(z: np.ndarray, c: np.ndarray, out: np.ndarray, tail: np.ndarray) -> None:
    """The full convolution of every series z (rows, steps) with the short kernel c along the last axis: its
    first ``steps`` samples into ``out``, the rest added to ``tail`` (rows, len(c) - 1); ROWS series at a time
    (their sums stay in cache: twice as fast as whole arrays at 2 x 1008 units)."""
    steps = z.shape[-1]
    term = np.empty((min(ROWS, len(z)), steps), dtype=np.float32)
    for r in range(0, len(z), ROWS):
        a, b, t = z[r:r + ROWS], out[r:r + ROWS], term[:len(z[r:r + ROWS])]
        np.multiply(a, c[0], out=b)
        for j in range(1, len(c)):
            b[:, j:] += np.multiply(a[:, :steps - j], c[j], out=t[:, :steps - j])
            tail[r:r + ROWS, :j] += a[:, steps - j:] * c[j]


def _interpolated(points: np.ndarray, stride: int, out: np.ndarray | None = None) -> np.ndarray:
    """Grid points (..., n + 1) linearly interpolated at the stride's n x stride steps from the first point on:
    as a product with the (n + 1, n x stride) matrix of hat weights (one BLAS call, no temporaries of the
    block's size) while n is small, into ``out`` when given; else per grid interval."""
    n = points.shape[-1] - 1
    theta = np.arange(stride, dtype=np.float32) / stride
    if n > 16:
        out = np.empty((*points.shape[:-1], n, stride), dtype=np.float32)
        np.multiply(np.diff(points, axis=-1)[..., None], theta, out=out)
        out += points[..., :-1, None]
        return out.reshape(*points.shape[:-1], n * stride)
    weights = np.zeros((n + 1, n * stride), dtype=np.float32)
    for i in range(n):
        weights[i, i * stride:(i + 1) * stride] = 1 - theta
        weights[i + 1, i * stride:(i + 1) * stride] += theta
    return np.matmul(points, weights, out=out)


class StreamingFields:
    """The recurrent fields of every unit, one block of steps at a time (a :class:`~symmft.theory.site.FieldSource`
    for the steps of the current block); records each vector's values for the lagged products.

    Each mode's field is a fast part (white noise through a causal kernel of ``fast`` lags, overlap-add) plus a
    slow part. One rate (stride 1): the slow part is a static draw per unit (the plateau). Two-rate (stride > 1):
    the static draw plus a process on the grid of ``stride`` steps -- grid white noise through the minimum-phase
    root of the coarse covariance's decaying part (:func:`kernel` on the grid: the same construction, COARSE_LAGS
    grid lags), applied every block to the grid noise's whole history -- linearly interpolated between grid
    points; the fast kernel then carries what the interpolated slow part leaves of the fine lags
    (:func:`slow_covariance`)."""

    def __init__(self, maps: dict, shape: tuple[int, int], lags: int, rng: np.random.Generator):
        self.maps, self.shape, self.rng = maps, shape, rng
        self.static = {node: rng.standard_normal((k, 2, *shape)).astype(np.float32) for node, k in maps.items()}
        self.carry: dict[int, np.ndarray] = {}
        self.live: dict[int, int] = {}  # how many leading lags of each carry may be nonzero
        self._held: dict[int, dict] = {}  # each node's block arrays (values and recorded: until the next draw)
        # The grid's white noise, its last COARSE_LAGS - 1 points: each block filters the whole history by the
        # kernel of the moment, so a re-estimated slow covariance acts at once. Streamed by overlap-add instead
        # (each noise filtered once, by the kernel of its own time) the slow field followed a change only over
        # L steps: at the T = 1000 LSTM rule and L = 2^19 Q_c took ~3x10^5 steps to settle, the networks ~7x10^4.
        self.grid_noise: dict[int, np.ndarray] = {}
        self.last: dict[int, np.ndarray | None] = {node: None for node in maps}  # slow part at the block's start
        self.lags = 0
        self.set_lags(lags)
        self.t = 0

    def set_lags(self, lags: int) -> None:
        """Lag range ``lags``: kernels of ``fast`` lags, blocks of ``fast`` steps; carries kept (zero-padded when
        longer, cut when shorter). The grid's noise history: fresh (stationary) for a new grid process; when the
        grid turns r times coarser (the range doubled), its latest points summed by r / sqrt(r) onto the new
        grid's (white noise of the same variance; the slow field stays nearly continuous), older ones fresh."""
        stride, fast = layout(lags)
        old_stride = layout(self.lags)[0] if self.lags else stride
        self.lags, self.stride, self.fast, self.block = lags, stride, fast, fast
        for node, k in self.maps.items():
            old = self.carry.get(node)
            carry = np.zeros((k, 2, *self.shape, fast - 1), dtype=np.float32)
            if old is not None:
                n = min(old.shape[-1], fast - 1)
                carry[..., :n] = old[..., :n]
            self.carry[node] = carry
            self.live.pop(node, None)
            if stride != old_stride or node not in self.grid_noise:
                noise = self.rng.standard_normal((k, 2, *self.shape, COARSE_LAGS - 1), dtype=np.float32)
                if old_stride > 1 and stride > old_stride:
                    r = stride // old_stride
                    kept = (COARSE_LAGS - 1) // r
                    old_noise = self.grid_noise[node][..., -kept * r:]
                    noise[..., -kept:] = old_noise.reshape(*old_noise.shape[:-1], kept, r).sum(axis=-1) / math.sqrt(r)
                else:
                    self.last[node] = None
                self.grid_noise[node] = noise

    def keep(self, units: int) -> None:
        """Keep the first ``units`` units of every group."""
        self.shape = (self.shape[0], units)
        self.static = {node: a[..., :units] for node, a in self.static.items()}
        self.carry = {node: a[..., :units, :].copy() for node, a in self.carry.items()}
        self.grid_noise = {node: a[..., :units, :].copy() for node, a in self.grid_noise.items()}
        self.last = {node: None if a is None else a[..., :units].copy() for node, a in self.last.items()}

    def noise_plan(self) -> list[tuple]:
        """The standard normals a block needs, in the order :meth:`draw` would draw them from the generator:
        (name, shape, dtype, per mode) for :class:`~symmft.theory.blocks.BlockNormals` (:meth:`draw`'s
        ``noise``): per vector node the fine noise of its modes (as :func:`_stream` draws it) and, two-rate, the
        grid's fresh points."""
        B, s = self.block, self.stride
        plan = []
        for node, k in self.maps.items():
            plan.append((f"fine {node}", (k, 2, self.shape[0] * self.shape[1], B), np.float32, True))
            if s > 1:
                plan.append((f"grid {node}", (k, 2, *self.shape, B // s), np.float32, False))
        return plan

    def draw(self, gamma: dict, static: dict | None = None, noise: dict | None = None) -> float:
        """Fields for the next block from the covariances ``gamma`` ({node: (auto, cross, coarse auto, coarse
        cross)}: lags 0..fast-1, and means over blocks of a stride at grid lags 0..COARSE_LAGS-1 when two-rate,
        NaN where not yet measured) and their static parts ``static`` ({node: (auto, cross)}; None: each
        covariance's plateau, :func:`kernel`); returns the largest clipped spectral weight. ``noise``: the block's
        standard normals (:meth:`noise_plan`; e.g. drawn ahead in another thread), else drawn here from the
        generator given at construction. ``values`` and ``recorded`` are overwritten by the next draw."""
        B, s = self.block, self.stride
        clipped, self.static_fraction = 0.0, 0.0  # the largest plateau drawn as a static field, / variance
        self.values, self.recorded = {}, {}
        for node, k in self.maps.items():
            auto, cross, coarse_auto, coarse_cross = gamma[node]
            fast, slow, statics = [], [], []
            for sign in (1.0, -1.0):
                g = auto + sign * cross
                given = None if static is None else static[node][0] + sign * static[node][1]
                if s == 1:
                    c, plateau, cl = kernel(g, given)
                else:
                    G = coarse_auto + sign * coarse_cross
                    reach = measured_reach(G)  # not yet measured beyond
                    if given is None:  # the plateau rule: the grid kernel is as long as what is measured
                        G = G[:max(8, 2 ** int(math.log2(max(reach, 1))))].copy()  # (a power of two, tapered)
                        G[np.isnan(G)] = G[np.isfinite(G)][-1] if np.isfinite(G).any() else g[0]
                    else:  # no plateau to hold the rest: the measured decay continued (a cut feeds back, below)
                        G = _continued(G, reach, given)
                    # A block mean's variance G(0) also holds the fast part (its sum / stride): on the grid that
                    # would be white noise, which interpolated is a bump of width 2 strides that the fast
                    # remainder would have to cancel with negative weight. The grid takes the slow part's own
                    # G(0), extrapolated from G(1), G(2); the fast part keeps the rest.
                    G[0] = min(G[0], 2 * G[1] - G[2])
                    root, plateau, cl_slow = kernel(G, given)
                    grid = plateau + np.correlate(root, root, "full")[len(root) - 1:]  # what the grid carries
                    c, _, cl = kernel(_short(g - slow_covariance(grid, s, len(g)), g[0]), static=0.0)
                    slow.append(root)
                    cl = max(cl, cl_slow)
                fast.append(c)
                statics.append(plateau)
                clipped = max(clipped, cl)
                self.static_fraction = max(self.static_fraction, plateau / max(abs(float(g[0])), 1e-300))
            # Every part carries the copies' 1 / sqrt(2) (a, b = (plus +- minus) / sqrt(2)): folded into the
            # kernels, the static and the grid points, so the block's arrays are not passed over for it.
            half = np.float32(1 / math.sqrt(2))
            fast = [np.asarray(c) * half for c in fast]
            buffers = self._buffers(node, k)
            modes = _stream(self.rng if noise is None else noise[f"fine {node}"], fast,
                            self.carry[node].reshape(k, 2, -1, self.fast - 1), B, self.live.get(node),
                            buffers["modes"].reshape(k, 2, -1, B))
            self.live[node] = max(len(c) for c in fast) - 1
            modes = modes.reshape(k, 2, *self.shape, B)
            root = half * np.sqrt(np.array(statics, dtype=np.float32)).reshape(1, 2, 1, 1)
            if s == 1:
                modes += (root * self.static[node])[..., None]
            else:  # the slow part: grid points over the block, interpolated from the last one
                fresh = (self.rng.standard_normal((k, 2, *self.shape, B // s), dtype=np.float32) if noise is None
                         else noise[f"grid {node}"])
                history = np.concatenate([self.grid_noise[node], fresh], axis=-1)
                self.grid_noise[node] = history[..., B // s:]
                points = _filtered(slow, history.reshape(k, 2, -1, history.shape[-1]), B // s)
                points = half * points.reshape(k, 2, *self.shape, B // s) + (root * self.static[node])[..., None]
                start = points[..., :1] if self.last[node] is None else self.last[node][..., None]
                points = np.concatenate([start, points], axis=-1)
                self.last[node] = points[..., -1].copy()
                modes += _interpolated(points, s, buffers["slow"] if B // s <= 16 else None)
            values = buffers["values"]  # copies a, b = (plus +- minus) / sqrt(2)
            np.add(modes[:, 0], modes[:, 1], out=values[:, 0])
            np.subtract(modes[:, 0], modes[:, 1], out=values[:, 1])
            self.values[node] = values
            self.recorded[node] = buffers["recorded"]
        return clipped

    def _buffers(self, node: int, k: int) -> dict[str, np.ndarray]:
        """The block's arrays for a node, kept from block to block while their shape holds (fresh arrays of a
        block's size cost the system time of filling their pages: ~0.2 of the step at 2 x 1008 units)."""
        shape = (k, 2, *self.shape, self.block)
        held = self._held.get(node)
        if held is None or held["values"].shape != shape:
            held = self._held[node] = {name: np.empty(shape, dtype=np.float32) for name in ("modes", "values")}
            held["recorded"] = np.empty(shape[1:], dtype=np.float32)
        if self.stride > 1 and "slow" not in held:  # the interpolated slow part, two-rate
            held["slow"] = np.empty(shape, dtype=np.float32)
        return held

    def begin(self, t: int) -> None:
        self.t = t

    def fields(self, node: int, v: np.ndarray) -> np.ndarray:
        self.recorded[node][..., self.t] = v
        return self.values[node][..., self.t]


def _continued(G: np.ndarray, reach: int, static: float) -> np.ndarray:
    """The coarse covariance G with its unmeasured lags (>= ``reach``: NaN since the grid last changed) continued
    by the measured decay above ``static``: exponential at the rate between lags reach/2 and reach (at least
    1/reach: never held or grown), from the mean of the last measured eighth. Cutting the kernel at the measured
    reach instead (tapered to ``static`` from reach/2) shortens the fields' correlations, which shortens the
    measured ones: the loop settles on the cut (the T = 1000 LSTM rule: Q_c 59 at L = 2^16, 81 at 2^18, 100 at
    2^19 against tied networks' ~115, with the reach -- a grid point per stride of steps -- filling for L steps
    after each change of grid)."""
    G = G.copy()
    if reach >= len(G):
        return G
    if reach < 16:  # too little to fit: hold what was last measured, decaying over the reach
        last, rate = (float(G[reach - 1]) if reach else 0.0) - static, 1.0 / max(reach, 1)
    else:
        a, b = G[reach // 2 - reach // 16:reach // 2].mean() - static, G[reach - reach // 8:reach].mean() - static
        last = b
        rate = max(math.log(a / b) / (15 * reach / 32), 1.0 / reach) if a > 0 and b > 0 else 1.0 / reach  # centres
    G[reach:] = static + max(last, 0.0) * np.exp(-rate * (np.arange(reach, len(G)) - reach + reach // 16))
    return G


def measured_reach(g: np.ndarray) -> int:
    """How many leading lags of ``g`` are measured (finite)."""
    finite = np.isfinite(g)
    return len(g) if finite.all() else int(np.argmin(finite))
