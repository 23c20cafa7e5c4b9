"""The stationary state of the tied single-site process by a spectral sampler (docs/tied.md §4).

What: the stationary moments, c* and two-time correlations of the tied theory when the memory is too long for
the causal solver (whose cost grows like T^2). Stage: called by :func:`symmft.theory.tied.analyze_tied`.

How: in the stationary state each recurrent field is a stationary Gaussian process: for the vector v, the a/b
pair has auto-covariance gamma(tau) = <v_t v_{t+tau}> (both copies) and cross-covariance kappa(tau) =
<v^a_t v^b_{t+tau}> (symmetrised in tau and a <-> b: the copies are exchangeable). Its sum and difference
modes (a +- b)/sqrt(2) are independent with spectra gamma +- kappa. On a window of W steps each mode is drawn by
circulant embedding (size 2W, FFT: O(W log W) per unit); negative eigenvalues of the embedding (from noise in
the estimated gamma) are clipped and their weight reported. Units start from the zero state at the window's
start, the first half is burn-in, and gamma, kappa are re-estimated from the second half (FFT
autocorrelations) up to lag W/4, held constant beyond (the plateau of quenched per-unit means). This map
gamma -> gamma is iterated from the transient's estimate to self-consistency. Memory: units go through in chunks
so the fields of a chunk take ~CHUNK_BYTES. Infinite input size only (finite m conditions on one input
sequence, which is not stationary: use the transient).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft

from symmft.cell.trace import Cell
from symmft.theory.site import Draws, SiteOps, consumers, moments

GROUPS = 16
CHUNK_BYTES = 2e8  # fields of one chunk of units (float64)


def _lagged(x: np.ndarray, y: np.ndarray, lags: int) -> np.ndarray:
    """sum over units of sum_t x_t y_{t+tau} / (count of t), tau = 0..lags-1; x, y (..., T) on the last axis."""
    T = x.shape[-1]
    n = fft.next_fast_len(2 * T)
    fx, fy = fft.rfft(x, n, axis=-1), fft.rfft(y, n, axis=-1)
    corr = fft.irfft(np.conj(fx) * fy, n, axis=-1)[..., :lags]
    return corr.reshape(-1, lags).sum(axis=0) / (T - np.arange(lags))


class SpectralFields:
    """Fields of one chunk of units over the whole window, drawn from the current spectra; records v."""

    def __init__(self, spectra: dict, maps: dict, shape: tuple[int, int], window: int, draws: Draws):
        self.t, self.window, self.recorded = 0, window, {}
        self.values = {}
        N = 2 * window
        for node, (plus, minus) in spectra.items():
            k, (G, p) = maps[node], shape
            modes = []
            for spectrum in (plus, minus):  # a real sample: its rfft has variance N lambda_k (halves in Re, Im)
                half = np.sqrt(N * spectrum[: N // 2 + 1] / 2)
                half[[0, -1]] *= math.sqrt(2)
                z = draws.rng.standard_normal((k, G, p, N // 2 + 1, 2))
                z[..., [0, -1], 1] = 0.0  # the zero and Nyquist frequencies are real
                modes.append(fft.irfft(half * (z[..., 0] + 1j * z[..., 1]), N, axis=-1, workers=2)[..., :window])
            self.values[node] = np.stack([(modes[0] + modes[1]), (modes[0] - modes[1])], axis=1) / math.sqrt(2)
            self.recorded[node] = np.empty((2, G, p, window))

    def begin(self, t: int) -> None:
        self.t = t

    def fields(self, node: int, v: np.ndarray) -> np.ndarray:
        self.recorded[node][..., self.t] = v
        return self.values[node][..., self.t]


def _spectra(gamma: dict, window: int) -> tuple[dict, float]:
    """Circulant-embedding eigenvalues of the plus/minus modes per node; the clipped (negative) weight."""
    out, clipped = {}, 0.0
    for node, (auto, cross) in gamma.items():
        pair = []
        for g in (auto + cross, auto - cross):
            full = np.full(window + 1, g[-1])
            full[: len(g)] = g
            circ = np.concatenate([full, full[-2:0:-1]])  # symmetric first row of length 2W
            lam = fft.rfft(circ).real
            lam = np.concatenate([lam, lam[-2:0:-1]])  # full spectrum of the real symmetric sequence
            clipped = max(clipped, float(-lam.clip(max=0).sum() / max(lam.clip(min=0).sum(), 1e-300)))
            pair.append(lam.clip(min=0))
        out[node] = tuple(pair)
    return out, clipped


def stationary_pass(cell: Cell, h: dict, gamma: dict, *, window: int, population: int, seed: int) -> dict:
    """One pass of the map gamma -> gamma: units through a window driven by fields with covariances ``gamma``
    ({node: (auto, cross) by lag}). Returns the new gamma, per-group moments (G, S, 3) over the second half,
    the states' two-time functions and the clipped spectral weight."""
    maps = {node: len(m) for node, m in consumers(cell).items()}
    spectra, clipped = _spectra(gamma, window)
    lags = window // 4
    per_group = max(2, -(-int(population) // GROUPS))
    chunk = max(1, min(per_group, int(CHUNK_BYTES / (16 * window * max(sum(maps.values()), 1) * GROUPS))))
    draws = Draws(np.random.Generator(np.random.SFC64(seed)), GROUPS)
    sums = {node: np.zeros((2, lags)) for node in maps}
    two_time = np.zeros((len(cell.states), lags))
    record = np.zeros((GROUPS, len(cell.states), 3))
    half = window // 2
    for start in range(0, per_group, chunk):
        shape = (GROUPS, min(chunk, per_group - start))
        source = SpectralFields(spectra, maps, shape, window, draws)
        ops = SiteOps(cell, h, source, draws, shape)
        states = [np.zeros((2, *shape)) for _ in cell.states]
        history = np.empty((len(states), 2, *shape, window - half))
        with np.errstate(all="ignore"):
            for t in range(window):
                states = ops.step(t, states)
                if t >= half:
                    record += moments(states) * shape[1]
                    for i, s in enumerate(states):
                        history[i, ..., t - half] = s
        for node, v in source.recorded.items():
            v = v[..., half:]
            sums[node][0] += _lagged(v, v, lags)
            sums[node][1] += (_lagged(v[0], v[1], lags) + _lagged(v[1], v[0], lags)) / 2
        for i in range(len(states)):
            two_time[i] += _lagged(history[i], history[i], lags)
    units = GROUPS * per_group
    new = {node: (s[0] / (2 * units), s[1] / units) for node, s in sums.items()}
    return {"gamma": new, "moments": record / (per_group * (window - half)), "two_time": two_time / (2 * units),
            "clipped": clipped}


def solve_stationary(cell: Cell, h: dict, *, window: int, population: int, seed: int,
                     max_passes: int = 12) -> dict:
    """Iterate :func:`stationary_pass` from zero fields until the second moments move by less than
    3 standard errors and 0.5% between passes. Returns moments (S, 3) mean and standard error, the states'
    two-time functions, passes, clipped weight and ``converged``."""
    gamma = {node: (np.zeros(window // 4), np.zeros(window // 4)) for node in consumers(cell)}
    previous, converged = None, False
    for n in range(1, max_passes + 1):
        out = stationary_pass(cell, h, gamma, window=window, population=population, seed=seed + n)
        gamma, per = out["gamma"], out["moments"]
        mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / math.sqrt(len(per))
        if not np.all(np.isfinite(mean)):
            break
        if previous is not None:
            change = np.abs(mean[:, 1] - previous[:, 1])
            if np.all((change <= 3 * math.sqrt(2) * se[:, 1]) | (change <= 0.005 * np.abs(mean[:, 1]))):
                converged = True
                break
        previous = mean
    return {"mean": mean, "standard_error": se, "two_time": out["two_time"], "passes": n,
            "clipped": out["clipped"], "converged": converged and out["clipped"] < 0.01}
