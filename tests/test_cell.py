"""Cell files traced into graphs: built-in cells, user cells, and the errors a wrong cell file gets.

Structural facts are checked against what one reads in the cell file itself (map names, which vectors each map
multiplies, the line that makes each node), never against another output of the tracer. Bad cell files are written
into ``tmp_path``; the offending line is marked ``# <- HERE`` so each test reads the expected line number from the
text it wrote.
"""

from __future__ import annotations

import hashlib
import re
import textwrap
from pathlib import Path

import pytest

from symmft import Cell, available_cells, load_cell, CellDefinitionError, SymmftError
from symmft.cell.trace import BUILTIN_DIR, resolve_cell_path

REPO = Path(__file__).resolve().parent.parent
BUILTINS = ("gru", "gru_reset_before", "lstm", "minimal_rnn", "vanilla_rnn")
MARK = "# <- HERE"


# ---------------------------------------------------------------- helpers


def write_cell(directory: Path, source: str, name: str = "cell") -> Path:
    path = directory / f"{name}.py"
    path.write_text(textwrap.dedent(source).lstrip("\n"))
    return path


def marked_line(path: Path) -> int:
    """The 1-based line of ``path`` carrying the ``# <- HERE`` marker (exactly one)."""
    hits = [n for n, text in enumerate(path.read_text().splitlines(), 1) if MARK in text]
    assert len(hits) == 1, f"test bug: {path} must mark exactly one line"
    return hits[0]


def line_text(path: Path, line: int) -> str:
    return path.read_text().splitlines()[line - 1]


def split_where(where: str) -> tuple[Path, int]:
    file, _, line = where.rpartition(":")
    return Path(file), int(line)


def cell_error(path: Path) -> str:
    with pytest.raises(CellDefinitionError) as info:
        load_cell(path)
    return str(info.value)


def assert_error_at_marked_line(path: Path, *keywords: str) -> str:
    """Loading ``path`` fails with a message that starts ``path:LINE:`` (LINE = marked line) and has ``keywords``."""
    message = cell_error(path)
    match = re.match(rf"{re.escape(str(path.resolve()))}:(\d+): ", message)
    assert match, f"message does not start with file:line: {message}"
    assert int(match.group(1)) == marked_line(path), message
    for k in keywords:
        assert k in message, f"{k!r} not in {message!r}"
    return message


def vectors(cell: Cell, name: str) -> list[tuple[str, str]]:
    """(vector, hyperparameter) of each matrix of affine map ``name``."""
    return [(i.vector, i.hyperparameter) for i in cell.affine(name).inputs]


def op(cell: Cell, node) -> str:
    return cell.graph.nodes[node]["op"]


def args(cell: Cell, node) -> list:
    """Operands of ``node`` in argument order."""
    edges = sorted(cell.graph.in_edges(node, data=True), key=lambda e: e[2]["position"])
    return [u for u, _, _ in edges]


def consumer(cell: Cell, node) -> str:
    """The op of the single node that consumes ``node``."""
    (succ,) = cell.graph.successors(node)
    return op(cell, succ)


def state_node(cell: Cell, name: str):
    (node,) = [n for n, a in cell.graph.nodes(data=True) if a["op"] == "state" and a["name"] == name]
    return node


def input_node(cell: Cell):
    (node,) = [n for n, a in cell.graph.nodes(data=True) if a["op"] == "input"]
    return node


# ---------------------------------------------------------------- built-in cells


def test_builtin_cells_are_the_files_in_cells_dir():
    assert BUILTIN_DIR == REPO / "cells"
    assert set(BUILTINS) <= set(available_cells())
    assert available_cells() == sorted(p.stem for p in (REPO / "cells").glob("*.py") if not p.name.startswith("_"))


