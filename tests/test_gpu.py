"""CuPy paths against the numpy paths they share code with (run on a machine with a CUDA GPU)."""

from __future__ import annotations

import numpy as np
import pytest

from symmft.backend import gpu_available
from symmft import available_cells, load_cell, analyze, jacobian_moments

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a CUDA GPU")]


@pytest.mark.parametrize("name", available_cells())
def test_cupy_analysis_equals_numpy_on_a_grid(name):
    """Same generated code and quadrature rule on both backends: agreement to rounding (1e-11 relative)."""
    cell = load_cell(name)
    mean = next(n for n in cell.hyperparameter_names() if n.startswith("mu_"))
    nu2 = next(n for n in cell.hyperparameter_names() if n.startswith(("nu2_", "sigma2_")))
    grid = {mean: np.linspace(-1, 4, 6)[:, None], nu2: np.linspace(0.2, 3, 5)[None, :], "c_x": 0.7}
    cpu, gpu = analyze(cell, grid), analyze(cell, grid, backend="cupy")
    assert np.array_equal(cpu.status, gpu.status)
    for key in cpu.fixed_point:
        np.testing.assert_allclose(gpu.fixed_point[key], cpu.fixed_point[key], rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(gpu.lambda_, cpu.lambda_, rtol=1e-10, atol=1e-14)


def test_cupy_jacobian_moments_equal_numpy():
    cell = load_cell("lstm")
    grid = {"mu_f": np.linspace(0, 6, 8), "nu2_f": 0.5}
    cpu = jacobian_moments(analyze(cell, grid), weights="orthogonal")
    gpu = jacobian_moments(analyze(cell, grid, backend="cupy"), weights="orthogonal")
    for key in ("m1", "m2"):
        np.testing.assert_allclose(gpu[key], cpu[key], rtol=1e-10)


# ---------------------------------------------------------------- the tied theory's causal transient on CuPy


def _tied_h(cell, values: dict) -> dict:
    from symmft.cell.params import resolve

    return {k: float(v) for k, v in resolve(cell, values).items()}


@pytest.mark.parametrize("name, values, input_dim", [
    ("lstm", {"mu_f": 2.0, "c_x": 0.5}, None),
    ("gru", {"c_x": 0.5, "rho2_z": 0.1}, 8),  # finite m: the per-group input factors (pools = groups)
    ("vanilla_rnn", {"nu2_h": 1.5, "c_x": 1.0}, None),  # chaotic, identical inputs: degenerate b pivots
])
def test_cupy_tied_transient_with_numpy_draws_equals_numpy(name, values, input_dim):
    """The same draws (numpy's stream copied to the GPU): CuPy and numpy differ only by rounding. Tolerance:
    perturbing only the float32 innovations product's summation order (float64 accumulation, as another BLAS
    might) moved every moment of these runs by <= 7e-6 relative (floor 1e-3) over 60 steps + 20 after the
    fork and kick, the vanilla RNN's chaos included; 1e-4 leaves 15x for cuBLAS, the elementwise functions'
    rounding and cupyx.scipy's triangular solve."""
    from symmft.theory.transient import Transient

    cell = load_cell(name)
    h = _tied_h(cell, values)
    runs = []
    for backend in ("numpy", "cupy"):
        run = Transient(cell, h, 80, population=2000, seed=3, input_dim=input_dim, backend=backend,
                        host_draws=True)
        before = run.advance(60)
        run.fork()
        run.kick(0.05, np.random.default_rng(0))
        runs.append(np.concatenate([before, run.advance(20)[:, :16]]))
    assert isinstance(runs[1], np.ndarray)  # advance hands back host arrays on either backend
    np.testing.assert_allclose(runs[1], runs[0], rtol=1e-4, atol=1e-6)  # atol: means near zero


def test_cupy_tied_analysis_agrees_with_numpy_within_standard_errors():
    """cuRAND draws: another population of the same process. Q, c* and lambda agree within 5 combined standard
    errors (each the spread of a run's independent parts, docs/tied.md §2; measured with 48 numpy seeds at this
    point: 0.89x (Q_c), 1.12x (c*_c), 0.91x (lambda) and 0.92-1.03x (the trajectory) the seeds' spread)."""
    from symmft import analyze_tied
    from tolerances import SIMULATION_SIGMAS

    h = {"mu_f": 2.0, "c_x": 0.5}
    cpu = analyze_tied("lstm", h, steps=100, population=8000, seed=1, stationary=False)
    gpu = analyze_tied("lstm", h, steps=100, population=8000, seed=1, stationary=False, backend="cupy")
    assert cpu.status == gpu.status == 0 and gpu.extras["backend"] == "cupy"
    pairs = [(cpu.fixed_point["Q_c"], gpu.fixed_point["Q_c"], "Q_c"), (cpu.correlation["c"], gpu.correlation["c"],
             "correlation_c"), (cpu.lambda_, gpu.lambda_, "lambda")]
    for a, b, key in pairs:
        err = np.hypot(cpu.standard_error[key], gpu.standard_error[key])
        assert abs(a - b) <= SIMULATION_SIGMAS * err, (key, a, b, err)
    traj_cpu, traj_gpu = cpu.trajectory["c"], gpu.trajectory["c"]
    err = np.hypot(traj_cpu["standard_error_second_moment"], traj_gpu["standard_error_second_moment"])
    assert np.all(np.abs(traj_cpu["second_moment"] - traj_gpu["second_moment"]) <= SIMULATION_SIGMAS * err + 1e-12)


def test_cupy_tied_command_line(capsys):
    import json

    from symmft.cli.main import main

    code = main(["analyze", "lstm", "--theory", "tied", "--backend", "cupy", "--set", "mu_f=2", "--steps", "20",
                 "--population", "2000", "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["backend"] == "cupy" and result["status"] == "OK"
