"""The tied transient's device path (``backend="cupy"``) checked on a machine without a GPU.

CuPy refuses to mix its arrays with host (numpy) arrays: a ``np.zeros`` left in the device path, a scipy call
that hands back a host array, a host draw never copied over -- each is a TypeError on a GPU and nothing on the
CPU. Here a stand-in array module plays CuPy: its arrays are a numpy subclass that raises on any operation
with a host array, its scipy hands back device arrays, and its generator draws numpy's very stream. The whole
of ``analyze_tied(..., backend="cupy")`` then runs on it and must give the numpy backend's numbers bit for bit
(same draws, same CPU arithmetic) with the states staying on the "device". What it cannot check -- cuBLAS,
cuRAND, cupyx's own kernels -- is tests/test_gpu.py's (run where a GPU is lent).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import scipy.linalg
import scipy.special

from symmft import analyze_tied, load_cell
from symmft.cell.params import resolve
from symmft.theory import site, transient


class DeviceArray(np.ndarray):
    """A CuPy array's stand-in: operations with host arrays raise, as CuPy's do."""

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if getattr(np, ufunc.__name__, None) is not ufunc:  # e.g. scipy.special.erf: cupyx has its own
            raise TypeError(f"{ufunc.__name__} is not one of numpy's ufuncs: use the backend's own")
        _refuse_host(inputs, kwargs.get("out", ()))
        inputs = [_host(a) for a in inputs]
        if "out" in kwargs:
            kwargs["out"] = tuple(_host(a) for a in kwargs["out"])
        return _device(getattr(ufunc, method)(*inputs, **kwargs))

    def __array_function__(self, func, types_, args, kwargs):
        _refuse_host(args, kwargs.values())
        return _device(func(*_unwrap(args), **_unwrap(kwargs)))


def _arrays(obj):
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for item in obj:
            yield from _arrays(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _arrays(item)


def _refuse_host(*groups) -> None:
    for group in groups:
        for a in _arrays(list(group)):
            if not isinstance(a, DeviceArray):
                raise TypeError(f"a host array {a.shape} {a.dtype} in a device operation (CuPy raises here)")


def _host(a):
    return a.view(np.ndarray) if isinstance(a, DeviceArray) else a


def _unwrap(obj):
    if isinstance(obj, DeviceArray):
        return obj.view(np.ndarray)
    if isinstance(obj, (list, tuple)):
        return type(obj)(_unwrap(x) for x in obj)
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _device(result):
    if isinstance(result, np.ndarray):
        return result.view(DeviceArray)
    if isinstance(result, tuple):
        return tuple(_device(r) for r in result)
    return result


class FakeCupy(types.ModuleType):
    """numpy's functions on device arrays; only ``asarray`` takes host arrays (it is the host -> device copy)."""

    def __init__(self):
        super().__init__("fakecupy")

    def __getattr__(self, name):
        target = getattr(np, name)
        if not callable(target) or isinstance(target, type):
            return target

        def call(*args, **kwargs):
            if name not in ("asarray", "array"):
                _refuse_host(args, kwargs.values())
            return _device(target(*_unwrap(args), **_unwrap(kwargs)))

        return call


def _fake_scipy():
    """cupyx.scipy's stand-in: device arrays in, device arrays out."""
    def wrap(fn):
        def call(*args, **kwargs):
            _refuse_host(args, kwargs.values())
            return _device(fn(*_unwrap(args), **_unwrap(kwargs)))
        return call

    return types.SimpleNamespace(linalg=types.SimpleNamespace(solve_triangular=wrap(scipy.linalg.solve_triangular)),
                                 special=types.SimpleNamespace(erf=wrap(scipy.special.erf)))


class _DeviceGenerator:
    """numpy's SFC64 stream, delivered as device arrays (so the two backends draw alike)."""

    def __init__(self, seed: int):
        self.rng = np.random.Generator(np.random.SFC64(seed))

    def standard_normal(self, shape, dtype=np.float64):
        return _device(self.rng.standard_normal(shape, dtype=dtype))


@pytest.fixture
def fake_cupy(monkeypatch):
    """``backend="cupy"`` of the tied theory runs on the stand-in."""
    xp, real_get_xp, real_generator, real_scipy = FakeCupy(), transient.get_xp, transient.random_generator, \
        transient.scipy_for
    monkeypatch.setattr(transient, "get_xp", lambda name: xp if name == "cupy" else real_get_xp(name))
    monkeypatch.setattr(transient, "random_generator",
                        lambda m, seed: _DeviceGenerator(seed) if m is xp else real_generator(m, seed))
    for module in (transient, site):
        monkeypatch.setattr(module, "scipy_for", lambda m: _fake_scipy() if m is xp else real_scipy(m))
    return xp