@pytest.mark.parametrize("name", available_cells())
def test_every_builtin_cell_loads_by_name_and_by_path(name, monkeypatch):
    by_name = load_cell(name)
    file = REPO / "cells" / f"{name}.py"
    monkeypatch.chdir(REPO)
    for spec in (file, str(file), f"cells/{name}.py", Path("cells") / f"{name}.py"):
        by_path = load_cell(spec)
        assert by_path.path == by_name.path == file
        assert by_path.name == by_name.name == name
        assert by_path.states == by_name.states
        assert dict(by_path.graph.nodes(data=True)) == dict(by_name.graph.nodes(data=True))
        assert set(by_path.graph.edges) == set(by_name.graph.edges)
        assert by_path.hyperparameter_names() == by_name.hyperparameter_names()
    assert by_name.file_hash == hashlib.sha256(file.read_bytes()).hexdigest()
    assert by_name.doc and by_name.doc.splitlines()[0] in file.read_text()
    assert by_name.step.__code__.co_filename == str(file)  # the file's own step, for the simulator


def test_lstm_has_maps_i_f_g_o_each_multiplying_x_and_h():
    cell = load_cell("lstm")
    assert cell.states == ("c", "h")
    assert [a.name for a in cell.affines] == ["i", "f", "g", "o"]
    x, h, c = input_node(cell), state_node(cell, "h"), state_node(cell, "c")
    for k in "ifgo":
        a = cell.affine(k)
        assert vectors(cell, k) == [("x", f"sigma2_{k}"), ("h", f"nu2_{k}")]
        assert args(cell, a.node) == [x, h]
        assert cell.graph.edges[x, a.node, 0]["hyperparameter"] == f"sigma2_{k}"
        assert cell.graph.edges[h, a.node, 0]["hyperparameter"] == f"nu2_{k}"
        assert cell.graph.nodes[a.node]["gaussian"]
        assert consumer(cell, a.node) == ("tanh" if k == "g" else "sigmoid")
    # the old memory c enters only through f * c
    (mul,) = cell.graph.successors(c)
    assert op(cell, mul) == "mul" and set(args(cell, mul)) == {c, next(cell.graph.successors(cell.affine("f").node))}
    # c' = f*c + i*g;  h' = o*tanh(c')
    c_new, h_new = cell.outputs["c"], cell.outputs["h"]
    assert op(cell, c_new) == "add" and [op(cell, a) for a in args(cell, c_new)] == ["mul", "mul"]
    assert op(cell, h_new) == "mul"
    sig_o, tanh_c = args(cell, h_new)
    assert args(cell, sig_o) == [cell.affine("o").node]
    assert op(cell, tanh_c) == "tanh" and args(cell, tanh_c) == [c_new]


def test_gru_reset_after_has_maps_r_z_on_x_and_h_n_on_x_only_hn_on_h_only():
    cell = load_cell("gru")
    assert cell.states == ("h",)
    assert [a.name for a in cell.affines] == ["r", "z", "n", "hn"]
    assert vectors(cell, "r") == [("x", "sigma2_r"), ("h", "nu2_r")]
    assert vectors(cell, "z") == [("x", "sigma2_z"), ("h", "nu2_z")]
    assert vectors(cell, "n") == [("x", "sigma2_n")]
    assert vectors(cell, "hn") == [("h", "nu2_hn")]
    # n = tanh(u^n + r * u^hn): the reset gate multiplies the recurrent map's output
    (tanh_n,) = [v for v in cell.graph.nodes if op(cell, v) == "tanh"]
    add = args(cell, tanh_n)[0]
    assert op(cell, add) == "add"
    u_n, r_hn = args(cell, add)
    assert u_n == cell.affine("n").node and op(cell, r_hn) == "mul"
    assert [op(cell, a) for a in args(cell, r_hn)] == ["sigmoid", "affine"]
    assert args(cell, args(cell, r_hn)[0]) == [cell.affine("r").node]
    assert args(cell, r_hn)[1] == cell.affine("hn").node


