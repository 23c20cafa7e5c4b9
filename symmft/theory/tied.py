"""The theory of the tied network -- the one people train -- for any cell: :func:`analyze_tied` (docs/tied.md).

What: the paper's mean-field maps describe a network whose weights are redrawn at every step. A real network
reuses them; at large width its units then follow the dynamical mean-field theory (DMFT) of
:mod:`symmft.theory.site`: recurrent fields that are Gaussian processes in time with the population's own
two-time correlations, quenched biases and input rows. This module runs that theory and reports what the
untied :class:`~symmft.theory.analysis.Analysis` reports -- stationary moments, c*, lambda, xi -- plus the
transient from the zero state, the stationary two-time correlation, and a Monte Carlo standard error and a
:class:`~symmft.errors.Status` for every number. Stage: one hyperparameter point -> :class:`TiedAnalysis`,
consumed by the command line, the Jacobian moments and the critical search.

How: :class:`~symmft.theory.transient.Transient` steps the population causally (exact at any time, cost
O(P T^2)). The stationary state comes from the transient's tail when it has settled, else from
:mod:`symmft.theory.stationary` (a streamed spectral solver whose cost per step grows like log L with the lag range L; infinite
input size only: with finite m a drifting tail stays NOT_CONVERGED -- run more steps).
lambda: after the last transient step the groups are replicated (common random numbers), the replicas' b
copies are kicked (:meth:`Transient.kick`), and the decay of the kicked-minus-reference distance
D = <(s_a - s_b)^2>/2 is fitted as in :mod:`symmft.theory.population` (jackknife over the transient's
independent parts, docs/tied.md §2): an effective
rate over the fit window, since a tied network relaxes through a spread of per-unit time scales.

Exact for Gaussian recurrent weights (the Tensor Programs master theorem, Yang 2019: a program that applies
the matrices and never their transposes). Orthogonal (Haar) weights: the same process -- conditioning a Haar
matrix on its products with the past differs from conditioning a Gaussian one by O(n^-1/2) per unit, since the
forward pass never applies U^T -- accepted as ``weights="orthogonal"`` and checked against simulation
(tests/test_tied.py). The Jacobian's m2 does differ between the two (it involves U^T): see
:func:`symmft.theory.jacobian.jacobian_moments`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from symmft.backend import BACKENDS, to_numpy
from symmft.cell import params
from symmft.cell.graph import Cell
from symmft.cell.trace import load_cell
from symmft.errors import BackendError, HyperparameterError, Status, integer_option
from symmft.progress import progress as show_progress
from symmft.serialize import jsonable
from symmft.theory.analysis import DIVERGENCE, time_scale
from symmft.theory.population import _decay_rate
from symmft.theory.stationary import solve_stationary
from symmft.theory.transient import Transient

WEIGHTS = ("gaussian", "orthogonal")
DEFAULT_STEPS = 300  # transient horizon when no --steps is given: enough to settle a memory time of ~30 steps
MEASURE = 60  # steps the kicked replicas are followed for lambda (they cost 2x a step of the run)
KICK = 0.05  # kick size: the response stays linear to a few per cent
FIT_SNR = 10  # lambda's fit stops where the response is within this many standard errors of zero
SURVIVAL_SNR = 2  # ... and the window's survival where it is within this many
TAIL = 0.25  # the stationary estimate from a transient averages its last quarter
DRIFT_SIGMAS = 5  # a drift counts beyond this many standard errors (7 degrees of freedom: p ~ 0.002 a moment)
DRIFT_TOLERANCE = 0.01  # ... if the change it projects beyond the tail exceeds this fraction of the moment
TWO_TIME_UNITS = 2048  # units whose histories give the two-time correlation
PROGRESS_STEPS = 64  # transient steps between two updates of a progress bar
STATIONARY_POPULATION = 4000  # units in the spectral solver (fewer if its memory budget demands): each also averages over its passes
#: The spectral solver's budget of steps per unit: the T = 1000 LSTM rule converges in 1.8-2.6x10^5 (~2.5 min CPU
#: at the P = 2288 its memory budget leaves), the LSTM at mu_f = 5 in 7x10^4.
STATIONARY_STEPS = 2 ** 19
#: The automatic window's cap: the solver starts at lag range window / 4 <= 64 and doubles it as the measured
#: correlations need. Why short: its units start from the zero state, so at a long starting range their first passes
#: see the rise as a long correlation and double the range into the two-rate regime, where a plateau's noise can keep
#: the range from ever counting as adequate. At the LSTM with mu_f = 4, c_x = 0.5, rho2 = 0 and mu_g = 0.5 the start
#: at 8 x the transient (L = 1024) ended NOT_CONVERGED (`static` at 16384 lags at the defaults; `clipped` at 2^18
#: after 5.3x10^5 steps, 396 s CPU, at population 2000), from 64 OK at L = 256 after 10^4 steps (25 s with the
#: transient), Q_c 65.3(1.6) against width-2000 networks' 63.6(0.8); at mu_g = 1 `static` at 8192 lags against OK at
#: 64. At mu_f = 4 (rho2 = 0 and 0.1 on every map) and the T = 1000 rule (seeds 0, 1) both end OK, with values within
#: errors and no more steps (benchmarks/RESULTS.md §7.2f). An explicit ``window`` is taken as given.
STATIONARY_WINDOW = 256


@dataclass(frozen=True)
class TiedAnalysis:
    """The tied theory at one hyperparameter point; every number has a standard error and the status says
    whether it can be trusted (NOT_CONVERGED: still drifting at the end of the run, DIVERGED, NAN)."""

    cell: Cell
    hyperparameters: dict
    fixed_point: dict  # "M_s", "Q_s" -> stationary value
    correlation: dict  # state -> stationary c* = C_s / Q_s
    lambda_: float
    xi: float
    status: Status
    trajectory: dict  # state -> {"mean", "second_moment", "standard_error_<both>"}: (T,) at t = 1..T from zero
    two_time: dict  # state -> stationary <s_t s_{t+tau}>, tau = 0, 1, ...
    standard_error: dict  # same keys as fixed_point, plus "C_s", "correlation_s", "lambda"
    extras: dict = field(default_factory=dict)

    backend = "numpy"  # for symmft.theory.jacobian.jacobian_moments, which reads it

    def state_moments(self, state: str) -> dict:
        return {"mean": self.fixed_point[f"M_{state}"], "second_moment": self.fixed_point[f"Q_{state}"]}

    def to_json(self) -> dict:
        """The untied Analysis keys (fixed_point, correlation, lambda, xi, status) plus trajectory, two_time and
        standard_error_<key>; floats and lists, NaN as null."""
        return jsonable({
            "cell": self.cell.name,
            "theory": "tied",
            "hyperparameters": self.hyperparameters,
            "fixed_point": {s: self.state_moments(s) for s in self.cell.states},
            "correlation": self.correlation,
            "lambda": self.lambda_,
            "xi": self.xi,
            "status": self.status.name,
            "trajectory": self.trajectory,
            "two_time": self.two_time,
            **{f"standard_error_{k}": v for k, v in self.standard_error.items()},
            **self.extras,
        })


def analyze_tied(cell: Cell | str, hyperparameters: dict | None = None, *, steps: int | None = None,
                 input_dim: int | None = None, weights: str = "gaussian", population: int = 20_000,
                 seed: int = 0, window: int | None = None, stationary: bool = True,
                 max_steps: int = STATIONARY_STEPS, stationary_population: int | None = None,
                 response: int = MEASURE, backend: str = "numpy", progress: bool = False) -> TiedAnalysis:
    """Tied-weight theory of ``cell`` at one point (scalar ``hyperparameters``; defaults as ``symmft params``).

    ``steps``: T, the transient t = 1..T from the zero state (``trajectory``); None runs DEFAULT_STEPS and
    reports no trajectory. ``input_dim``: m, the input size (None: infinite). ``weights``: "gaussian" or
    "orthogonal" recurrent weights (the same process; see the module docstring). ``population``: units of the
    Monte Carlo population (standard errors shrink like 1/sqrt(population)); ``seed`` fixes every draw.
    ``window``: use the stationary spectral solver, starting with field covariances up to lag window/4 (None:
    only when the transient's tail is still drifting, with a window of 8 x its length rounded up to a power of
    2, at most STATIONARY_WINDOW = 256: a short start, see there); the solver doubles that lag range while the
    measured correlations need it, up to
    :data:`~symmft.theory.stationary.MAX_LAGS`. ``max_steps``: its budget of steps per unit (the stationary
    state is NOT_CONVERGED if not reached in it). ``stationary_population``: the solver's units (None:
    min(population, STATIONARY_POPULATION); the solver reduces it further when its memory budget demands, and
    ``extras["stationary_solver"]`` gives both ``population`` and ``requested_population``). ``stationary``
    False: never (a drifting tail is then reported as NOT_CONVERGED). ``response``: the most steps the kicked
    replicas are followed after step T (lambda's window; ``extras["response"]`` summarises the whole followed
    window: its survival and the xi it implies, docs/tied.md §2). A long memory needs a response of its own
    length (the tied check uses T); each step costs about two transient steps at that time. ``backend``:
    "numpy" or "cupy" for the causal transient (a seed fixes each backend's draws: the two agree within standard
    errors, not bit for bit; the stationary solver runs on numpy). ``progress``: show the transient's and the
    solver's steps on stderr (:func:`symmft.progress.progress`)."""
    cell = cell if isinstance(cell, Cell) else load_cell(cell)
    h = _point(cell, hyperparameters)
    if backend not in BACKENDS:
        raise BackendError(f"the tied theory runs on {' or '.join(BACKENDS)}, got backend {backend!r}")
    if weights not in WEIGHTS:
        raise HyperparameterError(f"option weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
    for name, value, least in (("steps", steps, 1), ("input_dim", input_dim, 1), ("population", population, 32),
                               ("window", window, 64), ("max_steps", max_steps, 1), ("response", response, 6),
                               ("stationary_population", stationary_population, 32)):
        if value is not None:
            integer_option(name, value, least)
    horizon = int(steps) if steps is not None else DEFAULT_STEPS
    run = Transient(cell, h, horizon + response, population=population, seed=seed, input_dim=input_dim,
                    backend=backend)
    with show_progress(horizon, f"tied transient {cell.name}", "step", enabled=progress) as bar:
        record, keep = _advance_keeping(run, horizon, bar)
    values, se, status = _tail(record)
    stationary_report = None
    two_time, solver = [_two_time(keep[:, i]) for i in range(len(cell.states))], "transient"
    lam, lam_se, response_report = _cross_rate(run, record[-1], response)
    if window is not None or (stationary and status == Status.NOT_CONVERGED and input_dim is None):
        window = window or min(STATIONARY_WINDOW, 2 ** math.ceil(math.log2(8 * horizon)))
        wanted = min(population, STATIONARY_POPULATION) if stationary_population is None else stationary_population
        with show_progress(max_steps, f"tied stationary {cell.name}", "step", enabled=progress) as bar:
            st = solve_stationary(cell, h, lags=window // 4, population=wanted, seed=seed,
                                  initial=run.field_covariances(window // 4), max_steps=max_steps,
                                  progress=_pass_reporter(bar, cell.states))
        values, se, two_time, solver = st["mean"], st["standard_error"], list(st["two_time"]), "stationary"
        status = Status.OK if st["converged"] else Status.NOT_CONVERGED
        stationary_report = {k: st[k] for k in ("passes", "steps", "lags", "stride", "population", "reason", "clipped",
                                                "static_fraction", "ranges")}
        stationary_report.update(requested_population=int(wanted), max_steps=int(max_steps),
                                 mean_source=st["mean_source"] is not None)  # a measured mean drew the plateau
        if not np.all(np.isfinite(values)):
            status = Status.NAN
    S = cell.states
    fixed = {f"{k}_{s}": float(values[i, j]) for i, s in enumerate(S) for j, k in enumerate("MQ")}
    errors = {f"{k}_{s}": float(se[i, j]) for i, s in enumerate(S) for j, k in enumerate("MQC")}
    corr = {s: float(values[i, 2] / values[i, 1]) for i, s in enumerate(S)}
    errors.update({f"correlation_{s}": float(se[i, 2] / values[i, 1]) for i, s in enumerate(S)}, **{"lambda": lam_se})
    mean = record.mean(axis=1)
    step_se = record.std(axis=1, ddof=1) / math.sqrt(record.shape[1])  # per step, over the independent parts
    trajectory = {} if steps is None else {
        s: {"mean": mean[:, i, 0], "second_moment": mean[:, i, 1], "standard_error_mean": step_se[:, i, 0],
            "standard_error_second_moment": step_se[:, i, 1]} for i, s in enumerate(S)}
    if not np.isfinite(lam):
        status = Status.NAN if status == Status.OK else status
    return TiedAnalysis(cell=cell, hyperparameters=h, fixed_point=fixed, correlation=corr, lambda_=lam,
                        xi=float(time_scale(lam)), status=status, trajectory=trajectory,
                        two_time=dict(zip(S, two_time)), standard_error=errors,
                        extras={"population": run.ops.shape[0] // 2 * run.ops.shape[1], "steps_run": horizon,
                                "input_dim": input_dim, "weights": weights, "solver": solver, "backend": backend,
                                "window": window if solver == "stationary" else None,
                                "stationary_solver": stationary_report, "response": response_report})


def _point(cell: Cell, values: dict | None) -> dict:
    h = params.resolve(cell, values)
    grids = sorted(k for k, v in h.items() if np.ndim(v))
    if grids:
        raise HyperparameterError(f"the tied theory evaluates one point, but {', '.join(grids)} "
                                  f"{'is an array' if len(grids) == 1 else 'are arrays'}: pass numbers")
    if params.chrono_maps(cell, h):
        raise HyperparameterError("the tied theory does not draw chrono biases yet: set every beta_k to 0, or use "
                                  "--theory untied")
    return {k: float(v) for k, v in h.items()}


def _advance_keeping(run: Transient, steps: int, bar) -> tuple[np.ndarray, np.ndarray]:
    """Advance ``run``; the moments, and the tail's state histories of the first TWO_TIME_UNITS units (both
    copies) for the two-time correlation: (tail, state, 2, units). ``bar`` (:func:`symmft.progress.progress`,
    possibly disabled) is advanced as the steps are taken (PROGRESS_STEPS at a time before the tail)."""
    tail = max(2, int(TAIL * steps))
    rows = []
    for start in range(0, steps - tail, PROGRESS_STEPS):
        rows.append(run.advance(min(PROGRESS_STEPS, steps - tail - start)))
        bar.update(len(rows[-1]))
    groups = min(TWO_TIME_UNITS // run.ops.shape[1] + 1, run.ops.shape[0])  # enough groups for that many units
    keep = []
    for _ in range(tail):
        rows.append(run.advance(1))
        keep.append(np.stack([to_numpy(s[:, :groups]).reshape(2, -1) for s in run.states]))
        bar.update(1)
    return np.concatenate(rows), np.array(keep)


def _pass_reporter(bar, states: tuple) -> Callable[[dict], None]:
    """A :func:`~symmft.theory.stationary.solve_stationary` ``progress`` callback that advances ``bar`` by the
    pass's steps and shows the lag range and each state's second moment."""
    done = [0]

    def report(info: dict) -> None:
        bar.update(info["steps"] - done[0])
        done[0] = info["steps"]
        bar.set_postfix(L=info["lags"], **{f"Q_{s}": f"{q:.4g}" for s, q in zip(states, info["Q"])})

    return report


def _tail(record: np.ndarray) -> tuple[np.ndarray, np.ndarray, Status]:
    """Stationary (state, 3) moments from the last TAIL of ``record``, their standard errors (spread of the
    independent parts' time averages) and a status: NOT_CONVERGED when the moments are still relaxing by more
    than DRIFT_TOLERANCE (:func:`_still_relaxing`: the memory is longer than the run)."""
    width = max(2, int(TAIL * len(record)))
    tail = record[-width:]
    per = tail.mean(axis=0)  # (G, S, 3)
    mean, se = per.mean(axis=0), per.std(axis=0, ddof=1) / math.sqrt(len(per))
    status = Status.NOT_CONVERGED if _still_relaxing(record, width) else Status.OK
    if np.any(mean[:, 1] > DIVERGENCE):
        status = Status.DIVERGED
    if not np.all(np.isfinite(mean)):
        status = Status.NAN
    return mean, se, status


def _still_relaxing(record: np.ndarray, width: int) -> bool:
    """Whether a second or cross moment of ``record`` ((T, parts, state, 3) part means) is still relaxing at T:
    a significant drift whose projected remaining change exceeds DRIFT_TOLERANCE of the moment.

    Three windows of ``width`` steps end the run (the last is the tail the estimate averages; shorter runs use
    T // 3), with means m1, m2, m3 per independent part. *Drift*: m3 - m1, the change over the last two windows,
    more than DRIFT_SIGMAS standard errors from zero (the parts' spread: a part's quenched offset cancels) and
    more than DRIFT_TOLERANCE of the moment (noise that happens to pass 5 standard errors at a small population
    does not count unless it is that large; a real drift changes the moment by more than the tolerance over
    two windows whenever the remaining change is much larger).
    *Remaining change*: a relaxation A exp(-t / tau) makes the window means geometric with ratio
    r = (m3 - m2) / (m2 - m1) = exp(-width / tau), and the tail's mean then lies (m3 - m2) r / (1 - r) from the
    limit (Aitken's extrapolation); r >= 1 (not slowing down within the run) leaves it unbounded, r < 0 (a turn)
    is taken as |m3 - m2|. Why not the tail's two halves alone (the earlier test): they differ by only a
    fraction ~ width / (2 tau) of the remaining distance, and at a small population that hides behind the noise
    -- the LSTM at mu_f = 5, P = 1000, T = 300 passed 6 seeds of 16 at Q_c ~ 110 against a stationary ~153
    (benchmarks/RESULTS.md §7f'). A run of fewer than 3 steps cannot show a settled tail: True.
    """
    width = min(width, len(record) // 3)
    if width < 1:
        return True
    m1, m2, m3 = (record[len(record) - k * width:len(record) - (k - 1) * width].mean(axis=0)[..., 1:]
                  for k in (3, 2, 1))  # (parts, state, 2): Q and C
    drift = m3 - m1
    drift_se = drift.std(axis=0, ddof=1) / math.sqrt(len(drift))
    early, late = (m2 - m1).mean(axis=0), (m3 - m2).mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = late / early
        remaining = np.where(ratio < 0, np.abs(late),
                             np.where(ratio < 1, np.abs(late) * ratio / (1 - ratio), math.inf))
    scale = DRIFT_TOLERANCE * np.abs(m3.mean(axis=0))
    drifting = (np.abs(drift.mean(axis=0)) > np.maximum(DRIFT_SIGMAS * drift_se, scale))
    return bool(np.any(drifting & (remaining > scale)))


def _cross_rate(run: Transient, last: np.ndarray, follow: int) -> tuple[float, float, dict]:
    """lambda and its standard error from kicked replicas followed for up to ``follow`` steps, and the window's
    survival summary (see :func:`_survival`). lambda's fit ends where the response sinks within FIT_SNR standard
    errors of zero (a ratio of noisy terms is biased); the survival goes on while it stays above SURVIVAL_SNR
    (one end point, whose noise its jackknife error carries)."""
    run.fork()
    run.kick(KICK, np.random.default_rng(run.t))
    q = np.maximum(last[:, :, 1].mean(axis=0), 1e-300)  # (S,)
    deltas, fit_end = [], None
    for _ in range(follow):
        m = run.advance(1)[0]  # (2 parts, S, 3): the reference parts, then their kicked replicas
        G = len(m) // 2
        D = (m[:, :, 1] - m[:, :, 2])  # Q - C = <(a - b)^2>/2 per part and state
        deltas.append((D[G:] - D[:G]) / q)
        norms = np.abs(np.array(deltas).mean(axis=1)).sum(axis=-1)
        noise = np.abs(np.array(deltas)[-1]).std(axis=0).sum() / math.sqrt(G)
        if len(deltas) >= 6:
            if norms[-1] < math.exp(-10) * norms.max():
                break
            if fit_end is None and norms[-1] < FIT_SNR * noise:
                fit_end = len(deltas)
            if norms[-1] < SURVIVAL_SNR * noise:
                break
    deltas = np.array(deltas)
    return (*_decay_rate(deltas[:fit_end]), _survival(deltas))


def _survival(deltas: np.ndarray) -> dict:
    """What survives of the kick over the followed window (deltas: (steps, parts, states), the kicked-minus-
    reference distance per state in units of that state's Q at the kick).

    A tied network relaxes through a spread of per-unit rates (quenched gates), so the distance is a mixture of
    exponentials and no single ratio D_{t+1}/D_t describes it. What "xi >= T" asks is that a difference survive T
    steps: log S = log(D(tau)/D(1)) summed over states, from the first step after the kick (the kick's
    part that the first step already removes, e.g. an LSTM's h recomputed from c, does not count) to the last
    followed step tau, and xi = -(tau - 1)/log S, the single rate with the same survival over the window. Its
    error is the jackknife over parts; ``resolved`` is False where log S is within 2 standard errors of 0 (the
    window cannot tell decay from growth: xi is then only bounded below). S > 1 (the distance grows over the
    window, e.g. while a long memory is still filling) gives xi = inf.
    """
    total = deltas.sum(axis=-1)  # (steps, parts)
    steps = len(total) - 1

    def log_survival(d):
        with np.errstate(all="ignore"):
            return float(np.log(d[-1] / d[0])) if d[0] > 0 and d[-1] > 0 else -math.inf

    estimate = log_survival(total.mean(axis=1))
    jack = np.array([log_survival(np.delete(total, g, axis=1).mean(axis=1)) for g in range(total.shape[1])])
    with np.errstate(all="ignore"):
        se = float(math.sqrt((len(jack) - 1) * np.mean((jack - jack.mean()) ** 2)))
        se = se if math.isfinite(se) else math.inf  # a part whose distance reached zero: not resolved
        xi = -steps / estimate if estimate < 0 else math.inf
        curve = np.log(total.mean(axis=1) / total[0].mean())
    return {"steps": steps, "log_survival": estimate, "standard_error": se, "xi": xi,
            "resolved": bool(abs(estimate) > 2 * se), "log_survival_curve": curve}


def _two_time(history: np.ndarray) -> np.ndarray:
    """<s_t s_{t+tau}> over units, copies and t in the window, tau = 0 .. len/2 (history (time, 2, units))."""
    T = len(history)
    lags = max(1, T // 2)
    return np.array([np.mean(history[: T - tau] * history[tau:]) for tau in range(lags)])
