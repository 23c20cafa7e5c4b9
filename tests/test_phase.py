"""Phase diagrams (symmft.init.phase): arrays of the grid's shape that agree with pointwise evaluation, a real PNG,
and a critical line drawn exactly where m1 - 1 changes sign between grid points."""

from __future__ import annotations

import json

import numpy as np
import pytest

from symmft import load_cell, HyperparameterError, phase_diagram
from symmft.cli.main import main
from symmft.init.search import evaluate_points
from symmft.init.phase import critical_line, plot_phase, write_phase

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MU_F = np.linspace(3.0, 10.0, 24)
NU2_F = np.linspace(0.0, 2.0, 20)


@pytest.fixture(scope="module")
def lstm_phase():
    return phase_diagram("lstm", ("mu_f", MU_F), ("nu2_f", NU2_F), weights="orthogonal", length=1000)


def test_arrays_have_the_grid_shape_and_match_pointwise_evaluation(lstm_phase):
    for key in ("xi", "lambda", "m1", "m2", "variance", "status", "spread", "Q_c", "Q_h", "M_c"):
        assert lstm_phase[key].shape == (24, 20), key
    assert lstm_phase["x_name"] == "mu_f" and lstm_phase["y_name"] == "nu2_f"
    # 'ij': [i, j] is (mu_f[i], nu2_f[j]); three points re-evaluated one by one
    for i, j in ((0, 0), (5, 17), (23, 9)):
        ev = evaluate_points(load_cell("lstm"),
                             {"mu_f": MU_F[i], "nu2_f": NU2_F[j]}, weights="orthogonal", length=1000)
        for key in ("xi", "m1", "variance", "Q_c"):
            assert lstm_phase[key][i, j] == pytest.approx(float(ev[key][0]), rel=1e-10), (key, i, j)


def test_critical_line_lies_where_m1_minus_one_changes_sign(lstm_phase):
    g = np.asarray(lstm_phase["m1"]) - 1
    assert np.nanmin(g) < 0 < np.nanmax(g), "the grid must straddle m1 = 1"
    segments = critical_line(lstm_phase)
    vertices = np.concatenate(segments)
    assert len(vertices) >= 10
    x, y = MU_F, NU2_F
    for vx, vy in vertices:
        i = min(np.searchsorted(x, vx, side="right") - 1, len(x) - 2)
        j = min(np.searchsorted(y, vy, side="right") - 1, len(y) - 2)
        corners = g[i:i + 2, j:j + 2]
        assert corners.min() <= 0 <= corners.max(), (vx, vy, corners)
        # on a grid line the vertex is the linear zero between the two neighbours along the other axis
        on_x, on_y = np.isclose(vx, x[i]) or np.isclose(vx, x[i + 1]), np.isclose(vy, y[j]) or np.isclose(vy, y[j + 1])
        assert on_x or on_y, (vx, vy)  # marching squares puts every vertex on a cell edge
        if on_y:
            jj = j if np.isclose(vy, y[j]) else j + 1
            t = (vx - x[i]) / (x[i + 1] - x[i])
            assert abs((1 - t) * g[i, jj] + t * g[i + 1, jj]) <= 1e-9 * max(1, np.abs(g).max())
        elif on_x:
            ii = i if np.isclose(vx, x[i]) else i + 1
            t = (vy - y[j]) / (y[j + 1] - y[j])
            assert abs((1 - t) * g[ii, j] + t * g[ii, j + 1]) <= 1e-9 * max(1, np.abs(g).max())


def test_plot_writes_a_valid_png_with_the_critical_line(lstm_phase, tmp_path):
    import matplotlib.pyplot as plt

    figure = plot_phase(lstm_phase, tmp_path / "deep" / "phase.png")
    path = tmp_path / "deep" / "phase.png"
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    image = plt.imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 200
    assert figure["critical_line"] and figure["xi_contours"] == [10, 100, 1000, 10000]


def test_write_phase_writes_png_npz_and_json(lstm_phase, tmp_path):
    summary = write_phase(lstm_phase, tmp_path / "lstm_phase.npz")  # the suffix is replaced
    files = [tmp_path / f"lstm_phase{ext}" for ext in (".png", ".npz", ".json")]
    assert summary["files"] == [str(f) for f in files]
    assert all(f.stat().st_size > 0 for f in files)
    with np.load(files[1]) as npz:
        assert np.array_equal(npz["mu_f"], MU_F) and np.array_equal(npz["nu2_f"], NU2_F)
        for key in ("xi", "lambda", "m1", "m2", "variance", "status", "spread", "Q_c"):
            assert npz[key].shape == (24, 20), key
        assert np.array_equal(npz["status"], lstm_phase["status"])
    on_disk = json.loads(files[2].read_text())
    assert on_disk == summary and on_disk["grid_shape"] == [24, 20] and on_disk["critical_line_points"] > 0


def test_failed_points_are_hatched_and_listed(tmp_path):
    """A grid where some fixed points fail: their status is kept and the legend names it."""
    result = phase_diagram("vanilla_rnn", ("nu2_h", np.linspace(0.5, 1.5, 6)), ("sigma2_h", np.linspace(0, 1, 5)))
    result["status"][0, 0] = 1  # as analyze reports a NOT_CONVERGED point
    result["xi"][0, 0] = np.nan
    figure = plot_phase(result, tmp_path / "failed.png")
    assert (tmp_path / "failed.png").read_bytes()[:8] == PNG_SIGNATURE
    summary = write_phase(result, tmp_path / "failed")
    assert summary["status"]["NOT_CONVERGED"] == pytest.approx(1 / 30)
    assert figure["path"].endswith("failed.png")


def test_axes_must_be_two_different_hyperparameters():
    with pytest.raises(HyperparameterError, match="different"):
        phase_diagram("lstm", ("mu_f", [0, 1]), ("mu_f", [0, 1]))
    with pytest.raises(HyperparameterError, match="both an axis and fixed"):
        phase_diagram("lstm", ("mu_f", [0, 1]), ("nu2_f", [0, 1]), fixed={"mu_f": 2.0})
    with pytest.raises(HyperparameterError, match="did you mean"):
        phase_diagram("lstm", ("mu_ff", [0, 1]), ("nu2_f", [0, 1]))


def test_phase_command_writes_three_files(capsys, tmp_path):
    out = tmp_path / "vanilla"
    code = main(["phase", "vanilla_rnn", "--x", "nu2_h=0.5:2:8", "--y", "sigma2_h=0:0.5:6", "--length", "100",
                 "-o", str(out), "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["grid_shape"] == [8, 6] and summary["critical_line_points"] > 0
    for ext in (".png", ".npz", ".json"):
        assert (tmp_path / f"vanilla{ext}").is_file()
    assert main(["phase", "vanilla_rnn", "--x", "nu2_h=0.5:2:8", "--y", "nu2_h=0:1:3", "-o", str(out)]) == 2
    assert "symmft: error:" in capsys.readouterr().err
    assert main(["phase", "--help"]) == 0
    assert "examples:" in capsys.readouterr().out