def test_gru_reset_before_map_n_multiplies_x_and_reset_times_h():
    cell = load_cell("gru_reset_before")
    assert [a.name for a in cell.affines] == ["r", "z", "n"]
    # one state-derived vector (r*h, unnamed) -> a single nu2_n
    assert vectors(cell, "n") == [("x", "sigma2_n"), ("v", "nu2_n")]
    x_node, derived = args(cell, cell.affine("n").node)
    assert x_node == input_node(cell)
    assert op(cell, derived) == "mul"
    sig_r, h = args(cell, derived)
    assert op(cell, sig_r) == "sigmoid" and args(cell, sig_r) == [cell.affine("r").node]
    assert h == state_node(cell, "h")


def test_minimal_rnn_map_u_multiplies_h_and_z_with_one_variance_each():
    cell = load_cell("minimal_rnn")
    assert [a.name for a in cell.affines] == ["z", "u"]
    assert vectors(cell, "z") == [("x", "sigma2_z")]
    assert vectors(cell, "u") == [("h", "nu2_u_h"), ("z", "nu2_u_z")]
    h, z = args(cell, cell.affine("u").node)
    assert h == state_node(cell, "h")
    assert op(cell, z) == "tanh" and args(cell, z) == [cell.affine("z").node]
    assert consumer(cell, cell.affine("u").node) == "sigmoid"


def test_vanilla_rnn_is_tanh_of_one_map_on_x_and_h():
    cell = load_cell("vanilla_rnn")
    assert vectors(cell, "h") == [("x", "sigma2_h"), ("h", "nu2_h")]
    h_new = cell.outputs["h"]
    assert op(cell, h_new) == "tanh" and args(cell, h_new) == [cell.affine("h").node]


@pytest.mark.parametrize(
    "name, expected",
    [
        ("lstm", [f"{p}_{k}" for k in "ifgo" for p in ("sigma2", "nu2", "mu", "rho2")]),
        ("gru", ["sigma2_r", "nu2_r", "mu_r", "rho2_r", "sigma2_z", "nu2_z", "mu_z", "rho2_z",
                 "sigma2_n", "mu_n", "rho2_n", "nu2_hn", "mu_hn", "rho2_hn"]),
        ("gru_reset_before", [f"{p}_{k}" for k in "rzn" for p in ("sigma2", "nu2", "mu", "rho2")]),
        ("minimal_rnn", ["sigma2_z", "mu_z", "rho2_z", "nu2_u_h", "nu2_u_z", "mu_u", "rho2_u"]),
        ("vanilla_rnn", ["sigma2_h", "nu2_h", "mu_h", "rho2_h"]),
    ],
)
def test_hyperparameter_names_of_builtin_cells(name, expected):
    assert list(load_cell(name).hyperparameter_names()) == expected


# What the line that created a node must contain, by op (read from the cell file, not from the tracer).
def _expected_text(attrs) -> str:
    return {
        "affine": f'affine("{attrs.get("name")}"',
        "sigmoid": "ops.sigmoid(",
        "tanh": "ops.tanh(",
        "erf": "ops.erf(",
        "add": "+",
        "sub": "-",
        "mul": "*",
        "const": f"{attrs.get('value', 0):g}",
        "input": "def step(x",
        "state": f"{attrs.get('name')}",
        "output": "return",
    }[attrs["op"]]


@pytest.mark.parametrize("name", available_cells())
def test_every_node_where_points_to_the_line_of_the_file_that_makes_it(name):
    cell = load_cell(name)
    for node, attrs in cell.graph.nodes(data=True):
        file, line = split_where(attrs["where"])
        assert file == cell.path
        text = line_text(file, line)
        assert _expected_text(attrs) in text, f"node {node} {attrs} points at {line}: {text!r}"
        if attrs["op"] == "state":
            assert text.startswith("def step(")
    for a in cell.affines:
        assert a.where == cell.where(a.node)


def test_affine_maps_are_gaussian_and_nonlinearities_are_not_in_builtin_cells():
    for name in available_cells():
        cell = load_cell(name)
        for node, attrs in cell.graph.nodes(data=True):
            if attrs["op"] == "affine":
                assert attrs["gaussian"]
            elif attrs["op"] in ("sigmoid", "tanh", "erf", "state", "input", "const", "output"):
                assert not attrs["gaussian"], (name, node, attrs)


