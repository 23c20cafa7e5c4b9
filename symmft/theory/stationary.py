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
gamma -> gamma is iterated from the transient's estimate (or zero fields) to self-consistency. Memory: units go through in chunks
so the fields of a chunk take ~CHUNK_BYTES. Infinite input size only (finite m conditions on one input
sequence, which is not stationary: use the transient).
"""

from __future__ import annotations

import math

import numpy as np
from scipy import fft

from symmft.cell.trace import Cell
from symmft.theory.site import Draws, SiteOps, consumers, lagged, moments

GROUPS = 16
CHUNK_BYTES = 2e8  # fields of one chunk of units (float64)


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
    record = np.zeros((2, GROUPS, len(cell.states), 3))  # the two halves of the measured half
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
                    record[int(t >= half + (window - half) // 2)] += moments(states) * shape[1]
                    for i, s in enumerate(states):
                        history[i, ..., t - half] = s
        for node, v in source.recorded.items():
            v = v[..., half:]
            sums[node][0] += lagged(v, v, lags)
            sums[node][1] += (lagged(v[0], v[1], lags) + lagged(v[1], v[0], lags)) / 2
        for i in range(len(states)):
            two_time[i] += lagged(history[i], history[i], lags)
    units = GROUPS * per_group
    new = {node: (s[0] / (2 * units), s[1] / units) for node, s in sums.items()}
    record /= per_group * ((window - half) / 2)
    return {"gamma": new, "moments": record.mean(axis=0), "drift": record[1] - record[0],
            "two_time": two_time / (2 * units), "clipped": clipped}


def solve_stationary(cell: Cell, h: dict, *, window: int, population: int, seed: int, max_passes: int = 12,
                     initial: dict | None = None) -> dict:
    """Iterate :func:`stationary_pass` from zero fields until the second moments move by less than
    3 standard errors and 0.5% between passes. Returns moments (S, 3) mean and standard error, the states'
    two-time functions, passes, clipped weight, the relative drift of Q within the last pass and ``converged``
    (False also when that drift is significant: the window is shorter than the memory)."""
    gamma = {node: (np.zeros(window // 4), np.zeros(window // 4)) for node in consumers(cell)}
    for node, (auto, cross) in (initial or {}).items():  # e.g. the transient's last estimate, plateau beyond
        n = min(len(auto), window // 4)
        gamma[node][0][:], gamma[node][1][:] = auto[n - 1], cross[n - 1]
        gamma[node][0][:n], gamma[node][1][:n] = auto[:n], cross[:n]
    previous, change, converged = None, None, False
    for n in range(1, max_passes + 1):
        out = stationary_pass(cell, h, gamma, window=window, population=population, seed=seed + n)
        gamma, per = out["gamma"], out["moments"]
        mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / math.sqrt(len(per))
        if not np.all(np.isfinite(mean)):
            break
        if previous is not None:
            # The passes converge geometrically (ratio r ~ 0.4 at the LSTM's mu_f = 4): what is left is about
            # change * r / (1 - r); stop when that is below 3 standard errors or 0.5%.
            last, change = change, np.abs(mean[:, 1] - previous[:, 1])
            r = np.clip(change / last, 0, 0.95) if last is not None else np.full_like(change, 0.5)
            left = change * r / (1 - r)
            if np.all((left <= 3 * se[:, 1]) | (left <= 0.005 * np.abs(mean[:, 1]))):
                converged = True
                break
        previous = mean
    # Units start from zero at the window's start: a memory longer than the burn-in shows as a drift between the
    # two halves of the measured half (> 5 standard errors and > 1% of Q): the window is too short.
    d = out["drift"][:, :, 1]
    d_mean, d_se = d.mean(axis=0), d.std(axis=0, ddof=1) / math.sqrt(len(d))
    drifting = bool(np.any((np.abs(d_mean) > 5 * d_se) & (np.abs(d_mean) > 0.01 * np.abs(mean[:, 1]))))
    return {"mean": mean, "standard_error": se, "two_time": out["two_time"], "passes": n, "clipped": out["clipped"],
            "drift": (d_mean / mean[:, 1]).tolist(), "converged": converged and not drifting and out["clipped"] < 0.01}
