"""Hyperparameters: names, defaults, validation, command-line parsing and descriptions."""

from __future__ import annotations

import numpy as np
import pytest

from symmft.cell import params
from symmft import available_cells, load_cell, HyperparameterError, SymmftError


@pytest.fixture(scope="module")
def lstm():
    return load_cell("lstm")


@pytest.fixture(scope="module")
def minimal_rnn():
    return load_cell("minimal_rnn")


def test_hyperparameter_error_is_a_value_error_and_a_symmft_error():
    assert issubclass(HyperparameterError, ValueError) and issubclass(HyperparameterError, SymmftError)


def test_names_are_the_cell_hyperparameters_then_chrono_then_input_statistics(lstm):
    chrono = tuple(f"beta_{k}" for k in "ifgo") + ("chrono_length",)
    assert params.names(lstm) == lstm.hyperparameter_names() + chrono + ("q_x", "c_x")


def test_defaults_are_unit_variances_zero_bias_and_identical_unit_inputs(lstm, minimal_rnn):
    for cell in (lstm, minimal_rnn):
        values = params.resolve(cell)
        assert list(values) == list(params.names(cell))
        for name, value in values.items():
            assert isinstance(value, float)
            if name.startswith(("sigma2_", "nu2_")):
                assert value == 1.0, name
            elif name.startswith(("mu_", "rho2_")):
                assert value == 0.0, name
        assert values["q_x"] == 1.0 and values["c_x"] == 1.0
    assert params.resolve(minimal_rnn)["nu2_u_z"] == 1.0
    assert params.default("sigma2_f") == params.default("nu2_u_h") == 1.0
    assert params.default("mu_f") == params.default("rho2_f") == 0.0


def test_resolve_overrides_only_the_given_names(lstm):
    values = params.resolve(lstm, {"nu2_f": 2.5, "mu_f": -1.0, "c_x": -0.5, "q_x": 0.0})
    assert values["nu2_f"] == 2.5 and values["mu_f"] == -1.0 and values["c_x"] == -0.5 and values["q_x"] == 0.0
    assert values["nu2_i"] == 1.0 and values["mu_i"] == 0.0


def test_unknown_hyperparameter_suggests_the_closest_name(lstm):
    with pytest.raises(HyperparameterError) as info:
        params.resolve(lstm, {"nu2_ff": 1.0})
    message = str(info.value)
    assert "unknown hyperparameter 'nu2_ff'" in message and "did you mean 'nu2_f'?" in message and "'lstm'" in message
    with pytest.raises(HyperparameterError) as info:
        params.resolve(lstm, {"zzzzzz": 1.0})
    message = str(info.value)
    assert "did you mean" not in message
    assert all(n in message for n in params.names(lstm))  # lists what is known


def test_hyperparameter_of_another_cell_is_unknown(minimal_rnn):
    with pytest.raises(HyperparameterError, match="unknown hyperparameter 'nu2_u'.*did you mean 'nu2_u_"):
        params.resolve(minimal_rnn, {"nu2_u": 1.0})


@pytest.mark.parametrize("name", ["sigma2_f", "nu2_f", "rho2_f", "q_x"])
def test_negative_variance_is_rejected(lstm, name):
    with pytest.raises(HyperparameterError) as info:
        params.resolve(lstm, {name: -0.25})
    message = str(info.value)
    assert name in message and "variance" in message and ">= 0" in message and "-0.25" in message
    with pytest.raises(HyperparameterError, match=name):
        params.resolve(lstm, {name: np.array([1.0, 0.0, -1e-9])})
    assert params.resolve(lstm, {name: 0.0})[name] == 0.0  # zero is allowed


def test_bias_mean_may_be_negative(lstm):
    assert params.resolve(lstm, {"mu_f": -3.0})["mu_f"] == -3.0


@pytest.mark.parametrize("value", [1.0001, -1.5, np.array([0.0, 0.5, 2.0])])
def test_input_correlation_outside_unit_interval_is_rejected(lstm, value):
    with pytest.raises(HyperparameterError, match=r"c_x is a correlation and must lie in \[-1, 1\]"):
        params.resolve(lstm, {"c_x": value})


@pytest.mark.parametrize("value", [-1.0, 0.0, 1.0])
def test_input_correlation_at_the_ends_of_the_interval_is_allowed(lstm, value):
    assert params.resolve(lstm, {"c_x": value})["c_x"] == value


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf, [1.0, np.nan]])
@pytest.mark.parametrize("name", ["nu2_f", "mu_f", "c_x"])
def test_non_finite_value_is_rejected(lstm, name, value):
    with pytest.raises(HyperparameterError, match=f"{name} must be finite"):
        params.resolve(lstm, {name: value})


@pytest.mark.parametrize("value", ["abc", None, 1j, {"a": 1}, [1.0, "a"], [[1.0, 2.0], [3.0]], object()])
def test_non_numeric_value_is_rejected(lstm, value):
    with pytest.raises(HyperparameterError) as info:
        params.resolve(lstm, {"nu2_f": value})
    assert "nu2_f must be a number or array of numbers" in str(info.value)