def test_constant_scalings_and_shifts_of_an_affine_map_stay_gaussian(tmp_path):
    path = write_cell(
        tmp_path,
        """
        STATE = ("h",)

        def step(x, h, ops):
            u = ops.affine("u", x, h)
            scaled = 2.0 * u  # gaussian
            shifted = scaled - 1  # gaussian
            negated = -u  # gaussian
            product = u * ops.tanh(h)  # not gaussian
            return ops.tanh(shifted) + ops.tanh(negated) + product
        """,
    )
    cell = load_cell(path)
    for node, attrs in cell.graph.nodes(data=True):
        text = line_text(path, split_where(attrs["where"])[1])
        if attrs["op"] in ("add", "sub", "mul") and "#" in text:
            assert attrs["gaussian"] == text.endswith("# gaussian"), (node, attrs, text)


# ---------------------------------------------------------------- user cells (outside the library)


def test_janet_forget_gate_only_lstm_defined_in_a_test_loads(tmp_path):
    before = available_cells()
    path = write_cell(
        tmp_path,
        '''
        """JANET (van der Westhuizen & Lasenby 2018): c' = f*c + (1-f)*tanh(u^c), h' = c."""
        STATE = ("c",)

        def step(x, c, ops):
            f = ops.sigmoid(ops.affine("f", x, c))
            return f * c + (1 - f) * ops.tanh(ops.affine("u", x, c))
        ''',
        name="janet",
    )
    cell = load_cell(path)
    assert cell.name == "janet" and cell.path == path.resolve() and cell.doc.startswith("JANET")
    assert vectors(cell, "f") == [("x", "sigma2_f"), ("c", "nu2_f")]
    assert vectors(cell, "u") == [("x", "sigma2_u"), ("c", "nu2_u")]
    assert op(cell, cell.outputs["c"]) == "add"
    assert available_cells() == before and not (BUILTIN_DIR / "janet.py").exists()


def test_coupled_input_forget_lstm_defined_in_a_test_loads(tmp_path):
    path = write_cell(
        tmp_path,
        """
        STATE = ("c", "h")

        def step(x, c, h, ops):
            f = ops.sigmoid(ops.affine("f", x, h))
            g = ops.tanh(ops.affine("g", x, h))
            o = ops.sigmoid(ops.affine("o", x, h))
            c = f * c + (1 - f) * g
            return c, o * ops.tanh(c)
        """,
        name="cifg",
    )
    cell = load_cell(path)
    assert [a.name for a in cell.affines] == ["f", "g", "o"]
    assert cell.hyperparameter_names() == tuple(f"{p}_{k}" for k in "fgo" for p in ("sigma2", "nu2", "mu", "rho2"))
    assert [op(cell, v) for v in cell.graph.nodes if op(cell, v) == "sub"] == ["sub"]  # the one 1 - f


def test_minimal_gated_unit_defined_in_a_test_loads(tmp_path):
    path = write_cell(
        tmp_path,
        """
        STATE = ("h",)

        def step(x, h, ops):
            f = ops.sigmoid(ops.affine("f", x, h))
            n = ops.tanh(ops.affine("n", x, f * h))
            return (1 - f) * h + f * n
        """,
        name="mgu",
    )
    cell = load_cell(path)
    assert vectors(cell, "f") == [("x", "sigma2_f"), ("h", "nu2_f")]
    assert vectors(cell, "n") == [("x", "sigma2_n"), ("v", "nu2_n")]


def test_user_cell_may_use_erf_helpers_named_vectors_and_numpy_scalars(tmp_path):
    path = write_cell(
        tmp_path,
        """
        import numpy as np
        STATE = ("c", "h")

        def gate(name, x, h, ops):
            return 0.5 * (1 + ops.erf(ops.affine(name, x, h)))  # helper

        def step(x, c, h, ops):
            f = gate("f", x, h, ops)
            u = ops.tanh(ops.affine("u", x, c, h=f * h))
            return -(f * c) + np.float64(2.0) * u, ops.tanh(ops.affine("k", c, h))
        """,
    )
    cell = load_cell(path)
    assert vectors(cell, "f") == [("x", "sigma2_f"), ("h", "nu2_f")]
    assert vectors(cell, "u") == [("x", "sigma2_u"), ("c", "nu2_u_c"), ("h", "nu2_u_h")]
    assert vectors(cell, "k") == [("c", "nu2_k_c"), ("h", "nu2_k_h")]
    # nodes made inside the helper point at the helper's line
    f_line = split_where(cell.affine("f").where)[1]
    assert "# helper" in line_text(path, f_line)


