"""A rule's criteria judged on the tied network's theory (docs/tied.md), not on the untied maps.

What: the search (:mod:`symmft.init.search`) optimizes the untied mean-field quantities, which are cheap and
deterministic. The network people train is tied; for long memories its second moments are far above the untied
ones (benchmarks/RESULTS.md §3). This module evaluates :class:`~symmft.init.criteria.Criteria` on
:func:`symmft.theory.tied.analyze_tied` at one point, with a Monte Carlo standard error on every judged number.
Stage: hyperparameters -> verdict, used by :mod:`symmft.init.tied_search` and ``symmft critical --theory tied``.

How: a sequence of length T starts from the zero state, so the criteria are judged on the transient t <= T
(docs/criteria.md, "On the tied network"). When the memory is shorter than T the transient settles inside the
sequence and its tail is the stationary state ("settled": True); when the memory exceeds T the stationary state
is never seen by a sequence of that length and does not enter:

- Q_s is the largest second moment over t <= T;
- the gradient over the sequence crosses the Jacobians of every step: the mean gain is m1 = G(T)^(1/T), G(T) the
  tied network's mean squared gain of the product of the T memory Jacobians from step 1
  (:func:`symmft.theory.tangent.tied_gain`, forward tangents in the tied DMFT; |T log m1| <= g is |log G| <= g).
  Beside it ``m1_free``, the geometric mean of the free-probability m1(t) at the tied moments of step t, which
  treats the steps' Jacobians as free (the tied product exceeds it by ~3e-4 per step: docs/criteria.md);
- the spread, m2/m1^2 - 1 of the squared singular values of the same product, is judged on finite tied
  networks (:func:`network_spread`: the exact product by
  :func:`symmft.network.spectrum.jacobian_product_spectrum`, ``spread_networks`` networks of width
  ``spread_width``). It is an O(1/N) fluctuation of the overlap of two forward tangents (docs/criteria.md, "Why
  no infinite-width quantity gives it"), which no single-site quantity of the tied DMFT gives; a DMFT that
  samples it is as costly as a network of its part's width, and the network is exact. ``spread_free`` is the
  former value, sum_t (m2(t)/m1(t)^2 - 1) from the free-probability moments at the tied moments of each step
  (1.2x low at T = 20, 53x at T = 1000: benchmarks/RESULTS.md);
- xi: what survives of a kick to the distance between two sequences after step T, followed for T more steps
  (docs/tied.md §2, "lambda, xi"): xi = -(T - 1)/log(D(2T)/D(T + 1)), the single rate with the same survival
  over the criterion's window; ``lambda`` is that rate, exp(log S/(T - 1)).

Standard errors: Q_s from the spread of the theory's independent groups; m1 from the groups' own log gains; the
spread from the networks' scatter, floored (:func:`network_spread`); spread_free by moving each state moment up by
its standard error at every step (fully correlated over steps: conservative) and adding the shifts in
quadrature; xi from the jackknife of log S over groups. A criterion whose slack is within UNCERTAIN standard
errors of its threshold, on either side, is listed in ``uncertain`` and not in ``fails``: the population cannot
decide it, and more population (``--population``, or ``--spread-networks`` for the spread) does.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

from symmft.cell.trace import Cell
from symmft.errors import Status, integer_option
from symmft.init.criteria import Criteria
from symmft.network.spectrum import jacobian_product_spectrum
from symmft.theory.jacobian import jacobian_moments
from symmft.theory.tangent import tied_gain
from symmft.theory.tied import TiedAnalysis, analyze_tied

#: Standard errors within which a criterion's slack counts as undecided by the Monte Carlo population.
UNCERTAIN = 2.0
#: Tied networks that judge the spread, and their width (benchmarks/RESULTS.md, "The spread judged on tied
#: networks": within ~2% of width 1000 from width 300 on; width 300 costs ~8 s CPU a network at T = 1000).
SPREAD_NETWORKS = 2
SPREAD_WIDTH = 300
#: Input size of those networks where the layer's is infinite (the spread does not move above m ~ 100 at the
#: T = 200 and T = 1000 rules; input products are not differentiated, so m costs only its matrix-vector product).
SPREAD_INPUT_DIM = 4096
#: Floors of the spread's standard error. Relative: the finite-width bias the networks' scatter does not measure
#: (widths 300-1000 agree within ~2% at T = 1000, where one network scatters by 0.3-0.6%). Absolute, per network
#: SPREAD_NOISE / width: one network's own sampling noise, 0.1-0.37 / width measured at the T = 20 and 200 rules
#: (widths 200-600). Both guard against two networks agreeing by chance (their scatter has one degree of freedom).
SPREAD_FLOOR = 0.02
SPREAD_NOISE = 0.3


def moments_at_step(analysis: TiedAnalysis, step: int | slice) -> TiedAnalysis:
    """``analysis`` with ``fixed_point`` replaced by the transient's moments at ``step`` (1-based; a slice of
    steps gives arrays, which :func:`~symmft.theory.jacobian.jacobian_moments` evaluates pointwise)."""
    index = step - 1 if isinstance(step, int) else step
    at = {f"{k}_{s}": analysis.trajectory[s][m][index] for s in analysis.cell.states
          for k, m in (("M", "mean"), ("Q", "second_moment"))}
    return dataclasses.replace(analysis, fixed_point=at)


def tied_criteria(cell: Cell, hyperparameters: dict, length: int, criteria: Criteria, *, weights: str = "orthogonal",
                  input_dim: int | None = None, population: int = 4000, seed: int = 0,
                  spread_width: int = SPREAD_WIDTH, spread_networks: int = SPREAD_NETWORKS) -> dict:
    """The quantities the criteria judge, from the tied theory at ``hyperparameters`` for sequences of ``length``
    T (the spread from ``spread_networks`` tied networks of width ``spread_width``: :func:`network_spread`), and
    the criteria that fail. Returns {"judged_on": "transient", "values": {xi, lambda, m1, m1_free, log_gain,
    log_gain_free, m1_at_T, m2, variance, spread, spread_free, Q_s...}, "standard_error": {same keys where
    known}, "fails": [...], "uncertain": [...], "settled": whether the transient reached its stationary state,
    "status": the tied analysis' status name, "population": units, "response_steps": the steps xi's window
    covers, "spread_networks": :func:`network_spread`'s record (None where the tied run failed and no network
    was built)}. A network whose product overflows or vanishes makes the spread NaN and failed, its record's
    status saying so."""
    integer_option("spread_width", spread_width, 2)
    integer_option("spread_networks", spread_networks, 2)
    a = analyze_tied(cell, hyperparameters, steps=length, input_dim=input_dim, weights=weights,
                     population=population, seed=seed, stationary=False, response=max(6, length))
    values, se = _jacobian_criteria(a, weights, length)
    values["spread_free"], se["spread_free"] = values.pop("spread"), se.pop("spread")
    gain = tied_gain(cell, a.hyperparameters, length, input_dim=input_dim, population=population, seed=seed)
    log_gain, log_gain_se = gain.total
    values.update(m1_free=values["m1"], log_gain_free=length * math.log(values["m1"]), log_gain=log_gain,
                  m1=math.exp(log_gain / length))
    se.update(m1_free=se["m1"], m1=values["m1"] * log_gain_se / length, log_gain=log_gain_se)
    for s in cell.states:
        q = a.trajectory[s]["second_moment"]
        worst = int(np.argmax(q))
        values[f"Q_{s}"], se[f"Q_{s}"] = float(q[worst]), float(a.trajectory[s]["standard_error_second_moment"][worst])
    response = a.extras["response"]
    lam = math.exp(response["log_survival"] / response["steps"]) if response["steps"] else math.nan
    values.update(xi=response["xi"], **{"lambda": lam})
    se["lambda"] = lam * response["standard_error"] / max(response["steps"], 1)
    with np.errstate(all="ignore"):  # infinite where lambda's error bar reaches 1 (xi unbounded above)
        se["xi"] = float(se["lambda"] / (abs(lam) * math.log(abs(lam)) ** 2)) if abs(lam) + se["lambda"] < 1 else math.inf
    # still relaxing at T is expected (memory > T): only a diverged or NaN run fails the status criterion
    status = Status.OK if a.status == Status.NOT_CONVERGED else a.status
    if status == Status.OK and gain.status != Status.OK:
        status = gain.status
    networks = None  # a failed tied run fails the status criterion; no network is built for it
    values["spread"] = se["spread"] = math.nan
    if status == Status.OK:
        networks = network_spread(cell, a.hyperparameters, length, weights=weights, input_dim=input_dim,
                                  width=spread_width, networks=spread_networks, seed=seed)
        values["spread"], se["spread"] = networks["spread"], networks["standard_error"]
    ev = {**{k: np.array([v]) for k, v in values.items()}, "status": np.array([int(status)])}
    uncertain = _uncertain(criteria, length, values, se) if status == Status.OK else []
    return {"judged_on": "transient", "settled": a.status == Status.OK, "values": values, "standard_error": se,
            "fails": [f for f in criteria.failures(ev)[0] if f not in uncertain], "uncertain": uncertain,
            "status": a.status.name, "population": a.extras["population"], "response_steps": response["steps"],
            "spread_networks": networks}


def spread_seeds(seed: int, networks: int) -> list[int]:
    """The seeds of :func:`network_spread`'s networks for the check's ``seed``: a stream of their own, so they
    share no random numbers with the tied theory's population (which ``seed`` seeds directly)."""
    return [int(s) for s in np.random.SeedSequence([seed, 0x5B8EAD]).generate_state(networks)]


