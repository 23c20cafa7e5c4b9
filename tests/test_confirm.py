"""Confirmation sweeps: a small grid end to end through a local dask cluster, resumed without redoing runs."""

import json

import numpy as np
import pytest

from symmft import load_cell, confirm, make_task
from symmft.harness.confirm import ConfirmError, Sweep, table
from symmft.init.search import baseline_hyperparameters, evaluate_points


def test_small_sweep_runs_through_dask_and_resumes_without_redoing_runs(tmp_path):
    sweep = Sweep("lstm", "adding", (6, 12), ("pytorch", "keras"), (0,), width=6, steps=8, batch=8)
    summary = confirm(sweep, tmp_path, workers=2, processes=False)
    rows = summary["rows"]
    assert [(r["length"], r["init"]) for r in rows] == [(6, "pytorch"), (6, "keras"), (12, "pytorch"), (12, "keras")]
    assert not any(any(r["reused"]) for r in rows)
    for r in rows:  # the table reports each run's own result file
        result = json.loads((tmp_path / "runs" / f"T{r['length']}_{r['init']}_s0" / "result.json").read_text())
        assert r["mse"] == [result["test"]["mse"]]
        assert result["config"]["steps"] == 8 and result["config"]["width"] == 6
        # chance: the test split's MSE of predicting the training mean, recomputed
        task = make_task("adding", r["length"])
        assert r["chance"] == pytest.approx(np.mean((task.test["targets"] - task.train["targets"].mean()) ** 2), rel=1e-12)
    # the marked xi is the theory's for the baseline's hyperparameters (H = 6, m = 2) at the task's q_x
    task = make_task("adding", 12)
    for r in rows[2:]:
        hyper, _ = baseline_hyperparameters(load_cell("lstm"), r["init"], 12, 6, 2)
        xi = evaluate_points(load_cell("lstm"), {**hyper, "q_x": task.q_x}, weights="gaussian")["xi"][0]
        assert r["xi"] == pytest.approx(xi, rel=1e-9)  # same quadrature at the same point
    assert (tmp_path / "confirm.png").stat().st_size > 1000
    stamps = {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*")}
    again = confirm(sweep, tmp_path, workers=1, processes=False)
    assert all(all(r["reused"]) for r in again["rows"])
    assert {p: p.stat().st_mtime_ns for p in tmp_path.glob("runs/*/*")} == stamps  # nothing rewritten
    assert [r["mse"] for r in again["rows"]] == [r["mse"] for r in rows]
    header, body = table(again)
    assert len(body) == 4 and header[0] == "T"


def test_empty_grid_is_a_clear_error(tmp_path):
    with pytest.raises(ConfirmError, match="at least one"):
        confirm(Sweep("lstm", "adding", (), ("pytorch",), (0,)), tmp_path)
