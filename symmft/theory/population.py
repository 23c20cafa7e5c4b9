"""Population closure: the untied mean-field law followed exactly, by sampling single units (docs/theory.md §2, rule 3).

What: the Gaussian closure (:mod:`symmft.theory.meanfield`) replaces a nonlinearity of a non-Gaussian quantity (the
LSTM's tanh(c'), the GRU's tanh(u_n + r*u_hn)) by a Gaussian of matched moments. Here nothing is replaced: P
single units, each with an a-copy and a b-copy (two input sequences), are stepped by the cell file's own ``step``
under the infinite-width untied law, and the fixed point, c*, lambda and xi are read off the population. Stage:
one hyperparameter point -> :class:`~symmft.theory.analysis.Analysis` (closure "population"), consumed like the Gaussian
closure's; it is also the reference that measures that closure's gap.

How: ``ops.affine(k, ...)`` draws per unit, afresh each step (weights independent across steps), a pair
(u_a, u_b) ~ N((mu_k, mu_k), [[V, K], [K, V]]), V = sigma2_k q_x + sum_v nu2_kv <v^2> + rho2_k,
K = sigma2_k q_x c_x + sum_v nu2_kv <v_a v_b> + rho2_k, <.> the average over all P units (both copies for V):
one law for the whole population, as in the tied transient (docs/tied.md §2). The units form GROUPS
sub-populations that share that law; their spread, with the population's own time series, gives the errors
(below). With c_x = 1 and b = a, K == V bitwise and u_b == u_a: c = 1 stays exact.

* Rates by common random numbers: replicas share every standard normal; one gets a one-step *diagonal kick*
  (mu += eta sqrt(V), V and K times 1 + eta), one a *cross kick* (K -= eta V: the inputs decorrelate for one
  step, marginal laws untouched). Kicked-minus-reference moments (diagonal: M_s, Q_s; cross: D_s = <(s_a -
  s_b)^2>/2, i.e. Q_s - C_s at fixed Q) decay like lambda^t; lambda = sum <Delta_{t+1}, Delta_t> / sum |Delta_t|^2
  over the second half of the response, which ends at a decay of e^-10, a growth of e^3 (still linear), when it
  sinks within SNR standard errors of zero, or after MAX_MEASURE steps. Shared draws make the noise relative to
  the response (~1/sqrt(P) per step) instead of a floor; the SNR stop cuts off the slower modes that noise itself
  excites (the cross mode in the diagonal response at c < 1, and vice versa). At c = 1, D >= 0: the fit is the
  one-sided slope of docs/theory.md §2 (vanilla RNN: chi_1). A second mode lambda_2 biases lambda by
  ~(lambda_2/lambda_1)^(2 t0), t0 the window start; a complex pair gives roughly its real part. This measurement
  (during burn-in) sets the burn-in and the averaging window, gives the diagonal rate (error: jackknife over the
  groups, or the least-squares error of the whole population's response if larger) and decides the chaos restart.
* The reported lambda (the cross rate) is measured again while averaging, from KICKS *independent kicks* spread evenly
  over the window: a copy of the population, reset to it, gets a cross kick and follows it for ``_interval`` steps;
  each kick's response is fitted as a burn-in measurement's is (same end rule, second half); lambda is the mean of the
  kicks' rates and its error their spread. Why: the units share one law, and its own noise feeds back into all of them
  alike -- near criticality the reference law wanders slowly during a measurement and moves the slope it measures,
  which neither the group spread nor the residuals of one response see (one measurement's error was 1.6-2.6x smaller
  than the seeds' spread at lambda = 0.97). Each kick sees the wandering afresh, so the spread of kicks is the error,
  law and all (benchmarks/RESULTS.md §7e). The kicks are averaged with equal weight: the law's wandering also scales a
  response by a random factor (20x between kicks at P = 1600), and sums over kicks would follow the largest response
  and favour kicks whose rate was high. Cost: a population copy during the kicks (1.1-1.4x CPU in all).
* Burn-in (``burn_in=None``): from the zero state, until the slowest measured rate has shrunk the start's O(1)
  deviation below TOLERANCE (the measuring steps count; re-measured once stationary), capped at MAX_BURN_IN.
  If c_x = 1 and lambda(c=1) + 2 se >= 1 (c = 1 may be unstable: chaos), b restarts as an independent resample
  of a and relaxes to the attracting c* (back to c ~ 1 if c = 1 was stable after all).
* Averages over ``average`` steps; standard errors (extras ``standard_error_<key>``): the larger of the spread of the
  GROUPS time averages and the batch-means error (BATCHES batches) of the whole population's average -- the groups
  share the law, so its own slow fluctuations move them together and only the time series shows them. Batches only a
  few relaxation times long share part of those fluctuations, so their spread is divided by what an AR(1) series at
  the slowest measured rate predicts for it (``_batch_shortfall``: 0.89 at the default window and rate 0.972, where
  C*'s error had been ~0.85x the seeds' spread). NOT_CONVERGED if burn-in hit its cap or the two halves of the average
  differ (> 5 such standard errors and > 1e-3 relative).
* Finite-population bias: a finite population is a finite-width network, its law fluctuates, and that biases
  moments by O(1/P) -- negligible away from criticality, amplified near it (vanilla RNN at lambda = 0.97: C*
  about +2/P, benchmarks/RESULTS.md). An earlier version let every group average over its own P/GROUPS units:
  a bias of O(GROUPS/P), common to all groups and so invisible in their spread (C* +2.3/P_g there, 10 standard
  errors at P = 3200, and half of those runs NOT_CONVERGED). Unlike the tied transient, no unit's own past is in
  its law here (fresh fields every step), so cross-fitting halves removes nothing: measured, it doubles the bias
  (C* +4.1/P, RESULTS.md §7e'').
* Errors near criticality (the vanilla point above, 24-40 seeds per population, benchmarks/RESULTS.md §7e):
  seeds' spread / reported error ~1 for lambda (from the kicks) and for the moments (group spread or batch means,
  whichever is larger), within the ~15% uncertainty of a ratio from 24 seeds, from P = 1600 to 32000.
  Independent seeds remain the check (tests/test_population.py does it).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import erf

from symmft.cell.graph import Cell
from symmft.theory.analysis import DIVERGENCE, Analysis, time_scale
from symmft.errors import CellDefinitionError, HyperparameterError, Status
from symmft.cell.params import chrono_maps
from symmft.theory.conditional import POPULATION
from symmft.theory.meanfield import derive

GROUPS = 16  # independent sub-populations: 15 degrees of freedom for every standard error
TOLERANCE = 1e-4  # relative bias left from the zero start after burn-in
MAX_BURN_IN = 5000  # steps; a rate within ~2e-3 of 1 cannot relax in it: NOT_CONVERGED
MAX_MEASURE = 400  # steps one rate measurement may take
DECAY, GROWTH = math.exp(-10), math.exp(3)  # a measurement ends at this decay (or growth: still linear)
SNR = 10  # ... or when the response is within SNR standard errors of the Monte Carlo noise
BATCHES = 8  # batch means of the averaging window (>= 5 relaxation times each at the default window)
KICKS = 8  # cross kicks while averaging: lambda's error is their spread (7 degrees of freedom)
ETA = 1e-3  # kick size: response linear to ~1e-3 relative, and far above float64 rounding
X = object()  # the cell input: it only enters through ops.affine


class _PopulationOps:
    """The ``ops`` of a population; arrays are (replica, copy a|b, group, unit). ``kick`` lasts one step."""

    def __init__(self, cell: Cell, h: dict, rng: np.random.Generator, per_group: int):
        self.cell, self.h, self.rng, self.per_group = cell, h, rng, per_group
        self.kick: tuple | None = None  # (shift, scale, drop), each (R, 1, 1, 1)
        self._moments: dict[int, tuple] = {}  # this step: id(v) -> (v, <v^2>, <v_a v_b>)
        self.tanh, self.erf = np.tanh, erf

    @staticmethod
    def sigmoid(u: np.ndarray) -> np.ndarray:
        return 0.5 * (1.0 + np.tanh(0.5 * u))  # overflow-free logistic

    def _second(self, v: np.ndarray) -> tuple:
        if id(v) not in self._moments:  # the LSTM multiplies h four times: average it once
            a, b = v[:, 0], v[:, 1]  # the same reduction for <aa>, <bb>, <ab>: K == V bitwise when b == a
            # Over the whole population (every group, per replica), not per group: a group's own average over
            # P/GROUPS units would bias every group alike by O(GROUPS/P) (the module docstring).
            q = ((a * a).mean(axis=(-2, -1)) + (b * b).mean(axis=(-2, -1))) / 2
            self._moments[id(v)] = (v, q[:, None, None, None], (a * b).mean(axis=(-2, -1))[:, None, None, None])
        return self._moments[id(v)][1:]

    def affine(self, name: str, *vectors, **named) -> np.ndarray:
        amap, values, h = self.cell.affine(name), (*vectors, *named.values()), self.h
        if len(values) != len(amap.inputs):
            raise CellDefinitionError(f"{self.cell.path}: ops.affine({name!r}) differs from the traced cell")
        V = K = h[amap.bias_variance] + np.zeros((1, 1, 1, 1))
        for inp, v in zip(amap.inputs, values):  # inputs are in call order: positional, then keyword
            w = h[inp.hyperparameter]
            q, c = (h["q_x"], h["q_x"] * h["c_x"]) if v is X else self._second(v)
            V, K = V + w * q, K + w * c
        mu = h[amap.mean]
        if self.kick is not None:
            shift, scale, drop = self.kick
            mu = mu + shift * np.sqrt(V)
            V, K = V * scale, (K - drop * V) * scale
        r = np.clip(np.divide(K, V, out=np.ones_like(V), where=V > 0), -1.0, 1.0)
        u = np.empty((len(V), 2, GROUPS, self.per_group))
        u[:, 0] = z = self.rng.standard_normal((GROUPS, self.per_group))  # shared by every replica
        if np.all(r == 1):  # identical copies (c = 1): u_b = u_a, and half the draws
            u[:, 1] = z
        else:
            r = r[:, 0]
            u[:, 1] = r * z + np.sqrt((1 - r) * (1 + r)) * self.rng.standard_normal((GROUPS, self.per_group))
        u *= np.sqrt(V)
        return u + mu

    def step(self, states: list[np.ndarray]) -> list[np.ndarray]:
        self._moments.clear()
        out = self.cell.step(X, *states, self)
        out = out if isinstance(out, tuple) else (out,)
        return [o if np.shape(o) == s.shape else np.broadcast_to(o, s.shape).copy() for o, s in zip(out, states)]


def _stats(states: list[np.ndarray]) -> np.ndarray:
    """(R, GROUPS, S, 4): per group and state the mean M, second moment Q, cross moment C, D = <(a-b)^2>/2."""
    return np.stack([np.stack([(a + b).mean(-1) / 2, (a * a + b * b).mean(-1) / 2, (a * b).mean(-1),
                               ((a - b) ** 2).mean(-1) / 2], axis=-1) for a, b in (x.swapaxes(0, 1) for x in states)],
                    axis=2)


def _fit(d: np.ndarray) -> float:
    """Least-squares rate of a response d (T, k): sum <d_{t+1}, d_t> / sum |d_t|^2."""
    num, den = np.sum(d[1:] * d[:-1]), np.sum(d[:-1] ** 2)
    return float(num / den) if den > 0 else 0.0  # den = 0: the kick had no effect at all


def _response_end(deltas: np.ndarray) -> int | None:
    """Where a response Delta_t (T, GROUPS, k) stops being a clean decay, as :func:`_measure` stops: the first
    t >= 3 (1-based) that decayed past DECAY of its largest, grew past GROWTH of its first, or sank within SNR
    standard errors (of the group spread) of zero; None if none."""
    norms = np.linalg.norm(deltas.mean(axis=1), axis=-1)
    noise = np.linalg.norm(deltas.std(axis=1, ddof=1), axis=-1) / math.sqrt(deltas.shape[1])
    peak = np.maximum.accumulate(norms)
    bad = ~((DECAY * peak <= norms) & (norms <= GROWTH * norms[0]) & (norms > SNR * noise))
    bad[:2] = False
    return int(np.argmax(bad)) + 1 if bad.any() else None


def _decay_rate(deltas: np.ndarray) -> tuple[float, float]:
    """lambda from Delta_t (T, GROUPS, k), t = 1..T after the kick, over t in [T//2, T]; jackknife error."""
    window = deltas[max(1, len(deltas) // 2) - 1:]
    jack = np.array([_fit(np.delete(window, g, axis=1).mean(axis=1)) for g in range(window.shape[1])])
    return _fit(window.mean(axis=1)), float(math.sqrt((len(jack) - 1) * np.mean((jack - jack.mean()) ** 2)))


def _pooled_rate(deltas: np.ndarray) -> tuple[float, float]:
    """:func:`_decay_rate`, its error the larger of the jackknife over groups and the least-squares error of the
    whole population's response (residuals Delta_{t+1} - lambda Delta_t): the groups share the law, so their
    spread alone misses the law's own noise. Near criticality both miss part of it (module docstring)."""
    lam, jackknife = _decay_rate(deltas)
    d = deltas[max(1, len(deltas) // 2) - 1:].mean(axis=1)  # _decay_rate's window, population mean
    residual, den = d[1:] - lam * d[:-1], np.sum(d[:-1] ** 2)
    if den <= 0 or residual.size < 2:
        return lam, jackknife
    return lam, max(jackknife, float(math.sqrt(np.sum(residual ** 2) / (residual.size - 1) / den)))


def _measure(ops: _PopulationOps, states: list[np.ndarray]) -> tuple[list[np.ndarray], tuple, tuple, int]:
    """Advance the population while measuring the diagonal and cross rates; returns (states, lam_d, lam_c, steps)."""
    pop = [np.repeat(x, 3, axis=0) for x in states]  # replicas: reference, diagonal kick, cross kick
    col = lambda *v: np.array(v)[:, None, None, None]  # noqa: E731
    ops.kick = (col(0, ETA, 0), col(1, 1 + ETA, 1), col(0, 0, ETA))
    series, norms, end = ([], []), ([], []), [0, 0]
    for t in range(1, MAX_MEASURE + 1):
        pop, ops.kick = ops.step(pop), None
        st = _stats(pop)
        q = np.maximum(st[0, :, :, 1].mean(axis=0), 1e-300)  # (S,)
        diag = np.concatenate([(st[1, ..., 0] - st[0, ..., 0]) / np.sqrt(q), (st[1, ..., 1] - st[0, ..., 1]) / q], -1)
        for i, d in enumerate((diag, (st[2, ..., 3] - st[0, ..., 3]) / q)):
            series[i].append(d)
            norms[i].append(np.linalg.norm(d.mean(axis=0)))
            noise = np.linalg.norm(d.std(axis=0, ddof=1)) / math.sqrt(GROUPS)
            if not end[i] and t >= 3 and not (DECAY * max(norms[i]) <= norms[i][-1] <= GROWTH * norms[i][0]
                                              and norms[i][-1] > SNR * noise):
                end[i] = t
        if all(end):
            break
    lam_d, lam_c = (_pooled_rate(np.array(series[i][:end[i] or t])) for i in (0, 1))
    return [x[:1] for x in pop], lam_d, lam_c, t


def _batch_shortfall(rate: float, n: int) -> float:
    """Expected batch-means standard error over the true one, for a series of BATCHES batches of ``n`` steps that
    relaxes like rate^t (an AR(1) process): batches only a few relaxation times long share part of their
    fluctuations, so the spread of their means is too small (0.89 at rate 0.972 and 179 steps a batch, 0.66 at
    50). From the covariances of the batch sums, S_k = sum over batch 0 x batch k of rate^|i - j|."""
    r = min(abs(rate), 0.9999)
    if r == 0 or n < 2:
        return 1.0
    g = (1 - r ** n) / (1 - r)  # sum_{d=0}^{n-1} r^d
    sums = [n * (1 + r) / (1 - r) - 2 * r * g / (1 - r)] + [r ** ((k - 1) * n + 1) * g * g for k in range(1, BATCHES)]
    cov = np.array([[sums[abs(i - j)] for j in range(BATCHES)] for i in range(BATCHES)])
    var_mean = cov.sum() / BATCHES ** 2  # of the batch sums' mean: n^2 cancels in the ratio
    expected = (np.trace(cov) - cov.sum() / BATCHES) / (BATCHES - 1) / BATCHES
    return float(math.sqrt(expected / var_mean))


def _batch_errors(series: np.ndarray, rate: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Standard errors of the time average of ``series`` (steps, ...) and of the difference of its two halves,
    from BATCHES consecutive batch means (zero when there are fewer than 2 steps per batch), corrected for the
    batches' shared fluctuations when the series relaxes like ``rate``^t (:func:`_batch_shortfall`)."""
    n = len(series) // BATCHES
    if n < 2:
        zero = np.zeros(series.shape[1:])
        return zero, zero
    batches = series[:n * BATCHES].reshape(BATCHES, n, *series.shape[1:]).mean(axis=1)
    spread = batches.std(axis=0, ddof=1) / _batch_shortfall(rate, n)
    return spread / math.sqrt(BATCHES), spread * math.sqrt(4 / BATCHES)  # halves of BATCHES/2 batches each


def _interval(rate: float, steps: int) -> int:
    """Steps a cross kick is followed while averaging: room for a decay of e^-10, the most a burn-in
    measurement follows (each kick's fit ends like one, :func:`_response_end`), but at least 10 and at most
    steps // KICKS (enough kicks for their spread), and no growth past GROWTH."""
    rate = abs(rate)
    wanted = 10 / -math.log(rate) if 0 < rate < 1 else math.log(GROWTH) / math.log(rate) if rate > 1 else 10
    return int(max(10, min(math.ceil(wanted), steps // KICKS)))


def _kicked_rate(rates: list[float]) -> tuple[float, float]:
    """lambda: the mean of the kicks' rates (each fitted like a burn-in measurement); error: their spread
    (independent measurements, the law's noise included).

    Each kick counts once: the law's wandering scales a response by a random factor (20x apart between kicks at
    P = 1600), so a fit of all responses together would follow the one largest and favour kicks whose rate was
    high (it made lambda's error 0.63x the seeds' spread at P = 1600)."""
    return float(np.mean(rates)), float(np.std(rates, ddof=1) / math.sqrt(len(rates)))


def _needed(rate: float) -> int:
    """Steps for an O(1) deviation relaxing like rate^t to fall below TOLERANCE."""
    rate = abs(rate)
    return MAX_BURN_IN + 1 if rate >= 1 else max(10, math.ceil(math.log(TOLERANCE) / math.log(max(rate, 1e-300))))


def analyze_population(cell: Cell, h: dict, *, population: int = 200_000, burn_in: int | None = None,
                       average: int | None = None, seed: int = 0) -> Analysis:
    """Fixed point, c*, lambda and xi of ``cell`` at one point ``h`` (resolved by :func:`symmft.cell.params.resolve`).

    ``population``: units P, each with an a and a b copy (rounded up to a multiple of GROUPS; keep P/GROUPS >= ~1000,
    below that the rate fits drown in noise and the finite-size bias grows); ``burn_in``: steps
    from the zero state before the rates are measured (None: adaptive, see the module docstring); ``average``:
    steps averaged (None: 40 relaxation times, within [200, 4000]; lambda comes from KICKS kicks within them, fewer
    below 80 steps, and below 20 from the burn-in measurement); ``seed`` fixes every draw.
    """
    if chrono_maps(cell, h):
        raise HyperparameterError("the population closure does not draw chrono biases yet: use closure='gaussian' "
                                  "(exact for the chrono bias itself, which it integrates over its log-uniform law)")
    grids = sorted(k for k, v in h.items() if np.ndim(v))
    if grids:
        raise HyperparameterError(f"the population closure evaluates one point, but {', '.join(grids)} "
                                  f"{'is an array' if len(grids) == 1 else 'are arrays'}: pass numbers, or use "
                                  "closure='gaussian' for grids")
    h = {k: float(v) for k, v in h.items()}
    per_group = max(2, -(-int(population) // GROUPS))
    rng = np.random.Generator(np.random.SFC64(seed))  # SFC64: numpy's fastest normals
    ops = _PopulationOps(cell, h, rng, per_group)
    states = [np.zeros((1, 2, GROUPS, per_group)) for _ in cell.states]
    identical, cross_start, converged = h["c_x"] == 1.0, 0, True
    t, target = 0, 20 if burn_in is None else int(burn_in)
    with np.errstate(all="ignore"):  # overflow/NaN is reported as a status below
        while True:
            while t < target:
                states, t = ops.step(states), t + 1
            start = t
            states, lam_d, lam_c, steps = _measure(ops, states)
            t += steps
            if identical and not cross_start and lam_c[0] + 2 * lam_c[1] >= 1:  # c = 1 maybe unstable: restart b
                perm = ops.rng.permutation(per_group)
                states, cross_start = [np.stack([x[:, 0], x[:, 0][..., perm]], axis=1) for x in states], t
                target = t + (20 if burn_in is None else int(burn_in))
                continue
            relaxing_c = not identical or cross_start
            need = max(_needed(lam_d[0]), cross_start + _needed(lam_c[0]) if relaxing_c else 0)
            # measured near stationarity: the fit window (second half of the measurement) started after need
            if burn_in is not None or start + steps // 2 >= need or not np.isfinite(lam_d[0] + lam_c[0]):
                break
            if t >= MAX_BURN_IN:
                converged = False
                break
            target = min(need, MAX_BURN_IN)
        rate = min(max(abs(lam_d[0]), abs(lam_c[0]) if relaxing_c else 0.0), 0.9999)
        n_avg = max(2, int(average) if average is not None else int(np.clip(40 / (1 - rate), 200, 4000)))
        record = np.empty((n_avg, GROUPS, len(cell.states), 3))
        # lambda is measured again while averaging, by a copy of the population (reset to it) that gets a cross
        # kick and follows it for `length` steps, KICKS times spread evenly over the window: independent
        # measurements, each seeing the law's own wandering, so their spread is the error (module docstring).
        length = _interval(lam_c[0], n_avg)
        kicks = min(KICKS, n_avg // length)
        spacing = n_avg // max(kicks, 1)
        kick = (np.zeros((2, 1, 1, 1)), np.ones((2, 1, 1, 1)), np.array([0.0, ETA])[:, None, None, None])
        rates, response = [], []
        for i in range(n_avg):
            if i % spacing == 0 and i // spacing < kicks:
                states, ops.kick, response = [np.repeat(x[:1], 2, axis=0) for x in states], kick, []
            states, ops.kick = ops.step(states), None
            st = _stats(states)
            record[i] = st[0, ..., :3]
            if len(st) == 2:
                response.append((st[1, ..., 3] - st[0, ..., 3]) / np.maximum(st[0, :, :, 1].mean(axis=0), 1e-300))
                deltas = np.array(response)
                end = _response_end(deltas)
                if end is not None or len(response) == length:  # the response is over: fit it as _measure does
                    end = end or length
                    rates.append(_fit(deltas[max(1, end // 2) - 1:end].mean(axis=1)))
                    states = [x[:1] for x in states]  # and drop the copy until the next kick
        lam_c = _kicked_rate(rates) if len(rates) >= 2 else lam_c  # too short a window: the burn-in's
        states = [x[:1] for x in states]
    per = record.mean(axis=0)  # (GROUPS, S, 3): the groups' time averages
    mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / math.sqrt(GROUPS)
    half = record[n_avg // 2:].mean(axis=0) - record[: n_avg // 2].mean(axis=0)
    half_se = half.std(axis=0, ddof=1) / math.sqrt(GROUPS)
    # The groups share the law, so their spread misses its common fluctuations; the whole population's time
    # series has them: the larger of the two errors (module docstring).
    common, common_half = _batch_errors(record.mean(axis=1), rate)
    se, half_se = np.maximum(se, common), np.maximum(half_se, common_half)
    drift_t = np.abs(half.mean(axis=0)) / np.maximum(half_se, 1e-300)
    drifting = np.any((drift_t > 5) & (np.abs(half.mean(axis=0)) > 1e-3 * np.max(np.abs(mean[:, 1]))))

    status = Status.OK if converged and not drifting else Status.NOT_CONVERGED
    if status == Status.OK and abs(lam_d[0]) - 2 * lam_d[1] >= 1:  # significantly unstable
        status = Status.UNSTABLE
    if np.any(mean[:, 1] > DIVERGENCE):
        status = Status.DIVERGED
    if not np.all(np.isfinite(mean)) or not np.isfinite(lam_c[0] + lam_d[0]):
        status = Status.NAN
    ok = status == Status.OK
    val = lambda v: np.asarray(float(v) if ok else np.nan)  # noqa: E731  failed points carry NaN, as in dynamics
    fixed, cross, corr, extras = {}, {}, {}, {}
    for i, s in enumerate(cell.states):
        fixed[f"M_{s}"], fixed[f"Q_{s}"], cross[f"C_{s}"] = (val(m) for m in mean[i])
        corr[s] = val(mean[i, 2] / mean[i, 1])
        extras.update({f"standard_error_{k}_{s}": np.asarray(e) for k, e in zip(("M", "Q", "C"), se[i])})
    extras.update(standard_error_lambda=np.asarray(lam_c[1]), standard_error_diagonal_lambda=np.asarray(lam_d[1]),
                  population=np.asarray(GROUPS * per_group), burn_in=np.asarray(t), average=np.asarray(n_avg),
                  kicks=np.asarray(len(rates) if len(rates) >= 2 else 0), kick_length=np.asarray(length))
    laws = {law: POPULATION for law in derive(cell, "gaussian").nonlinearity_laws}  # every one is sampled
    return Analysis(cell=cell, closure="population", laws=laws, backend="numpy", hyperparameters=h, fixed_point=fixed,
                    cross_fixed_point=cross, correlation=corr, lambda_=val(lam_c[0]), xi=time_scale(val(lam_c[0])),
                    diagonal_lambda=val(lam_d[0]), status=np.asarray(int(status)), extras=extras)