def test_grids_are_arrays_and_scalars_stay_floats(lstm):
    grid = np.linspace(0.5, 2.0, 4)
    values = params.resolve(lstm, {"nu2_f": grid, "sigma2_f": [1.0, 2.0, 3.0, 4.0], "mu_f": np.float32(0.5),
                                   "rho2_f": np.array(0.1), "q_x": 2})
    assert isinstance(values["nu2_f"], np.ndarray) and np.array_equal(values["nu2_f"], grid)
    assert isinstance(values["sigma2_f"], np.ndarray) and values["sigma2_f"].dtype == float
    for name in ("mu_f", "rho2_f", "q_x"):
        assert type(values[name]) is float
    assert values["rho2_f"] == 0.1 and values["q_x"] == 2.0


def test_grids_on_separate_axes_broadcast_into_a_mesh(lstm):
    values = params.resolve(lstm, {"nu2_f": np.linspace(0, 1, 3)[:, None], "mu_f": np.linspace(-1, 1, 5)[None, :]})
    assert np.broadcast(values["nu2_f"], values["mu_f"]).shape == (3, 5)


def test_grids_that_cannot_broadcast_are_rejected_naming_both(lstm):
    with pytest.raises(HyperparameterError) as info:
        params.resolve(lstm, {"nu2_f": np.zeros(3), "mu_f": np.zeros(4)})
    message = str(info.value)
    assert "broadcast" in message and "nu2_f (3,)" in message and "mu_f (4,)" in message


@pytest.mark.parametrize(
    "text, expected",
    [("nu2_f=1.5", ("nu2_f", 1.5)), (" nu2_f = 2 ", ("nu2_f", 2.0)), ("mu_f=-1e-3", ("mu_f", -1e-3)),
     ("c_x=1", ("c_x", 1.0))],
)
def test_parse_assignment_reads_name_equals_value(text, expected):
    assert params.parse_assignment(text) == expected


@pytest.mark.parametrize("text", ["nu2_f", "=1", "  =1", "nu2_f 1"])
def test_parse_assignment_without_name_or_equals_is_rejected(text):
    with pytest.raises(HyperparameterError, match="expected NAME=VALUE"):
        params.parse_assignment(text)


@pytest.mark.parametrize("text", ["nu2_f=abc", "nu2_f=", "nu2_f=1,2"])
def test_parse_assignment_with_non_number_names_the_parameter(text):
    with pytest.raises(HyperparameterError, match="hyperparameter nu2_f: .* is not a number"):
        params.parse_assignment(text)


def test_parsed_assignment_feeds_resolve_which_validates_it(lstm):
    assert params.resolve(lstm, dict([params.parse_assignment("nu2_f=3")]))["nu2_f"] == 3.0
    with pytest.raises(HyperparameterError, match="finite"):
        params.resolve(lstm, dict([params.parse_assignment("nu2_f=inf")]))


def test_parse_grid_reads_a_linspace():
    name, grid = params.parse_grid("nu2_f=0:2:5")
    assert name == "nu2_f" and np.array_equal(grid, [0.0, 0.5, 1.0, 1.5, 2.0])
    name, grid = params.parse_grid(" c_x = -1:-1:1 ")
    assert name == "c_x" and np.array_equal(grid, [-1.0])
    with pytest.raises(HyperparameterError, match="NUM = 1 gives START only"):  # linspace would drop STOP
        params.parse_grid("c_x=-1:1:1")


@pytest.mark.parametrize("text", ["nu2_f=0:2", "nu2_f=0:1:2:3", "nu2_f", "=0:1:3", " =0:1:3", "nu2_f 0:1:3"])
def test_parse_grid_with_wrong_shape_is_rejected(text):
    with pytest.raises(HyperparameterError, match="expected NAME=START:STOP:NUM"):
        params.parse_grid(text)


@pytest.mark.parametrize("text", ["nu2_f=a:1:3", "nu2_f=0:b:3", "nu2_f=0:1:2.5", "nu2_f=0:1:"])
def test_parse_grid_with_non_numbers_is_rejected(text):
    with pytest.raises(HyperparameterError, match="START and STOP must be numbers and NUM an integer"):
        params.parse_grid(text)


@pytest.mark.parametrize("num", ["0", "-2"])
def test_parse_grid_needs_at_least_one_point(num):
    with pytest.raises(HyperparameterError, match="NUM must be >= 1"):
        params.parse_grid(f"nu2_f=0:1:{num}")


@pytest.mark.parametrize("name", available_cells())
def test_describe_covers_every_name_with_its_default_and_meaning(name):
    cell = load_cell(name)
    rows = params.describe(cell)
    assert [r["name"] for r in rows] == list(params.names(cell))
    defaults = params.resolve(cell)
    for row in rows:
        assert row["default"] == defaults[row["name"]] == params.default(row["name"])
        assert row["meaning"]
    by_name = {r["name"]: r["meaning"] for r in rows}
    for a in cell.affines:
        assert f"map {a.name}" in by_name[a.mean] and "mean" in by_name[a.mean]
        assert f"map {a.name}" in by_name[a.bias_variance] and "variance" in by_name[a.bias_variance]
        for i in a.inputs:
            meaning = by_name[i.hyperparameter]
            assert f"map {a.name}" in meaning and i.hyperparameter in meaning
            # input matrices scale with the input width m, recurrent ones with the state width n
            assert meaning.endswith("/m)") if i.vector == "x" else meaning.endswith("/n)")


def test_describe_names_the_vector_a_recurrent_matrix_multiplies(minimal_rnn):
    by_name = {r["name"]: r["meaning"] for r in params.describe(minimal_rnn)}
    assert "applied to h" in by_name["nu2_u_h"] and "applied to z" in by_name["nu2_u_z"]
    assert "input matrix of map z" in by_name["sigma2_z"]
