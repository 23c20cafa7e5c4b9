"""The standard error of a stationary result confirmed by doubling the range (``passes.batch_error``).

Synthetic pass series (no solver): every group shares a common mode (the common gamma's noise fed back) plus
its own noise, so the truth (0) and the coverage of a 2-standard-error interval are known independently of the
code under test.
"""

from __future__ import annotations

import math

import numpy as np

from symmft.theory import passes
from symmft.theory.stationary import GROUPS


def _passes(common: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Passes (GROUPS, S = 1, 3) whose second and cross moments are the common mode plus unit-variance group noise."""
    out = []
    for c in common:
        p = np.zeros((GROUPS, 1, 3))
        p[:, 0, 1] = p[:, 0, 2] = c + rng.standard_normal(GROUPS)
        out.append(p)
    return out


def _coverage(phi: float, runs: int = 400) -> tuple[float, float]:
    """Fraction of runs whose later range's mean is within 2 standard errors of the truth, with the pooled error
    and with the batch means' (:func:`symmft.theory.passes.batch_error`): two ranges of 8 passes, 8 passes apart, on a common AR(1) mode
    of standard deviation 2 and pass-to-pass correlation phi."""
    rng = np.random.default_rng(3)
    pooled = batches = 0
    for _ in range(runs):
        c = np.empty(24)
        c[0] = 2 * rng.standard_normal()
        for k in range(1, 24):
            c[k] = phi * c[k - 1] + 2 * math.sqrt(1 - phi ** 2) * rng.standard_normal()
        earlier, measured = passes.pooled(_passes(c[:8], rng)), _passes(c[16:], rng)
        later = passes.pooled(measured)
        pooled += abs(later[0][0, 1]) <= 2 * later[1][0, 1]
        batches += abs(later[0][0, 1]) <= 2 * passes.batch_error(earlier, later, measured)[0, 1]
    return pooled / runs, batches / runs


def test_batch_means_error_covers_a_slow_common_mode():
    # A common mode correlated over ~10 passes (a measurement's length; the T = 1000 LSTM rule's swings last
    # ~10^5 steps against 1.3-2.6x10^5 measured): the pooled error covers 28% of runs at 2 sigma, the batch means'
    # 82% (measured; bars 0.5 and 0.7 leave room for the 400 runs' binomial noise, ~2.3%).
    pooled, batches = _coverage(0.9)
    assert pooled < 0.5 and batches > 0.7, (pooled, batches)
    # White passes: the pooled error is right (91%, the t-distribution of 16 groups), the floor only widens it.
    pooled, batches = _coverage(0.0)
    assert pooled > 0.85 and batches >= pooled, (pooled, batches)


def test_batch_means_error_by_hand():
    # Ranges 10 and 13 (|3| / sqrt 2 = 2.12), later halves 12 and 14 (|2| / 2 = 1), pooled 0.5: 2.12. With the
    # ranges equal the halves decide (1), and with everything equal the pooled error stays.
    def result(q: float, se: float) -> tuple:
        m, s = np.zeros((1, 3)), np.zeros((1, 3))
        m[0, 1:], s[0, 1:] = q, se
        return m, s

    measured = [np.full((GROUPS, 1, 3), v) for v in (12.0, 12.0, 14.0, 14.0)]
    assert math.isclose(passes.batch_error(result(10, 0.4), result(13, 0.5), measured)[0, 1], 3 / math.sqrt(2))
    assert math.isclose(passes.batch_error(result(13, 0.4), result(13, 0.5), measured)[0, 1], 1.0)
    flat = [np.full((GROUPS, 1, 3), 13.0)] * 4
    assert math.isclose(passes.batch_error(result(13, 0.4), result(13, 0.5), flat)[0, 1], 0.5)
