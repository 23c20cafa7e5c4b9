"""Trainability maps: a tiny grid end to end through the sweep machinery, the fitted constant against a brute-force
count, and resumption of an interrupted run."""

import json
import math

import numpy as np
import pytest

from symmft import load_cell, trainability, train
from symmft.harness.confirm import Sweep
from symmft.harness.trainability import MAP, TrainabilityError, fit_constant, point_name, write_points


def _errors(c, tau, lengths, trained):
    """Cells misclassified by "trained iff T <= c tau", counted directly."""
    return sum((T <= c * t) != bool(trained[i][j]) for i, t in enumerate(tau) if np.isfinite(t)
               for j, T in enumerate(lengths))


def test_fitted_constant_is_the_range_that_classifies_a_known_boundary():
    tau, lengths = [1.0, 10.0, 100.0], [5, 50]
    trained = [[T <= 3 * t for T in lengths] for t in tau]  # the true constant is 3
    fit = fit_constant(np.array(tau), lengths, np.array(trained), [0.0, 1.0, 2.0])
    # every c in [0.5, 5) separates the cells (ratios T/tau: 5, 50, 0.5, 5, 0.05, 0.5); 3 lies inside
    assert fit["errors"] == 0 and fit["low"] == 0.5 and fit["high"] == 5.0
    assert fit["constant"] == pytest.approx(math.sqrt(2.5)) and fit["mismatched"] == []
    noisy = [row[:] for row in trained]
    noisy[0][0] = True  # one cell trained where no constant <5 predicts it: one misclassification is the best
    fit = fit_constant(np.array(tau), lengths, np.array(noisy), [0.0, 1.0, 2.0])
    assert fit["errors"] == min(_errors(c, tau, lengths, noisy) for c in np.geomspace(1e-3, 1e3, 2001)) == 1
    assert [(m["value"], m["length"]) for m in fit["mismatched"]] == [(0.0, 5)]


def test_tiny_map_end_to_end_resumes_an_interrupted_run(tmp_path):
    sweep = Sweep("vanilla_rnn", "adding", (4, 8), ("pytorch",), (0,), width=4, steps=4, batch=8)
    values = (0.5, 1.5)
    # an interrupted run: the grid point nu2_h = 1.5 at T = 8 stopped after 2 of its 4 steps (checkpoint, no result)
    cell = load_cell("vanilla_rnn")
    rule = next(p for p, v in write_points(cell, "nu2_h", values, {}, "gaussian", tmp_path / "points").items() if v == 1.5)
    stopped = tmp_path / "runs" / f"T8_{point_name('nu2_h', 1.5)}_s0"
    train("vanilla_rnn", rule, "adding", 8, width=4, steps=2, batch=8, out_dir=stopped, checkpoint_every=1, predict=False)
    (stopped / "result.json").unlink()
    result = trainability(sweep, "nu2_h", values, tmp_path, workers=2, processes=False)

    saved = json.loads((tmp_path / MAP).read_text())
    assert saved["values"] == [0.5, 1.5] and saved["lengths"] == [4, 8] and saved["axis"] == "nu2_h"
    assert np.shape(saved["mean"]) == (2, 2) and (tmp_path / "trainability.png").stat().st_size > 1000
    for i, v in enumerate(values):  # every cell is its own run's final test metric
        for j, T in enumerate((4, 8)):
            run = json.loads((tmp_path / "runs" / f"T{T}_{point_name('nu2_h', v)}_s0" / "result.json").read_text())
            assert saved["mean"][i][j] == run["test"]["mse"]
    resumed = json.loads((stopped / "result.json").read_text())
    assert resumed["resumed_from"] == 2
    fresh = train("vanilla_rnn", rule, "adding", 8, width=4, steps=4, batch=8, predict=False)
    assert resumed["test"]["mse"] == fresh.test["mse"]  # the resumed run continued bit-identically
    # the named point sits at its own nu2_h (PyTorch: 1/3)
    assert {(p["init"], p["length"]) for p in saved["points"]} == {("pytorch", 4), ("pytorch", 8)}
    assert all(p["position"] == pytest.approx(1 / 3) for p in saved["points"])
    # the fitted constants: no constant misclassifies fewer cells (brute force over a dense range), and the
    # reported constant achieves that count
    for fit in saved["fits"].values():
        tau = np.array(fit["tau"], dtype=float)
        best = min(_errors(c, tau, saved["lengths"], saved["trained"]) for c in np.geomspace(1e-3, 1e4, 4001))
        assert fit["errors"] == best
        assert _errors(fit["constant"] * (1 - 1e-9), tau, saved["lengths"], saved["trained"]) == best
    assert result["fits"].keys() == {"xi", "backward"}

    again = trainability(sweep, "nu2_h", values, tmp_path, workers=1, processes=False)
    assert again["mean"] == result["mean"] and again["fits"] == result["fits"]
    summary = json.loads((tmp_path / "confirm.json").read_text())
    assert all(all(r["reused"]) for r in summary["rows"])  # nothing retrained


def test_bad_map_options_name_the_problem(tmp_path):
    sweep = Sweep("vanilla_rnn", "adding", (4,), (), (0,), width=4, steps=1, batch=8)
    with pytest.raises(TrainabilityError, match="two values"):
        trainability(sweep, "nu2_h", [1.0], tmp_path)
    with pytest.raises(TrainabilityError, match="axis"):
        trainability(sweep, "nu2_h", [1.0, 2.0], tmp_path, base={"nu2_h": 1.0})
    with pytest.raises(Exception, match="nu2_hh|unknown|not a hyperparameter"):
        trainability(sweep, "nu2_hh", [1.0, 2.0], tmp_path)