# ---------------------------------------------------------------- bad cells: clear errors at the right line


def test_cell_definition_error_is_a_symmft_error():
    assert issubclass(CellDefinitionError, SymmftError)


def test_typo_in_step_is_reported_at_its_line(tmp_path):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def step(x, h, ops):
            f = ops.sigmoid(ops.affine("f", x, hh))  {MARK}
            return f * h
        """,
    )
    assert_error_at_marked_line(path, "NameError", "'hh'")


def test_state_never_updated_is_reported_at_the_return(tmp_path):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("c", "h")

        def step(x, c, h, ops):
            f = ops.sigmoid(ops.affine("f", x, h))
            return f * c, h  {MARK}
        """,
    )
    assert_error_at_marked_line(path, "'h'", "never updated")


def test_gate_used_before_definition_is_reported_where_it_is_used(tmp_path):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def step(x, h, ops):
            f = ops.sigmoid(ops.affine("f", x, g * h))  {MARK}
            g = ops.sigmoid(ops.affine("g", x, h))
            return f * h
        """,
    )
    assert_error_at_marked_line(path, "'g'", "not associated with a value")


def test_unknown_nonlinearity_lists_the_allowed_ops(tmp_path):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def step(x, h, ops):
            return ops.relu(ops.affine("h", x, h))  {MARK}
        """,
    )
    assert_error_at_marked_line(path, "ops.relu", "ops.sigmoid", "ops.tanh", "ops.erf", "ops.affine")


def test_unknown_cell_name_lists_builtins_and_suggests_the_closest():
    with pytest.raises(CellDefinitionError) as info:
        load_cell("lstmm")
    message = str(info.value)
    assert "'lstmm'" in message and "did you mean 'lstm'" in message and "path" in message
    for name in BUILTINS:
        assert name in message
    with pytest.raises(CellDefinitionError, match="unknown cell 'qqq'"):
        resolve_cell_path("qqq")


def test_missing_cell_file_is_named(tmp_path):
    missing = tmp_path / "nope.py"
    with pytest.raises(CellDefinitionError, match="does not exist") as info:
        load_cell(missing)
    assert str(missing) in str(info.value)
    with pytest.raises(CellDefinitionError, match="does not exist"):
        load_cell(str(tmp_path / "sub" / "janet"))  # a path without .py is still a path, not a name


def test_syntax_error_is_reported_at_its_line(tmp_path):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def step(x, h, ops):
            return ops.tanh(ops.affine("h", x, h)  {MARK}
        """,
    )
    assert_error_at_marked_line(path, "syntax error")


def test_cell_file_failing_at_import_is_reported_at_its_line(tmp_path):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)
        import no_such_module_for_symmft  {MARK}
        """,
    )
    assert_error_at_marked_line(path, "failed to load", "no_such_module_for_symmft")


@pytest.mark.parametrize(
    "state_line, keywords",
    [
        ("", ["STATE", "tuple of state names"]),
        ("STATE = ()", ["STATE", "tuple of state names"]),
        ("STATE = ('h', 3)", ["STATE", "tuple of state names"]),
        ("STATE = ['h', 'h']", ["names a state twice"]),
        ("STATE = ('x',)", ["'x'", "identifier other than"]),
        ("STATE = ('ops',)", ["'ops'", "identifier other than"]),
        ("STATE = ('my state',)", ["'my state'", "identifier"]),
    ],
)
def test_missing_or_bad_state_is_rejected(tmp_path, state_line, keywords):
    path = write_cell(tmp_path, f"{state_line}\ndef step(x, h, ops):\n    return h\n")
    message = cell_error(path)
    assert message.startswith(str(path.resolve()))
    for k in keywords:
        assert k in message


