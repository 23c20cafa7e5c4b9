"""Warm starts for searches that ask for one point after another (issue 12): ``analyze(start=...)`` begins Newton at
a nearby point's fixed point instead of after plain iterations from the unit state, and
``evaluate_points(start=...)`` falls back to the cold start wherever that fails. The fixed points found are held
to the mpmath reference (a different quadrature at 20 digits), and the fallback to the cold evaluation itself."""

from __future__ import annotations

import numpy as np
import pytest

from symmft import HyperparameterError, analyze, evaluate_points, load_cell
from symmft.errors import Status
from symmft.init.evaluate import fixed_point

from tolerances import QUADRATURE_VS_MPMATH


def test_a_warm_start_finds_the_fixed_point_and_lambda_of_the_mpmath_reference():
    """GRU with a slow memory (mu_z = 4: the map contracts like lambda ~ 0.95, where plain iteration is slowest),
    started from the fixed point at mu_z = 4.01 and from far off (Q_h 10x too large). The moment closure: the
    one the mpmath backend evaluates (the exact conditional law is float-only at one point)."""
    cell = load_cell("gru")
    h = {"mu_z": 4.0, "nu2_hn": 1.2}
    reference = analyze(cell, h, backend="mpmath", dps=20, closure="gaussian")  # its own Newton to 1e-15
    near = analyze(cell, {**h, "mu_z": 4.01}, closure="gaussian")
    starts = {"near": {k: float(v) for k, v in near.fixed_point.items()},
              "far": {"M_h": 0.0, "Q_h": 10 * float(reference.fixed_point["Q_h"])}}
    for name, start in starts.items():
        warm = analyze(cell, h, start=start, closure="gaussian")
        assert int(warm.status) == Status.OK, name
        for k, v in reference.fixed_point.items():
            assert abs(float(warm.fixed_point[k]) - float(v)) <= QUADRATURE_VS_MPMATH * (1 + abs(float(v))), (name, k)
        assert float(warm.lambda_) == pytest.approx(float(reference.lambda_), rel=QUADRATURE_VS_MPMATH), name


def test_a_start_that_fails_falls_back_to_the_cold_evaluation():
    """A start beyond the divergence threshold cannot converge; evaluate_points then solves from analyze's own
    start, so the result is the cold evaluation's, value for value."""
    cell = load_cell("lstm")
    h = {"mu_f": np.array([1.0, 3.0]), "nu2_f": 0.8}
    cold = evaluate_points(cell, h, length=100)
    bad = {"M_c": 0.0, "M_h": 0.0, "Q_c": 1e30, "Q_h": 1e30}
    assert int(analyze(cell, {"mu_f": 1.0, "nu2_f": 0.8}, start=bad).status) != Status.OK  # it does fail alone
    warm = evaluate_points(cell, h, length=100, start=bad)
    for k in cold:
        np.testing.assert_array_equal(warm[k], cold[k], err_msg=k)


def test_fixed_point_reads_the_start_of_an_evaluated_point_and_none_where_it_failed():
    cell = load_cell("lstm")
    ev = evaluate_points(cell, {"mu_f": np.array([1.0, 3.0])}, length=100)
    start = fixed_point(ev, 1)
    assert sorted(start) == ["M_c", "M_h", "Q_c", "Q_h"] and start["Q_c"] == ev["Q_c"][1]
    ev["status"][0] = Status.NOT_CONVERGED
    assert fixed_point(ev, 0) is None


def test_a_start_missing_a_key_is_refused_with_the_missing_names():
    with pytest.raises(HyperparameterError, match="missing Q_c, Q_h"):
        analyze(load_cell("lstm"), {"mu_f": 1.0}, start={"M_c": 0.0, "M_h": 0.0})