def network_spread(cell: Cell, hyperparameters: dict, length: int, *, weights: str = "orthogonal",
                   input_dim: int | None = None, width: int = SPREAD_WIDTH, networks: int = SPREAD_NETWORKS,
                   seed: int = 0) -> dict:
    """m2/m1^2 - 1 of the squared singular values of the product of the ``length`` memory Jacobians of
    ``networks`` tied networks of ``width`` (exact products from the zero state,
    :func:`~symmft.network.spectrum.jacobian_product_spectrum`; seeds :func:`spread_seeds`), input size
    ``input_dim`` (None: infinite, modelled by SPREAD_INPUT_DIM inputs).

    Returns {"spread": their mean, "standard_error": their standard error (sd / sqrt(networks), ddof 1),
    floored at SPREAD_FLOOR x spread and at SPREAD_NOISE / (width sqrt(networks))), "values": each network's,
    "seeds", "width", "input_dim" (the networks'), "cpu_seconds" (their process time), "status": "OK", or "NAN"
    where a network's product overflowed or vanished (its spread and the mean are then NaN: the spread criterion
    fails rather than passing on the others)}."""
    integer_option("spread_width", width, 2)
    integer_option("spread_networks", networks, 2)  # the standard error needs two
    m = SPREAD_INPUT_DIM if input_dim is None else input_dim
    seeds, start = spread_seeds(seed, networks), time.process_time()
    spreads = np.array([jacobian_product_spectrum(cell, hyperparameters, width=width, steps=length, tied=True,
                                                  weights=weights, seed=s, input_dim=m)["spread"] for s in seeds])
    ok = bool(np.all(np.isfinite(spreads)))
    mean = float(spreads.mean()) if ok else math.nan
    scatter = float(spreads.std(ddof=1) / math.sqrt(networks))
    floor = max(SPREAD_FLOOR * mean, SPREAD_NOISE / (width * math.sqrt(networks)))
    return {"spread": mean, "standard_error": max(scatter, floor) if ok else math.nan,
            "values": [float(v) for v in spreads], "seeds": seeds, "width": width, "input_dim": m,
            "status": "OK" if ok else "NAN", "cpu_seconds": round(time.process_time() - start, 2)}