@pytest.mark.parametrize("step_line", ["", "step = 3", "steps = lambda x, h, ops: h"])
def test_missing_step_says_what_signature_to_define(tmp_path, step_line):
    path = write_cell(tmp_path, f'STATE = ("c", "h")\n{step_line}\n')
    message = cell_error(path)
    assert message.startswith(str(path.resolve())) and "step(x, c, h, ops)" in message


@pytest.mark.parametrize(
    "signature, got",
    [("x, h, c, ops", "(x, h, c, ops)"), ("x, c, h", "(x, c, h)"), ("x, c, h, ops, extra=1", "(x, c, h, ops, extra)")],
)
def test_step_signature_not_matching_state_is_reported_at_def(tmp_path, signature, got):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("c", "h")

        def step({signature}):  {MARK}
            return c, h
        """,
    )
    assert_error_at_marked_line(path, "(x, c, h, ops)", got, "STATE")


@pytest.mark.parametrize("returned, count", [("f * c", "1 value "), ("f * c, f * h, f", "3 values")])
def test_wrong_number_of_returned_values_is_reported_at_the_return(tmp_path, returned, count):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("c", "h")

        def step(x, c, h, ops):
            f = ops.sigmoid(ops.affine("f", x, h))
            return {returned}  {MARK}
        """,
    )
    assert_error_at_marked_line(path, f"returns {count}", "STATE has 2", "c, h")


def test_step_without_return_says_it_returns_nothing(tmp_path):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def step(x, h, ops):  {MARK}
            ops.tanh(ops.affine("h", x, h))
        """,
    )
    assert_error_at_marked_line(path, "returns nothing", "h")


def test_returning_raw_input_or_a_string_is_reported_at_the_return(tmp_path):
    path = write_cell(tmp_path, f'STATE = ("h",)\ndef step(x, h, ops):\n    return x  {MARK}\n', name="raw")
    assert_error_at_marked_line(path, "raw input x", "ops.affine")
    path = write_cell(tmp_path, f'STATE = ("h",)\ndef step(x, h, ops):\n    return "h"  {MARK}\n', name="text")
    assert_error_at_marked_line(path, "str", "cell value or a number")


@pytest.mark.parametrize("expression", ["x * h", "h + x", "ops.tanh(x)", "1 - x"])
def test_input_used_elementwise_must_go_through_affine(tmp_path, expression):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def step(x, h, ops):
            u = ops.tanh(ops.affine("u", x, h))
            return u * ({expression})  {MARK}
        """,
    )
    assert_error_at_marked_line(path, "input x", "ops.affine")


@pytest.mark.parametrize(
    "expression, keywords",
    [
        ("u / 2", ["division", "'/'", "1/c"]),
        ("2 / u", ["division", "'/'"]),
        ("u ** 2", ["power", "'**'", "v * v"]),
        ("u @ h", ["matrix product", "ops.affine"]),
        ("u.T", ["no attribute 'T'", "ops.tanh"]),
    ],
)
def test_unsupported_arithmetic_names_the_operator(tmp_path, expression, keywords):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def step(x, h, ops):
            u = ops.tanh(ops.affine("u", x, h))
            return {expression}  {MARK}
        """,
    )
    message = assert_error_at_marked_line(path, *keywords)
    assert "+, -" in message  # says what is allowed


@pytest.mark.parametrize("condition", ["if u:", "if u and h:", "while u:"])
def test_value_in_a_python_condition_is_rejected(tmp_path, condition):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def step(x, h, ops):
            u = ops.tanh(ops.affine("u", x, h))
            {condition}  {MARK}
                return u
            return u * h
        """,
    )
    assert_error_at_marked_line(path, "condition")


