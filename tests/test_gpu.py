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
