"""Every input gets a right answer or a clear refusal (issue 11).

A table of bad or unusual command lines, one row per input: each must exit with code 2 and print one line
``symmft: error: ...`` naming the culprit, before any long work and without a traceback. Then the numeric cases,
where a number exists and must be the right one (checked against the mpmath map or a closed form) or where no
number exists and the status must say why.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from symmft import load_cell, Status, analyze, derive
from symmft.cli.main import main
from symmft.theory.compile import compile_map

from tolerances import SLOW_FIXED_POINT

DATA = Path(__file__).parent / "data"
README = Path(__file__).parents[1] / "README.md"

#: Cell files with a mistake each: name -> (source, what the message must name).
CELLS = {
    "if_cell.py": ('STATE = ("h",)\ndef step(x, h, ops):\n    u = ops.affine("u", x, h)\n    if u > 0:\n'
                   '        return u\n    return ops.tanh(u)\n', ["if_cell.py:4", "comparison"]),
    "abs_cell.py": ('STATE = ("h",)\ndef step(x, h, ops):\n    return ops.tanh(abs(ops.affine("u", x, h)))\n',
                    ["abs_cell.py:3", "abs()"]),
    "equal_cell.py": ('STATE = ("h",)\ndef step(x, h, ops):\n    u = ops.affine("u", x, h)\n'
                      '    return u if u == 0 else ops.tanh(u)\n', ["equal_cell.py:4", "comparison"]),
    "unnamed_affine.py": ('STATE = ("h",)\ndef step(x, h, ops):\n    return ops.tanh(ops.affine(x, h))\n',
                          ["unnamed_affine.py:3", "needs a name", 'ops.affine("u", x, h)']),
    "string_state.py": ('STATE = ("h")\ndef step(x, h, ops):\n    return ops.tanh(ops.affine("u", x, h))\n',
                        ["string_state.py:1", "('h',)"]),
    "division.py": ('STATE = ("h",)\ndef step(x, h, ops):\n    return ops.tanh(ops.affine("u", x, h)) / 2\n',
                    ["division.py:3", "division"]),
    "syntax.py": ('STATE = ("h",)\ndef step(x, h, ops)\n    return h\n', ["syntax.py:2", "syntax error"]),
}


@pytest.fixture
def files(tmp_path):
    """The cell files above, a binary 'cell', a directory and a plain file, under tmp_path."""
    for name, (source, _) in CELLS.items():
        (tmp_path / name).write_text(source)
    (tmp_path / "binary.py").write_bytes(b"\x7fELF\x02\x01\x01\x00\xd0\xcf\x11\xe0" * 8)
    (tmp_path / "nulls.py").write_bytes(b'STATE = ("h",)\x00\n')
    (tmp_path / "a_dir").mkdir()
    (tmp_path / "a_file.txt").write_text("not a directory\n")
    return tmp_path


def _cli_rows():
    """(id, argv with {tmp} for the fixture folder, substrings the one error line must contain)."""
    rows = [(f"cell {name}", ["analyze", "{tmp}/" + name], needles) for name, (_, needles) in CELLS.items()]
    return rows + [
        # cell files that are not cells
        ("binary cell", ["analyze", "{tmp}/binary.py"], ["binary.py", "not a cell file"]),
        ("null bytes in cell", ["analyze", "{tmp}/nulls.py"], ["nulls.py", "not a cell file"]),
        ("unknown cell", ["analyze", "lstn"], ["'lstn'", "did you mean 'lstm'"]),
        ("missing cell file", ["analyze", "{tmp}/nope.py"], ["nope.py", "does not exist"]),
        # hyperparameters and grids (already handled before issue 11)
        ("unknown hyperparameter", ["analyze", "lstm", "--set", "mu_ff=1"], ["mu_ff", "did you mean 'mu_f'"]),
        ("negative variance", ["analyze", "lstm", "--set", "nu2_f=-1"], ["nu2_f", ">= 0"]),
        ("correlation above 1", ["analyze", "lstm", "--set", "c_x=2"], ["c_x", "[-1, 1]"]),
        ("set twice", ["analyze", "lstm", "--set", "mu_f=1", "--set", "mu_f=2"], ["mu_f", "twice"]),
        ("grid NUM=1 drops STOP", ["analyze", "lstm", "--grid", "mu_f=0:6:1", "--json"], ["mu_f=0:6:1", "NUM = 1"]),
        ("grid of 1e8 points", ["analyze", "lstm", "--grid", "mu_f=0:1:100000000", "--json"],
         ["1e+08 points", "GiB", "days"]),
        ("mpmath 5000 digits", ["analyze", "lstm", "--backend", "mpmath", "--dps", "5000"], ["dps = 5000", "days"]),
        ("max iterations 0", ["analyze", "lstm", "--max-iterations", "0"], ["--max-iterations"]),
        ("tied theory on mpmath", ["analyze", "lstm", "--theory", "tied", "--backend", "mpmath"],
         ["--theory tied", "mpmath", "cupy"]),
        ("phase of 1e8 points", ["phase", "lstm", "--x", "mu_f=0:1:10000", "--y", "nu2_f=0:1:10000", "-o",
                                 "{tmp}/p"], ["1e+08 points"]),
        # size guards
        ("tied width 200000", ["simulate", "vanilla_rnn", "--width", "200000", "--tied"],
         ["width 200000", "GiB", "untied"]),
        ("critical T = 1e9", ["critical", "lstm", "--length", "1000000000"], ["T = 1e+09", "float32"]),
        # files the command line writes, checked before any work
        ("codegen -o a directory", ["codegen", "lstm", "-o", "{tmp}/a_dir"], ["a_dir", "is a directory"]),
        ("critical -o a directory", ["critical", "lstm", "--length", "10", "-o", "{tmp}/a_dir"],
         ["a_dir", "is a directory"]),
        ("export -o a directory", ["export", str(DATA / "janet_rule_T200.json"), "--to", "json", "-o",
                                   "{tmp}/a_dir"], ["a_dir", "is a directory"]),
        ("analyze -o under a file", ["analyze", "lstm", "--grid", "mu_f=0:1:2", "-o", "{tmp}/a_file.txt/out"],
         ["a_file.txt", "is a file"]),
        ("phase -o under a file", ["phase", "lstm", "--x", "mu_f=0:1:2", "--y", "nu2_f=0:1:2", "-o",
                                   "{tmp}/a_file.txt/p"], ["a_file.txt", "is a file"]),
        ("train -o a file", ["train", "lstm", "--init", "pytorch", "--task", "copy", "--length", "5", "-o",
                             str(README)], ["README.md", "not a directory"]),
        ("confirm -o a file", ["confirm", "lstm", "--task", "copy", "--lengths", "5", "--inits", "pytorch", "-o",
                               str(README)], ["README.md", "not a directory"]),
        # an export in another cell's convention
        ("export json as another cell", ["export", str(DATA / "janet_rule_T200.json"), "--to", "json",
                                         "--as-cell", "lstm"], ["--as-cell lstm", "sigma2_i"]),
        ("export torch as another cell", ["export", str(DATA / "janet_rule_T200.json"), "--to", "torch",
                                          "--as-cell", "lstm"], ["sigma2_i"]),
    ]


@pytest.mark.parametrize("row", _cli_rows(), ids=[r[0] for r in _cli_rows()])
def test_bad_input_exits_2_with_one_line_naming_the_culprit(row, files, capsys):
    _, argv, needles = row
    code = main([a.replace("{tmp}", str(files)) for a in argv])
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("symmft: error:")]
    assert code == 2, err
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])


@pytest.mark.slow
def test_unreachable_scheduler_is_refused_before_any_training(tmp_path, capsys):
    code = main(["confirm", "lstm", "--task", "copy", "--lengths", "5", "--inits", "pytorch", "--steps", "2",
                 "--scheduler", "tcp://127.0.0.1:1", "-o", str(tmp_path / "sweep")])
    err = capsys.readouterr().err
    assert code == 2 and "tcp://127.0.0.1:1" in err and "cannot reach" in err
    assert not (tmp_path / "sweep" / "runs").exists()


# ---------------------------------------------------------------- numbers where numbers exist


def _mp_distance(cell, h: dict, fixed: dict, rate: float) -> float:
    """Distance of ``fixed`` (name -> value) from the true fixed point of ``cell``'s diagonal map, estimated from the
    map compiled for mpmath at 30 digits (an independent code path from numpy's quadrature): one map evaluation,
    |F(x) - x| / (1 - rate), relative to max |x| (a contraction with this rate moves the error by that factor)."""
    import mpmath

    cm = compile_map(derive(cell, "gaussian", frozenset()), "mpmath", dps=30)
    from symmft.cell import params

    hm = {k: mpmath.mpf(float(v)) for k, v in params.resolve(cell, h).items()}
    x = tuple(mpmath.mpf(float(fixed[s.name])) for s in cm.map.diagonal)
    with mpmath.workdps(30):
        r = max(abs(f - xi) for f, xi in zip(cm.diagonal(x, hm), x))
        return float(r / (1 - mpmath.mpf(rate)) / max(abs(v) for v in x))


@pytest.mark.parametrize("mu_f", [12.0, 20.0])
def test_saturated_forget_gate_has_the_mpmath_fixed_point(mu_f):
    """mu_f = 12 and 20 used to end NOT_CONVERGED with every value NaN (the map contracts at 1 - 1.2e-5 per step)."""
    cell = load_cell("lstm")
    a = analyze(cell, {"mu_f": mu_f})
    assert int(a.status) == Status.OK
    fixed = {k: float(v) for k, v in a.fixed_point.items()}
    assert all(math.isfinite(v) for v in fixed.values()) and fixed["Q_c"] > 1e3
    assert _mp_distance(cell, {"mu_f": mu_f}, fixed, float(a.diagonal_lambda)) <= SLOW_FIXED_POINT


@pytest.mark.slow
def test_mu_f_12_matches_the_mpmath_solve():
    cell = load_cell("lstm")
    a, ref = analyze(cell, {"mu_f": 12.0}), analyze(cell, {"mu_f": 12.0}, backend="mpmath", dps=20)
    assert int(ref.status) == Status.OK
    for k, v in a.fixed_point.items():
        assert float(v) == pytest.approx(float(ref.fixed_point[k]), rel=SLOW_FIXED_POINT, abs=1e-9), k


def test_mu_f_30_is_a_number_and_past_float64_is_diverged():
    cell = load_cell("lstm")
    a = analyze(cell, {"mu_f": np.array([30.0, 1e6])})
    assert list(a.status) == [Status.OK, Status.DIVERGED]
    # the forget gate's 1 - E[f^2] ~ 2 e^(-mu_f + var/2): Q_c grows by e per unit of mu_f (see the 12 -> 20 ratio)
    assert 1e11 < a.fixed_point["Q_c"][0] < 1e12


def test_linear_cell_is_diverged_at_nu2_1_and_exact_below(tmp_path):
    path = tmp_path / "linear.py"
    path.write_text('STATE = ("h",)\ndef step(x, h, ops):\n    return ops.affine("h", x, h)\n')
    a = analyze(load_cell(path), {"nu2_h": np.array([0.5, 1.0, 1.5]), "sigma2_h": 1.0})
    assert list(a.status) == [Status.OK, Status.DIVERGED, Status.DIVERGED]
    assert a.fixed_point["Q_h"][0] == pytest.approx(1.0 / (1 - 0.5), rel=1e-12)  # Q = sigma2 q_x / (1 - nu2)


def test_zero_state_has_an_undefined_correlation(capsys):
    """q_x = 0 and no bias: the state is zero at the fixed point and c* = C/Q is 0/0 (it printed 4.8e-6)."""
    a = analyze(load_cell("lstm"), {"q_x": 0.0, "c_x": 0.5})
    assert int(a.status) == Status.OK and float(a.fixed_point["Q_c"]) < 1e-12
    assert np.isnan(a.correlation["c"]) and np.isnan(a.correlation["h"])
    assert main(["analyze", "lstm", "--set", "q_x=0", "--set", "c_x=0.5"]) == 0
    assert "undefined (Q* = 0: 0/0)" in capsys.readouterr().out


def test_chaotic_setting_says_chaotic_and_xi_is_explained(capsys):
    assert main(["analyze", "vanilla_rnn", "--set", "nu2_h=4"]) == 0
    out = capsys.readouterr().out
    assert "phase: chaotic (chi_1 = 1.096" in out
    assert "xi = 12.5" in out and "trainable for sequence lengths T up to about xi" in out


def test_tiny_means_print_as_zero(capsys):
    assert main(["analyze", "lstm", "--set", "mu_f=3"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.startswith(("c ", "h "))]
    assert [r[1] for r in rows] == ["0", "0"]  # M* = 0 by symmetry; numerically ~1e-17


def test_phase_where_every_point_fails_says_so(tmp_path, capsys):
    path = tmp_path / "linear.py"
    path.write_text('STATE = ("h",)\ndef step(x, h, ops):\n    return ops.affine("h", x, h)\n')
    assert main(["phase", str(path), "--x", "nu2_h=1.2:2:2", "--y", "sigma2_h=0.5:1:2", "-o",
                 str(tmp_path / "p")]) == 0
    out = capsys.readouterr().out
    assert "no point converged" in out and "None" not in out
    assert json.loads((tmp_path / "p.json").read_text())["status"] == {"DIVERGED": 1.0}


@pytest.mark.slow
def test_degenerate_rule_is_flagged_not_silent(tmp_path):
    """A rule with every recurrent variance 0 (the issue's coupled input-forget LSTM found one at T = 200) is a
    leaky integrator; it may pass the criteria, but never silently."""
    from symmft.init.search import DEGENERATE, find_critical

    path = tmp_path / "janet.py"
    path.write_text('STATE = ("c",)\ndef step(x, c, ops):\n    f = ops.sigmoid(ops.affine("f", x, c))\n'
                    '    g = ops.tanh(ops.affine("g", x, c))\n    return f * c + (1 - f) * g\n')
    result = find_critical(load_cell(path), 200, free=["mu_f"], fixed={"nu2_f": 0.0, "nu2_g": 0.0})
    assert result.to_json()["notes"][0].startswith(DEGENERATE)


def test_every_printed_quantity_is_defined_in_help_and_readme(capsys):
    from symmft.cli.common import GLOSSARY

    readme = README.read_text()
    table = readme[readme.index("### What the numbers mean"):]
    for term in GLOSSARY:
        for part in term.split(", "):
            assert f"`{part}`" in table or f"| {part} |" in table, part
    assert main(["analyze", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert all(f"  {term}  " in help_text for term in GLOSSARY)