@pytest.mark.parametrize("call", ["np.tanh(u)", "np.exp(u)", "math.tanh(u)"])
def test_numpy_or_math_function_on_a_traced_value_points_to_ops(tmp_path, call):
    path = write_cell(
        tmp_path,
        f"""
        import math
        import numpy as np
        STATE = ("h",)

        def step(x, h, ops):
            u = ops.affine("u", x, h)
            return {call}  {MARK}
        """,
    )
    assert_error_at_marked_line(path, "ops.tanh", "ops.sigmoid")


def test_affine_map_name_reused_names_both_lines(tmp_path):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def step(x, h, ops):
            a = ops.tanh(ops.affine("f", x, h))
            return ops.tanh(ops.affine("f", x, a))  {MARK}
        """,
    )
    message = assert_error_at_marked_line(path, "'f'", "defined twice")
    assert f"first at {path.resolve()}:{marked_line(path) - 1}" in message


@pytest.mark.parametrize("call", ['ops.affine("f", x, 1.0)', 'ops.affine("f", 2)'])
def test_affine_of_a_constant_says_biases_are_implicit(tmp_path, call):
    path = write_cell(tmp_path, f'STATE = ("h",)\ndef step(x, h, ops):\n    return ops.tanh({call}) * h  {MARK}\n')
    assert_error_at_marked_line(path, "constant", "biases are implicit")


def test_several_unnamed_derived_vectors_in_one_affine_ask_for_keywords(tmp_path):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def step(x, h, ops):
            r = ops.sigmoid(ops.affine("r", x, h))
            return ops.tanh(ops.affine("n", x, r * h, (1 - r) * h))  {MARK}
        """,
    )
    assert_error_at_marked_line(path, "'n'", "several state-derived vectors", "keyword")


@pytest.mark.parametrize(
    "call, keywords",
    [
        ('ops.affine("u", x, x)', ["a vector twice"]),
        ('ops.affine("u", h, inp=x)', ["input x positionally"]),
        ('ops.affine("u", h, x=ops.tanh(h))', ["another vector 'x'"]),
        ("ops.affine(x, h)", ["needs a name"]),
        ('ops.affine("u")', ["multiplies no vector"]),
    ],
)
def test_malformed_affine_calls_are_rejected(tmp_path, call, keywords):
    path = write_cell(tmp_path, f'STATE = ("h",)\ndef step(x, h, ops):\n    return ops.tanh({call})  {MARK}\n')
    assert_error_at_marked_line(path, *keywords)


def test_two_maps_that_would_share_a_variance_name_are_rejected(tmp_path):
    # map "u" on h and c gets nu2_u_h, nu2_u_c; map "u_h" on one derived vector gets nu2_u_h too
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("c", "h")

        def step(x, c, h, ops):
            a = ops.tanh(ops.affine("u_h", x, ops.tanh(h)))
            b = ops.tanh(ops.affine("u", h, c))  {MARK}
            return a * c, b
        """,
    )
    assert_error_at_marked_line(path, "nu2_u_h", "'u_h'", "rename")


def test_error_inside_a_helper_points_at_the_helper_line(tmp_path):
    path = write_cell(
        tmp_path,
        f"""
        STATE = ("h",)

        def gate(x, h, ops):
            return ops.sigmoid(ops.affine("f", x, hh))  {MARK}

        def step(x, h, ops):
            return gate(x, h, ops) * h
        """,
    )
    assert_error_at_marked_line(path, "NameError", "'hh'")


def test_a_value_multiplied_by_itself_keeps_both_arguments(tmp_path):
    """v * v must be a product of two arguments (a DiGraph would keep one edge and lose the square)."""
    path = tmp_path / "square.py"
    path.write_text('STATE = ("h",)\n\n\ndef step(x, h, ops):\n    f = ops.sigmoid(ops.affine("f", x, h))\n    return f * f * h + ops.tanh(ops.affine("g", x))\n')
    cell = load_cell(path)
    squares = [n for n, a in cell.graph.nodes(data=True) if a["op"] == "mul" and cell.graph.in_degree(n) == 2]
    assert any(len(set(p for p, _ in cell.graph.in_edges(n))) == 1 for n in squares)

