"""The criteria of trainability for sequences of length T: thresholds judged on evaluated points.

A leaf of the initialization stage (numpy only): the rule format (:mod:`symmft.init.rule`) stores them without
importing the theory; :mod:`symmft.init.evaluate` computes the quantities they judge.

**Criteria** (:class:`Criteria`), all at the mean-field fixed point with identical inputs (c_x = 1):

    status OK                       the fixed point and c* were found
    xi >= T                         forward time scale: a difference injected at one step survives T steps
    |m1 - 1| <= 1e-3                mean squared singular value of the state-to-state Jacobian (gradients neither
                                    explode nor vanish: m1^T stays within e^(+-1) at T = 1000)
    Q_s <= 10 for every state       bounded second moments (no exploding state)
    Q_s >= min_second_moment        optional (default 0: off), a state that carries signal. A GRU or minimalRNN
                                    with long memory is a leaky average h' = z h + (1 - z) n: its Q_h ~ <n^2>/(2 xi)
                                    (1e-4 at xi ~ 4000), isometric but small; the rule notes any Q_s < 1e-3
    T (m2/m1^2 - 1) <= 1            the *spread*: relative variance of the T-step product's spectrum. Dynamical
                                    isometry is m2 - m1^2 << 1/T (docs/theory.md §3); without this criterion a vanilla
                                    RNN would pass at any input variance, since on its critical line
                                    nu2 E[tanh'^2] = 1 the time scale xi is infinite (lambda = chi_1 = m1 = 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from symmft.errors import Status

# ---------------------------------------------------------------- criteria


@dataclass(frozen=True)
class Criteria:
    """Thresholds of trainability for sequences of ``length`` T (see the module docstring)."""

    length: int
    m1_tolerance: float = 1e-3
    max_second_moment: float = 10.0
    max_spread: float = 1.0
    min_second_moment: float = 0.0

    def slacks(self, ev: dict) -> dict:
        """Per criterion, a log-scale slack (> 0: passes) for every evaluated point; NaN where status failed."""
        with np.errstate(all="ignore"):
            q = np.array([ev[k] for k in ev if k.startswith("Q_")])
            out = {
                "xi": np.log(ev["xi"] / self.length),
                "m1": np.log(self.m1_tolerance) - np.log(np.abs(ev["m1"] - 1)),
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
        return {"xi_min": self.length, "m1_tolerance": self.m1_tolerance, "max_second_moment": self.max_second_moment,
                "min_second_moment": self.min_second_moment, "max_spread": self.max_spread}
