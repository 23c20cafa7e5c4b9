"""`--init critical` for every built-in cell and a user's cell at T = 10, 100, 1000: the rule meets its
T-dependent criteria (docs/criteria.md) in the theory and, at T = 100, in the finite network's exact Jacobian.

The criteria are restated here from their definitions (xi >= T, |T log m1| <= 1, T (m2/m1^2 - 1) <= 1,
Q_s <= 10) rather than through :class:`symmft.init.criteria.Criteria`; the finite-network side uses
:func:`symmft.network.spectrum.empirical_jacobian_moments`, which never imports the theory.
"""

from __future__ import annotations

import math

import pytest

from symmft import load_cell, confirm, make_task, find_critical, empirical_jacobian_moments
from symmft.harness.confirm import Sweep
from symmft.harness.train import critical_rule, resolve_init
from symmft.init.search import BASELINES
from tolerances import FINITE_WIDTH_M1

BUILT_IN = ("vanilla_rnn", "minimal_rnn", "lstm", "gru", "gru_reset_before")

#: A user's cell: JANET (van der Westhuizen & Lasenby 2018), an LSTM with the forget gate alone (1 - f writes).
JANET = '''STATE = ("c", "h")


def step(x, c, h, ops):
    f = ops.sigmoid(ops.affine("f", x, h))
    g = ops.tanh(ops.affine("g", x, h))
    c = f * c + (1 - f) * g
    return c, ops.tanh(c)
'''


@pytest.fixture(scope="module")
def janet(tmp_path_factory):
    path = tmp_path_factory.mktemp("cells") / "janet.py"
    path.write_text(JANET)
    return str(path)


def meets_criteria(predicted: dict, T: int) -> list[str]:
    """The criteria a prediction fails, from their definitions."""
    fails = []
    if not predicted["xi"] >= T:
        fails.append(f"xi = {predicted['xi']:.4g} < T")
    if not abs(T * math.log(predicted["m1"])) <= 1:
        fails.append(f"T log m1 = {T * math.log(predicted['m1']):.4g}")
    if not T * (predicted["m2"] / predicted["m1"] ** 2 - 1) <= 1 + 1e-12:
        fails.append(f"spread = {T * (predicted['m2'] / predicted['m1'] ** 2 - 1):.4g}")
    if not max(v for k, v in predicted.items() if k.startswith("Q_")) <= 10:
        fails.append("Q > 10")
    return fails


def check_rule(cell: str, T: int) -> None:
    rule = find_critical(cell, T)
    assert meets_criteria(rule.predicted, T) == [], (cell, T, rule.hyperparameters)
    assert rule.criteria.thresholds()["max_log_gain"] == 1.0
    if T == 100:  # the finite untied network at the rule: its exact Jacobian's m1 meets the same criterion
        m = empirical_jacobian_moments(cell, rule.hyperparameters, width=300, burn_in=100, weights=rule.weights,
                                       samples=2)
        assert abs(T * math.log(m["m1"])) <= 1, (cell, m["m1"], rule.predicted["m1"])
        assert m["m1"] == pytest.approx(rule.predicted["m1"], rel=FINITE_WIDTH_M1)


@pytest.mark.slow
def test_gru_rule_for_the_copy_task_of_length_60_exists():
    """The issue's failing command, ``symmft train gru --init critical --task copy --length 60``: its rule is
    searched for the whole 80-step sequence at the signal's second moment."""
    task = make_task("copy", 60)
    info = resolve_init(load_cell("gru"), "critical", task, 16)
    assert info["rule_length"] == task.steps == 80
    rule = critical_rule(load_cell("gru"), task.steps, task.q_rule)
    assert meets_criteria(rule["criteria"], 80) == []


@pytest.mark.slow
@pytest.mark.parametrize("T", (10, 100, 1000))
@pytest.mark.parametrize("cell", BUILT_IN)
def test_critical_rule_meets_its_length_dependent_criteria(cell, T):
    check_rule(cell, T)


@pytest.mark.slow
@pytest.mark.parametrize("T", (10, 100, 1000))
def test_critical_rule_for_a_user_cell_meets_its_criteria(janet, T):
    check_rule(janet, T)


def test_user_cell_trains_and_confirms_with_every_init(janet, tmp_path):
    """A cell file's path works wherever a built-in name does: the sweep trains it from the critical rule (searched
    for T = 10 at the task's input statistics) and from every baseline that applies to it."""
    summary = confirm(Sweep(janet, "adding", (10,), ("critical", *BASELINES), (0,), width=4, steps=2, batch=8),
                      tmp_path, workers=1, processes=False)
    assert [r["init"] for r in summary["rows"]] == ["critical", *BASELINES]
    assert all(math.isfinite(r["mean"]) and r["status"] == 0 for r in summary["rows"])
    task = make_task("adding", 10)
    rule = critical_rule(load_cell(janet), task.steps, task.q_rule)  # the rule the sweep used (cached)
    assert meets_criteria(rule["criteria"], 10) == []
