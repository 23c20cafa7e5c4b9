"""The statistics of the stationary solver's passes (:mod:`symmft.theory.stationary`, docs/tied.md §4).

What: a result's mean and standard error pooled over its measured passes, whether the passes' two halves or the
results of two lag ranges agree, and the batch means' error of a result confirmed by doubling the range. Pure
functions of the passes' per-group moments -- one array (groups, states, 3) of mean, second and cross moment per
measured pass -- and of results (mean, standard error, ...). Stage: called by the solver, tested on synthetic
passes (tests/test_stationary_errors.py).
"""

from __future__ import annotations

import math

import numpy as np


def pooled(measured: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard error over the measurement passes ((groups, S, 3) each): the larger of the groups'
    spread of their averages over all the passes (the groups are independent given gamma; a unit's slow part
    persists from pass to pass, so the passes' own group errors do not average down when the memory is long)
    and the passes' spread (which includes the common gamma's noise fed back)."""
    passes = np.array(measured)
    groups = passes.mean(axis=0)  # (groups, S, 3): each group's average over the passes
    group_se = groups.std(axis=0, ddof=1) / math.sqrt(len(groups))
    spread = passes.mean(axis=1).std(axis=0, ddof=1) / math.sqrt(len(measured))
    return groups.mean(axis=0), np.maximum(spread, group_se)


def ranges_agree(a: tuple, b: tuple) -> bool:
    """Whether two results (mean, standard error, ...) agree in the second and cross moments: within 3 combined
    standard errors or 2% of Q. What the check is for is a range that moves the answer by far more (the T = 1000
    LSTM rule: Q_c 82 -> 106 -> 110 at L = 2^17 -> 2^18 -> 2^19); at 2 standard errors or 0.5% the LSTM at
    mu_f = 3 (P = 1000) failed it at every range from 256 to 16384 (Q_c 2.75-2.80: standard errors that miss part
    of the passes' correlation, and 4 moments compared each time), and ended NOT_CONVERGED."""
    (m0, s0), (m1, s1) = a[:2], b[:2]
    q = np.abs(m1[:, 1:2])
    return bool(np.all(np.abs(m1 - m0)[:, 1:] <= np.maximum(3 * np.hypot(s0, s1)[:, 1:], 0.02 * q)))


def halves_agree(measured: list[np.ndarray]) -> bool:
    """Whether the first and second halves of the measured passes agree in the second and cross moments: within
    2 standard errors of their difference or 0.5% of Q. The difference is paired by group (a unit's persistent
    part cancels: a creep of 1% a pass at the T = 1000 LSTM rule hides in the groups' errors of 5%, not in their
    differences), and its error is the larger of the groups' and the passes' (the common gamma's noise)."""
    passes, m = np.array(measured), len(measured)
    first, second = passes[:m // 2], passes[m - m // 2:]
    paired = second.mean(axis=0) - first.mean(axis=0)  # (groups, S, 3)
    diff, paired_se = paired.mean(axis=0), paired.std(axis=0, ddof=1) / math.sqrt(len(paired))
    spread = np.hypot(*(half.mean(axis=1).std(axis=0, ddof=1) / math.sqrt(len(half)) for half in (first, second)))
    q = np.abs(passes.mean(axis=(0, 1))[:, 1:2])
    return bool(np.all(np.abs(diff)[:, 1:] <= np.maximum(2 * np.maximum(paired_se, spread)[:, 1:], 0.005 * q)))


def batch_error(earlier: tuple, later: tuple, measured: list[np.ndarray]) -> np.ndarray:
    """The standard error (S, 3) of a result (``later``: mean, standard error) confirmed against the one at half the
    range (``earlier``), from batch means: the larger of the pooled one (:func:`pooled`), the two ranges' results as
    two batches (|difference| / sqrt(2): once the range no longer moves the result they estimate the same number)
    and the confirming range's two halves of passes as two (|difference| / 2). Why: every group draws from the
    common gamma, and at long memories its noise fed back is a slow common mode that neither the groups' spread nor
    the spread of passes shorter than its correlation time can see (T = 1000 LSTM rule, P = 1000: a run's passes
    swing between ~70 and ~200 over 10^5-step stretches while one range's pooled error is 4-20; RESULTS §7.2b). The
    batches are as long as the measurements (>= L/4 steps each); with one degree of freedom each they are a floor,
    not a precise error."""
    series = np.array(measured).mean(axis=1)  # (passes, S, 3): each pass's mean over the groups
    half = len(series) // 2
    halves = np.abs(series[-half:].mean(axis=0) - series[:half].mean(axis=0)) / 2
    ranges = np.abs(later[0] - earlier[0]) / math.sqrt(2)
    return np.maximum(later[1], np.maximum(ranges, halves))