@pytest.mark.parametrize("name, values, options", [
    ("lstm", {"mu_f": 2.0, "c_x": 0.5}, {}),
    ("lstm", {"mu_f": 2.0, "c_x": 0.5}, {"host_draws": True}),  # numpy's draws copied to the device
    ("gru", {"c_x": 0.5, "rho2_z": 0.1}, {"input_dim": 8}),  # finite m: one Cholesky factor per group
    ("vanilla_rnn", {"nu2_h": 1.5, "c_x": 1.0}, {}),  # identical inputs: degenerate pivots, the c_x = 1 kick
    ("lstm", {"mu_f": 2.0, "c_x": 0.5}, {"population": 320}),  # 20 units a group < 40 steps: whitened pasts
    ("minimal_rnn", {"c_x": 0.7}, {"tied": False}),  # the untied law: fields and biases redrawn every step
    ("erf_cell", {"c_x": 0.5}, {}),  # ops.erf: scipy's on the host, cupyx's on the device
])
def test_device_path_keeps_arrays_on_the_device_and_matches_numpy(fake_cupy, tmp_path, name, values, options):
    if name == "erf_cell":
        name = tmp_path / "erf_cell.py"
        name.write_text('STATE = ("h",)\n\n\ndef step(x, h, ops):\n    return ops.erf(ops.affine("u", x, h))\n')
    cell = load_cell(str(name))
    h = {k: float(v) for k, v in resolve(cell, values).items()}
    runs = []
    for backend in ("numpy", "cupy"):
        host_draws = options.get("host_draws", False) and backend == "cupy"
        run = transient.Transient(cell, h, 40, seed=3, backend=backend,
                                  **{"population": 640, **options, "host_draws": host_draws})
        before = run.advance(25)
        run.fork()
        run.kick(0.05, np.random.default_rng(0))
        after = run.advance(15)
        assert type(before) is np.ndarray and type(after) is np.ndarray  # moments come back to the host
        runs.append((before, after, run))
    (b0, a0, cpu), (b1, a1, gpu) = runs
    assert all(isinstance(s, DeviceArray) for s in gpu.states)
    assert np.array_equal(b0, b1) and np.array_equal(a0, a1)
    if options.get("tied", True) and "input_dim" not in options:
        for node, (auto, cross) in cpu.field_covariances(8).items():
            assert np.array_equal(auto, gpu.field_covariances(8)[node][0])


def test_analyze_tied_on_the_device_path_matches_numpy(fake_cupy):
    # The whole analysis: the kept two-time histories, lambda's fork and kick, the stationary seed (to_numpy).
    h = {"mu_f": 2.0, "c_x": 0.5}
    cpu = analyze_tied("lstm", h, steps=30, population=640, seed=1, stationary=False)
    gpu = analyze_tied("lstm", h, steps=30, population=640, seed=1, stationary=False, backend="cupy")
    assert gpu.extras["backend"] == "cupy"
    assert cpu.fixed_point == gpu.fixed_point and cpu.lambda_ == gpu.lambda_
    assert all(np.array_equal(cpu.two_time[s], gpu.two_time[s]) for s in cpu.two_time)
    assert np.array_equal(cpu.trajectory["c"]["second_moment"], gpu.trajectory["c"]["second_moment"])


def test_the_stand_in_refuses_what_cupy_refuses(fake_cupy):
    # The check above is only as good as the stand-in's strictness: a host array in a device operation raises.
    device = fake_cupy.zeros(3)
    with pytest.raises(TypeError, match="host array"):
        device + np.ones(3)
    with pytest.raises(TypeError, match="host array"):
        fake_cupy.concatenate([device, np.ones(3)])
    with pytest.raises(TypeError, match="host array"):
        np.tanh(np.ones(3)) * device
    with pytest.raises(TypeError, match="ufuncs"):
        scipy.special.erf(device)


def test_unknown_or_unavailable_backend_is_refused():
    from symmft.backend import gpu_available
    from symmft.errors import BackendError

    with pytest.raises(BackendError, match="numpy or cupy"):
        analyze_tied("lstm", {"mu_f": 2.0}, steps=5, population=64, backend="mpmath")
    if not gpu_available():
        with pytest.raises(BackendError, match="CuPy"):
            analyze_tied("lstm", {"mu_f": 2.0}, steps=5, population=64, backend="cupy")
