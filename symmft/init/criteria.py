"""The criteria of trainability for sequences of length T: thresholds judged on evaluated points.

A leaf of the initialization stage (numpy only): the rule format (:mod:`symmft.init.rule`) stores them without
importing the theory; :mod:`symmft.init.evaluate` computes the quantities they judge. docs/criteria.md derives them.

**Criteria** (:class:`Criteria`), all at the mean-field fixed point with identical inputs (c_x = 1). Each bounds
what happens over the T steps a gradient or a signal must cross, so each scales with T:

    status OK                       the fixed point and c* were found
    xi >= T                         forward time scale: a difference injected at one step survives T steps
    |T log m1| <= max_log_gain (1)  m1: mean squared singular value of the state-to-state Jacobian. Over T steps
                                    the squared gradient norm scales like m1^T (free independence of the steps'
                                    Jacobians), so m1^T must stay within e^(+-1): |m1 - 1| <~ 1/T, i.e. 1e-3 at
                                    T = 1000 (the fixed tolerance symmft used before) and 0.1 at T = 10
    T (m2/m1^2 - 1) <= max_spread (1)  the *spread*: relative variance of the T-step product's spectrum. Dynamical
                                    isometry is m2 - m1^2 << 1/T (docs/theory.md §3); without this criterion a vanilla
                                    RNN would pass at any input variance, since on its critical line
                                    nu2 E[tanh'^2] = 1 the time scale xi is infinite (lambda = chi_1 = m1 = 1).
    Q_s <= 10 for every state       bounded second moments (no exploding state)
    Q_s >= min_second_moment        optional (default 0: off), a state that carries signal. A GRU or minimalRNN
                                    with long memory is a leaky average h' = z h + (1 - z) n: its Q_h ~ <n^2>/(2 xi)
                                    (1e-4 at xi ~ 4000), isometric but small; the rule notes any Q_s < 1e-3
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from symmft.errors import Status

# ---------------------------------------------------------------- criteria


@dataclass(frozen=True)
class Criteria:
    """Thresholds of trainability for sequences of ``length`` T (see the module docstring)."""

    length: int
    max_log_gain: float = 1.0
    max_second_moment: float = 10.0
    max_spread: float = 1.0
    min_second_moment: float = 0.0

    @property
    def m1_tolerance(self) -> float:
        """The largest |log m1| allowed at this T: max_log_gain / T."""
        return self.max_log_gain / self.length

    def m1_range(self) -> tuple[float, float]:
        """The interval of m1 the criterion allows: [e^(-g/T), e^(g/T)]."""
        return math.exp(-self.m1_tolerance), math.exp(self.m1_tolerance)

    def slacks(self, ev: dict) -> dict:
        """Per criterion, a log-scale slack (> 0: passes) for every evaluated point; NaN where status failed."""
        with np.errstate(all="ignore"):
            q = np.array([ev[k] for k in ev if k.startswith("Q_")])
            out = {
                "xi": np.log(ev["xi"] / self.length),
                "m1": np.log(self.m1_tolerance) - np.log(np.abs(np.log(ev["m1"]))),
                "second_moment": np.log(self.max_second_moment) - np.log(np.max(q, axis=0)),
                "spread": np.log(self.max_spread) - np.log(np.maximum(ev["spread"], 1e-300)),
            }
            if self.min_second_moment > 0:
                out["signal"] = np.log(np.min(q, axis=0)) - np.log(self.min_second_moment)
            return out

    def failures(self, ev: dict) -> list[list[str]]:
        """Per point, the names of the criteria it fails ("status:NAME" when the fixed point failed)."""
        slack = self.slacks(ev)
        out = []
        for i, s in enumerate(np.asarray(ev["status"]).ravel()):
            if s != Status.OK:
                out.append([f"status:{Status(int(s)).name}"])
            else:
                out.append([k for k, v in slack.items() if not np.ravel(v)[i] >= 0])
        return out

    def thresholds(self) -> dict:
        """The thresholds as JSON-ready data (stored in every init rule)."""
        return {"xi_min": self.length, "max_log_gain": self.max_log_gain, "m1_range": list(self.m1_range()),
                "max_second_moment": self.max_second_moment,
                "min_second_moment": self.min_second_moment, "max_spread": self.max_spread}
