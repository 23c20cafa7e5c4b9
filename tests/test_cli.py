"""The ``symmft`` command line, run in-process through ``main([...])``.

The vanilla RNN's lambda is checked against chi_1 = nu2 E[tanh'(u)^2] computed here with scipy's adaptive
quadrature, which shares no code with symmft's Gaussian expectations.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path

import numpy as np
import pytest
from scipy import integrate

from symmft.cli.main import main
from tolerances import CLASSICAL, SIMULATION_SIGMAS

ROOT = Path(__file__).resolve().parent.parent

SUBCOMMAND_OPTIONS = {
    "cells": ["--json"],
    "params": ["CELL", "--json"],
    "derive": ["CELL", "--latex", "--json"],
    "analyze": ["CELL", "--set", "--grid", "--output", "--closure", "--backend", "--json"],
    "simulate": ["CELL", "--width", "--steps", "--tied", "--untied", "--weights", "--seed", "--batch", "--set",
                 "--json"],
}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def gaussian_expectation(f, variance: float) -> float:
    """E[f(u)], u ~ N(0, variance), by adaptive quadrature over the real line."""
    sd = math.sqrt(variance)
    value, _ = integrate.quad(lambda z: f(sd * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi), -np.inf, np.inf,
                              epsabs=1e-14, epsrel=1e-13)
    return value


def readme_commands() -> list[str]:
    """The two opening commands of README.md (the main job, then the tests), from its first two sh blocks."""
    return re.findall(r"```sh\n(.+?)\n```", (ROOT / "README.md").read_text())[:2]


def test_readme_main_command_is_the_quick_lstm_report_and_names_the_file_to_open(capsys, monkeypatch, tmp_path):
    # The command itself runs for minutes (benchmarks/RESULTS.md); tests/test_report.py renders real --quick
    # reports of cheaper cells. Here: the README's words reach build_report as the quick LSTM report.
    main_job, _ = readme_commands()
    setup, _, command = main_job.rpartition(" && ")
    assert "pip install '.[plot]'" in setup
    argv = shlex.split(command)
    assert argv[:3] == ["symmft", "report", "lstm"] and "--quick" in argv
    calls = []
    monkeypatch.setattr("symmft.cli.report.build_report", lambda *a, **k: calls.append((a, k)) or {
        "files": {"html": "reports/lstm/report.html", "markdown": "reports/lstm/report.md",
                  "results": "reports/lstm/results.json"}, "sections": {}, "seconds": 0.0})
    code, out, err = run(capsys, *argv[1:])
    assert code == 0, err
    assert calls[0][0] == ("lstm",) and calls[0][1]["quick"] and calls[0][1]["output"] is None
    assert "reports/lstm/report.html" in out
    assert "open `reports/lstm/report.html`" in (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_readme_main_command_writes_the_lstm_report(capsys, monkeypatch, tmp_path):
    main_job, _ = readme_commands()
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, *shlex.split(main_job.rpartition(" && ")[2])[1:])
    assert code == 0, err
    assert (tmp_path / "reports" / "lstm" / "report.html").stat().st_size > 10000


def test_readme_python_api_example_runs_and_agrees_with_the_command_line(capsys):
    block = re.search(r"## Python API.*?```python\n(.+?)\n```", (ROOT / "README.md").read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(block, "README.md (Python API)", "exec"), namespace)
    code, out, _ = run(capsys, "analyze", "lstm", "--set", "mu_f=3", "--json")
    assert code == 0
    assert float(namespace["a"].fixed_point["Q_c"]) == json.loads(out)["fixed_point"]["c"]["second_moment"]
    assert "def init_" in namespace["src"] and namespace["rule"].length == 1000


def test_ci_runs_exactly_the_readme_test_command():
    _, tests = readme_commands()
    assert "python -m pytest" in tests
    assert tests in (ROOT / ".ci" / "run").read_text().splitlines()


def test_help_of_the_program_and_of_every_subcommand_exits_0_and_names_its_options(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in SUBCOMMAND_OPTIONS:
        assert command in out
    for command, options in SUBCOMMAND_OPTIONS.items():
        code, out, _ = run(capsys, command, "--help")
        assert code == 0, command
        assert "examples:" in out, command
        for option in options:
            assert option in out, (command, option)


def test_cells_lists_every_builtin_cell_with_its_docstring(capsys):
    code, out, _ = run(capsys, "cells", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert {"vanilla_rnn", "lstm", "gru", "gru_reset_before", "minimal_rnn"} <= set(rows)
    assert rows["lstm"]["states"] == ["c", "h"] and rows["lstm"]["description"].startswith("LSTM")


def test_params_lists_every_hyperparameter_with_default_and_meaning(capsys):
    code, out, _ = run(capsys, "params", "vanilla_rnn", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert list(rows) == ["sigma2_h", "nu2_h", "mu_h", "rho2_h", "beta_h", "chrono_length", "q_x", "c_x"]
    assert rows["nu2_h"]["default"] == 1.0 and rows["mu_h"]["default"] == 0.0 and rows["nu2_h"]["meaning"]
    code, out, _ = run(capsys, "params", "lstm")
    assert code == 0 and "mu_f" in out and "meaning" in out


def test_derive_prints_one_recursion_per_moment_as_text_and_latex(capsys):
    code, out, _ = run(capsys, "derive", "vanilla_rnn")
    assert code == 0 and all(f"{k}' =" in out for k in ("M_h", "Q_h", "C_h"))
    code, out, _ = run(capsys, "derive", "vanilla_rnn", "--latex")
    assert code == 0 and out.startswith("\\begin{aligned}")
    code, out, _ = run(capsys, "derive", "vanilla_rnn", "--json")
    assert code == 0 and set(json.loads(out)["equations"]) == {"M_h", "Q_h", "C_h"}


def test_analyze_json_lambda_of_vanilla_rnn_is_chi1_by_independent_quadrature(capsys):
    code, out, err = run(capsys, "analyze", "vanilla_rnn", "--set", "nu2_h=0.5", "--json")
    assert code == 0, err
    result = json.loads(out)
    for key in ("hyperparameters", "fixed_point", "correlation", "lambda", "xi", "status"):
        assert key in result
    assert result["status"] == "OK"
    assert result["hyperparameters"]["nu2_h"] == 0.5 and result["hyperparameters"]["sigma2_h"] == 1.0
    q = result["fixed_point"]["h"]["second_moment"]
    variance = 1.0 + 0.5 * q  # sigma2_h q_x + nu2_h Q* + rho2_h, with defaults q_x = 1, rho2_h = 0
    assert q == pytest.approx(gaussian_expectation(lambda u: math.tanh(u) ** 2, variance), rel=CLASSICAL)
    chi1 = 0.5 * gaussian_expectation(lambda u: (1 - math.tanh(u) ** 2) ** 2, variance)
    assert result["lambda"] == pytest.approx(chi1, rel=CLASSICAL)
    assert result["correlation"]["h"] == pytest.approx(1.0)  # identical inputs, stable: c* = 1
    assert result["xi"] == pytest.approx(-1 / math.log(chi1), rel=CLASSICAL)


def test_analyze_table_shows_fixed_point_lambda_xi_and_status(capsys):
    code, out, _ = run(capsys, "analyze", "vanilla_rnn", "--set", "nu2_h=0.5")
    assert code == 0
    for word in ("status: OK", "second moment", "correlation", "lambda", "xi"):
        assert word in out


def test_analyze_grid_writes_npz_and_json_of_the_ij_grid_shape(capsys, tmp_path):
    out_base = tmp_path / "sub" / "grid"
    code, out, err = run(capsys, "analyze", "vanilla_rnn", "--grid", "nu2_h=0.5:1.5:3", "--grid", "sigma2_h=0.5:1:2",
                         "--set", "mu_h=0.1", "-o", str(out_base))
    assert code == 0, err
    assert "nu2_h(3) x sigma2_h(2): 6 points" in out and "OK" in out
    arrays = np.load(out_base.with_suffix(".npz"))
    np.testing.assert_allclose(arrays["nu2_h"], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(arrays["sigma2_h"], [0.5, 1.0])
    for key in ("M_h", "Q_h", "correlation_h", "lambda", "xi", "status"):
        assert arrays[key].shape == (3, 2), key
    assert np.all(arrays["status"] == 0)
    assert np.all(np.diff(arrays["Q_h"], axis=0) > 0)  # 'ij': axis 0 is nu2_h, and Q* grows with nu2_h
    result = json.loads(out_base.with_suffix(".json").read_text())
    assert result["axes"] == {"nu2_h": [0.5, 1.0, 1.5], "sigma2_h": [0.5, 1.0]} and result["grid_shape"] == [3, 2]
    np.testing.assert_allclose(result["lambda"], arrays["lambda"])
    np.testing.assert_allclose(result["fixed_point"]["h"]["second_moment"], arrays["Q_h"])


def test_analyze_grid_in_chunks_equals_one_vectorized_call(capsys, tmp_path, monkeypatch):
    import symmft.theory.grid

    argv = ["analyze", "vanilla_rnn", "--grid", "nu2_h=0.5:1.5:3", "--grid", "mu_h=0:0.5:2", "-o"]
    assert run(capsys, *argv, str(tmp_path / "whole"))[0] == 0
    monkeypatch.setattr(symmft.theory.grid, "CHUNK", 4)  # 6 points: chunks of 4 and 2
    assert run(capsys, *argv, str(tmp_path / "chunked"))[0] == 0
    whole, chunked = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "chunked.npz")
    assert sorted(whole) == sorted(chunked)
    for key in whole:
        np.testing.assert_array_equal(whole[key], chunked[key], err_msg=key)


def test_simulate_json_reports_final_moments_per_state(capsys):
    code, out, err = run(capsys, "simulate", "lstm", "--width", "64", "--steps", "5", "--tied", "--seed", "3",
                         "--batch", "2", "--set", "mu_f=1", "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["width"] == 64 and result["steps"] == 5 and result["tied"] is True and result["seed"] == 3
    assert result["hyperparameters"]["mu_f"] == 1.0
    for state in ("c", "h"):
        final = result["states"][state]["final"]
        assert set(final) >= {"mean", "second_moment", "correlation"}
        assert len(result["states"][state]["second_moment"]) == 6  # t = 0..T
    code, out, _ = run(capsys, "simulate", "vanilla_rnn", "--width", "32", "--steps", "3")
    assert code == 0 and "untied" in out and "second moment" in out


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["analyze", "no_such_cell"], "unknown cell"),
        (["params", "no/such/cell.py"], "does not exist"),
        (["analyze", "vanilla_rnn", "--set", "nu2_h=-1"], "nu2_h"),
        (["analyze", "vanilla_rnn", "--set", "foo=1"], "foo"),
        (["analyze", "vanilla_rnn", "--set", "nu2_h=abc"], "nu2_h"),
        (["analyze", "vanilla_rnn", "--set", "nu2_h"], "NAME=VALUE"),
        (["analyze", "vanilla_rnn", "--grid", "nu2_h=0:1", "-o", "x"], "NAME=START:STOP:NUM"),
        (["analyze", "vanilla_rnn", "--grid", "nu2_h=0:1:0", "-o", "x"], "NUM"),
        (["analyze", "vanilla_rnn", "--grid", "nu2_h=0:1:3"], "-o OUT"),
        (["analyze", "vanilla_rnn", "--grid", "nu2_h=0:1:3", "--set", "nu2_h=1", "--json"], "twice"),
        (["simulate", "vanilla_rnn", "--width", "0"], "width"),
        (["simulate", "vanilla_rnn", "--set", "c_x=2"], "c_x"),
        (["critical", "lstm", "--length", "20", "--theory", "tied", "--spread-networks", "1"], "--spread-networks"),
        (["analyze", "vanilla_rnn", "--stationary-steps", "1000"], "--stationary-steps belongs to the tied theory"),
        (["analyze", "vanilla_rnn", "--stationary-population", "1000"], "--stationary-population belongs to"),
        (["analyze", "vanilla_rnn", "--theory", "tied", "--stationary-steps", "0"], "option --stationary-steps"),
        (["analyze", "vanilla_rnn", "--theory", "tied", "--stationary-steps", "1e6"], "option --stationary-steps"),
        (["analyze", "vanilla_rnn", "--theory", "tied", "--stationary-population", "16"],
         "option --stationary-population must be an integer >= 32, got 16"),
        (["analyze", "vanilla_rnn", "--theory", "tied", "--stationary-population", "many"],
         "option --stationary-population"),
    ],
)
def test_bad_input_exits_2_with_one_line_error_and_no_traceback(capsys, argv, fragment):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("symmft: error: ") and err.count("\n") == 1, err
    assert fragment in err and "Traceback" not in err


def test_analyze_with_weights_adds_jacobian_moments_matching_quadrature(capsys):
    """vanilla RNN, J = D(tanh'(u)) U: m1 = nu2 E[tanh'^2], m2 = nu2^2 (E[tanh'^4] + E[tanh'^2]^2) for Gaussian U."""
    code, out, _ = run(capsys, "analyze", "vanilla_rnn", "--set", "nu2_h=0.5", "--weights", "gaussian", "--json")
    assert code == 0
    result = json.loads(out)
    v = 1.0 + 0.5 * result["fixed_point"]["h"]["second_moment"]  # sigma2 q_x + nu2 Q*
    moment = lambda p: integrate.quad(lambda z: (1 - np.tanh(np.sqrt(v) * z) ** 2) ** p * np.exp(-z * z / 2) / np.sqrt(2 * np.pi), -30, 30, epsabs=1e-14)[0]
    assert result["jacobian"]["m1"] == pytest.approx(0.5 * moment(2), rel=1e-9)
    assert result["jacobian"]["m2"] == pytest.approx(0.25 * (moment(4) + moment(2) ** 2), rel=1e-9)


def test_cache_command_shows_and_clears_the_disk_cache(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("SYMMFT_CACHE", str(tmp_path))
    (tmp_path / "derivations").mkdir()
    (tmp_path / "derivations" / "entry.pickle").write_bytes(b"x" * 1000)
    code, out, _ = run(capsys, "cache", "--json")
    assert code == 0 and json.loads(out)["disk"]["derivations"] == {"files": 1, "bytes": 1000}
    code, out, _ = run(capsys, "cache", "--clear")
    assert code == 0 and "derivations" in out and not (tmp_path / "derivations").exists()


#: A vanilla RNN point whose tied stationary state the spectral solver reaches in ~7x10^3 steps (quenched biases:
#: a short memory). --steps 2 is too short to show a settled tail (tied._still_relaxing needs 3), so the solver runs.
TIED_VANILLA = ["analyze", "vanilla_rnn", "--theory", "tied", "--set", "nu2_h=1.5", "--set", "rho2_h=0.2",
                "--set", "c_x=0.5", "--steps", "2", "--population", "2000", "--stationary-population", "1000"]


def vanilla_stationary(nu2: float, sigma2_qx: float, rho2: float, c_x: float) -> tuple[float, float]:
    """Q* and c* of h = tanh(U h + W x + b) by Gauss-Hermite quadrature (no symmft code): a pre-activation has
    variance nu2 Q + sigma2_qx + rho2, of which nu2 C + sigma2_qx c_x + rho2 the two sequences share. Exact for the
    tied network too: its one-time moments see only the fields' equal-time covariances nu2 Q and nu2 C, as the
    untied map does (docs/tied.md §1)."""
    z, w = np.polynomial.hermite_e.hermegauss(120)
    w = w / w.sum()
    q = c = 0.5
    for _ in range(400):  # a contraction (slopes <= ~0.6 here): converged far below float64 rounding
        v, k = nu2 * q + sigma2_qx + rho2, nu2 * c + sigma2_qx * c_x + rho2
        q = float(np.sum(w * np.tanh(math.sqrt(v) * z) ** 2))
        inner = (w * np.tanh(math.sqrt(k) * z[:, None] + math.sqrt(v - k) * z)).sum(axis=1)  # E[tanh | shared]
        c = float(np.sum(w * inner ** 2))
    return q, c / q


def test_tied_stationary_options_reach_the_solver_and_a_short_budget_names_the_option(capsys, monkeypatch):
    # The real solver with --stationary-steps 2048: two passes of 1024 steps cannot hold the 6 measured passes it
    # requires, so it must end NOT_CONVERGED (drift or max_steps), and the command must print the reason, its
    # explanation, and the option that lifts it with this run's value. --stationary-population 1000 must reach it
    # (without the option it would run min(--population, 4000) = 2000; it rounds up to whole groups of 16).
    # Progress on stderr (a line per update here, where a real run prints one every 10 s): the transient's steps,
    # then the solver's up to the steps it ran, with its lag range and Q.
    import functools

    import symmft.progress
    import symmft.theory.tied as tied
    from symmft.theory.stationary import GROUPS, REASONS

    monkeypatch.setattr(tied, "show_progress", functools.partial(symmft.progress.progress, every=0.0))
    code, out, err = run(capsys, *TIED_VANILLA, "--stationary-steps", "2048")
    assert re.search(r"symmft: tied transient vanilla_rnn: 2/2 steps \(100%\)", err), err
    last = re.findall(r"symmft: tied stationary vanilla_rnn: (\d+)/2048 steps .*L=\d+, Q_h=[0-9.]+", err)
    assert last and last[-1] == re.search(r"stationary solver ran (\d+) of", out)[1], err
    assert code == 0
    assert "status: NOT_CONVERGED (the stationary solver did not converge" in out, out
    ran = re.search(r"stationary solver ran (\d+) of 2048 steps \(--stationary-steps\) on (\d+) units", out)
    assert ran and 2048 <= int(ran[1]) < 2048 + 1024 and 1000 <= int(ran[2]) < 1000 + GROUPS, out
    line = next(l for l in out.splitlines() if l.startswith("stationary solver: "))
    reason = line.removeprefix("stationary solver: ").split(" -- ")[0]
    assert reason in ("drift", "max_steps"), line
    assert line == f"stationary solver: {reason} -- {REASONS[reason]}; raise --stationary-steps (this run: 2048)"


def test_tied_stationary_steps_enough_converge_to_the_closed_form(capsys):
    # A larger budget converges, to the independent quadrature of the vanilla RNN's stationary moments within
    # SIMULATION_SIGMAS of the solver's standard errors (measured: 1.1 of them at this seed, ~0.2% of Q).
    code, out, _ = run(capsys, *TIED_VANILLA, "--stationary-steps", "16384", "--json")
    assert code == 0
    result = json.loads(out)
    report = result["stationary_solver"]
    assert result["status"] == "OK" and result["solver"] == "stationary", report
    assert report["max_steps"] == 16384 and report["steps"] <= 16384 and report["requested_population"] == 1000
    q, c = vanilla_stationary(1.5, 1.0, 0.2, 0.5)
    assert abs(result["fixed_point"]["h"]["second_moment"] - q) <= SIMULATION_SIGMAS * result["standard_error_Q_h"]
    assert abs(result["correlation"]["h"] - c) <= SIMULATION_SIGMAS * result["standard_error_correlation_h"]


def test_tied_status_names_what_to_raise_for_each_stationary_reason_and_a_relaxing_transient(capsys):
    # The remedy lines for every reason the solver can give (a report as analyze_tied returns it): an option where
    # one lifts it, none where none does (REASONS says what to do), and a memory-budget cut of the units said.
    from symmft.cli.analyze import _stationary_lines
    from symmft.theory.stationary import REASONS

    report = {"steps": 3072, "max_steps": 2048, "population": 512, "requested_population": 512, "lags": 64}
    for reason in REASONS:
        first, last = _stationary_lines({**report, "reason": reason})
        assert first == ("stationary solver ran 3072 of 2048 steps (--stationary-steps) on 512 units "
                         "(--stationary-population), lag range 64")
        option = {"max_steps": "--stationary-steps (this run: 2048)", "drift": "--stationary-steps (this run: 2048)",
                  "clipped": "--stationary-population (this run: 512)"}.get(reason)
        assert last == f"stationary solver: {reason} -- {REASONS[reason]}" + (f"; raise {option}" if option else "")
    # Units cut by the memory budget: said, and a clipped run is not told to ask for more units (they do not fit).
    first, last = _stationary_lines({**report, "requested_population": 4000, "reason": "clipped"})
    assert "on 512 units (--stationary-population, cut from 4000 to fit its memory budget)" in first
    assert last.endswith("; more units do not fit at lag range 64 (its memory budget cut 4000 to 512): raise "
                         "--stationary-steps (this run: 2048)"), last
    # With a finite input size the stationary solver is not used: a relaxing tail says to run more --steps
    # (the untied status message's --max-iterations does not apply to the tied theory).
    code, out, _ = run(capsys, "analyze", "vanilla_rnn", "--theory", "tied", "--steps", "2", "--input-dim", "4",
                       "--population", "256")
    assert code == 0 and "status: NOT_CONVERGED (the transient's tail is still relaxing" in out, out
    assert "run more --steps" in out and "max-iterations" not in out and "stationary solver ran" not in out