def _jacobian_criteria(a: TiedAnalysis, weights: str, length: int) -> tuple[dict, dict]:
    """m1 (geometric mean over t = 1..T), m2 and variance at T, spread (sum over t), and standard errors of m1
    and the spread."""
    keys = [f"{k}_{s}" for s in a.cell.states for k in "MQ"]
    base = moments_at_step(a, slice(0, length))
    errors = {f"{k}_{s}": a.trajectory[s][f"standard_error_{m}"] for s in a.cell.states
              for k, m in (("M", "mean"), ("Q", "second_moment"))}
    # one vectorized evaluation: row 0 the estimate, row 1 + j with moment j raised by its standard error
    point = {k: np.repeat(np.asarray(base.fixed_point[k], dtype=float)[None], len(keys) + 1, axis=0) for k in keys}
    for j, k in enumerate(keys):
        point[k][1 + j] += errors[k]
    j = jacobian_moments(dataclasses.replace(base, fixed_point=point), kind="memory", weights=weights)
    with np.errstate(all="ignore"):
        log_m1 = np.log(j["m1"]).mean(axis=1)
        spread = (j["m2"] / j["m1"] ** 2 - 1).sum(axis=1)
    values = {"m1": float(np.exp(log_m1[0])), "m1_at_T": float(j["m1"][0, -1]), "m2": float(j["m2"][0, -1]),
              "variance": float(j["variance"][0, -1]), "spread": float(spread[0])}
    se = {"m1": float(values["m1"] * np.sqrt(np.sum((log_m1[1:] - log_m1[0]) ** 2))),
          "spread": float(np.sqrt(np.sum((spread[1:] - spread[0]) ** 2)))}
    return values, se


def _uncertain(criteria: Criteria, length: int, values: dict, se: dict) -> list[str]:
    """Criteria whose log slack is within UNCERTAIN standard errors of zero (delta method). xi's is taken on
    lambda, log|lambda| + 1/T >= 0, which stays defined where the estimate of lambda reaches or passes 1."""
    slack = {k: float(v) for k, v in criteria.slacks(values).items()}  # slacks takes scalars as well as arrays
    lam = abs(values["lambda"])
    with np.errstate(all="ignore"):
        slack["xi"] = math.log(lam) + 1 / length
        q_key = max((k for k in values if k.startswith("Q_")), key=lambda k: values[k])
        slack_error = {"xi": se["lambda"] / lam, "m1": se["m1"] / (values["m1"] * abs(math.log(values["m1"]))),
                       "second_moment": se[q_key] / values[q_key], "spread": se["spread"] / values["spread"]}
    return [k for k, e in slack_error.items() if k in slack and abs(slack[k]) < UNCERTAIN * e]
