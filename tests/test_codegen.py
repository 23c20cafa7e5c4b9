"""The generated training step (symmft.harness.codegen / symmft.harness.plan) against independent truth: PyTorch autograd on
nn.LSTM / nn.GRU, central finite differences, the cell file's own step run by symmft.network.simulate.Network, and (for
the CUDA kernel bodies) a C++ compiler running the printed expressions on the CPU."""

from __future__ import annotations

import ctypes
import importlib.util
import inspect
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from symmft import backend, available_cells, load_cell, generate, CellDefinitionError, SymmftError, load_plan, Network
from symmft.harness.plan import PlanInputError

#: Generated backward vs PyTorch autograd, float64, relative to the largest gradient entry: both are exact
#: reverse-mode derivatives differing only in summation order (measured ~1e-15); the issue asks for 1e-6.
AUTOGRAD_RELATIVE = 1e-6
#: Central differences, float64, step 1e-6: truncation O(h^2 f''') ~ 1e-12 plus rounding ~ 1e-16 |L| / h ~ 1e-10
#: relative to the largest gradient entry (measured <= 2e-9 for every cell here); 1e-6 leaves room for both.
FINITE_DIFFERENCE_RELATIVE = 1e-6
FD_STEP = 1e-6
#: Generated forward vs Network.step (the cell file run on numpy arrays), float64: the same arithmetic in another
#: order and another sigmoid formula; rounding only.
FORWARD_ABSOLUTE = 1e-12
#: float32 plan vs float64 plan: float32 rounding (eps 6e-8) through ~10 steps of O(1) gains.
FLOAT32_RELATIVE = 1e-4

T, B, M, N = 5, 3, 3, 4  # small: the finite differences perturb every parameter entry

PEEPHOLE = '''"""Coupled-gate peephole LSTM (a user cell): the gates see c through full matrices, f = 1 - i, erf output."""
STATE = ("c", "h")


def step(x, c, h, ops):
    i = ops.sigmoid(ops.affine("i", x, h, c=c))
    g = ops.tanh(ops.affine("g", x, h))
    c = (1 - i) * c + i * g
    o = ops.sigmoid(ops.affine("o", x, h, c=c))
    return c, o * ops.erf(c)
'''

EDGE_CASES = '''"""Edge cases: a stage before any product (h*h feeds a map), a new state that is an affine output, a copy of the
previous state, an input-only new state, an unused map, constant subexpressions, a three-stage step."""
STATE = ("a", "b", "c", "d", "h")


def step(x, a, b, c, d, h, ops):
    sq = ops.affine("q", x, hh=h * h, aa=a)
    unused = ops.affine("dead", x, h)
    k = 0.5 * ops.tanh(sq) + ops.sigmoid(0.3 - 1.0) * h
    new_a = ops.affine("lin", x, k=k)
    new_d = d * 0.9 - c
    return new_a, a, ops.tanh(ops.affine("p", x)), new_d, ops.tanh(ops.affine("out", x, h, kk=k * b))
'''


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SYMMFT_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def user_cells(tmp_path):
    paths = {}
    for name, text in (("peephole", PEEPHOLE), ("edge_cases", EDGE_CASES)):
        paths[name] = tmp_path / f"{name}.py"
        paths[name].write_text(text)
    return paths


def _random_params(plan, rng, scale=0.6):
    return {k: scale * rng.standard_normal(s) for k, s in plan.param_shapes(N, M).items()}


def _relative(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / max(np.max(np.abs(np.asarray(b))), 1e-300))


# ---------------------------------------------------------------- PyTorch autograd


def _torch_case(module, gates, rng):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(0.5 * rng.standard_normal(tuple(p.shape))))
    get = {k: getattr(module, k).detach().numpy() for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")}
    blocks = {g: slice(k * N, (k + 1) * N) for k, g in enumerate(gates)}
    return get, blocks


def test_lstm_gradients_match_pytorch_autograd():
    rng = np.random.default_rng(1)
    lstm = torch.nn.LSTM(M, N, dtype=torch.float64)
    w, blocks = _torch_case(lstm, "ifgo", rng)  # PyTorch's gate order i, f, g, o
    params = {}
    for g, sl in blocks.items():
        params |= {f"{g}.x": w["weight_ih_l0"][sl], f"{g}.h": w["weight_hh_l0"][sl],
                   f"{g}.bias": w["bias_ih_l0"][sl] + w["bias_hh_l0"][sl]}
    xs, h0, c0 = rng.standard_normal((T, B, M)), rng.standard_normal((B, N)), rng.standard_normal((B, N))
    dout, dh, dc = rng.standard_normal((T, B, N)), rng.standard_normal((B, N)), rng.standard_normal((B, N))

    x_t = torch.tensor(xs, requires_grad=True)
    y, (hT, cT) = lstm(x_t, (torch.tensor(h0[None]), torch.tensor(c0[None])))
    ((y * torch.tensor(dout)).sum() + (hT[0] * torch.tensor(dh)).sum() + (cT[0] * torch.tensor(dc)).sum()).backward()

    plan = load_plan("lstm", dtype="float64")
    out, tape = plan.forward(params, xs, {"h": h0, "c": c0})
    assert _relative(out, y.detach().numpy()) < AUTOGRAD_RELATIVE
    grads = plan.backward(params, tape, dout, {"h": dh, "c": dc}, input_gradient=True)
    for g, sl in blocks.items():
        assert _relative(grads[f"{g}.x"], lstm.weight_ih_l0.grad[sl].numpy()) < AUTOGRAD_RELATIVE
        assert _relative(grads[f"{g}.h"], lstm.weight_hh_l0.grad[sl].numpy()) < AUTOGRAD_RELATIVE
        # both PyTorch biases enter additively, so each has the gradient of the one bias here
        assert _relative(grads[f"{g}.bias"], lstm.bias_ih_l0.grad[sl].numpy()) < AUTOGRAD_RELATIVE
    assert _relative(grads["x"], x_t.grad.numpy()) < AUTOGRAD_RELATIVE


def test_gru_gradients_match_pytorch_autograd():
    """cells/gru.py is PyTorch's GRU: n = tanh(W_n x + b_in + r * (U_hn h + b_hn)), h' = (1-z) n + z h."""
    rng = np.random.default_rng(2)
    gru = torch.nn.GRU(M, N, dtype=torch.float64)
    w, blocks = _torch_case(gru, "rzn", rng)  # PyTorch's gate order r, z, n
    params = {}
    for g in "rz":
        sl = blocks[g]
        params |= {f"{g}.x": w["weight_ih_l0"][sl], f"{g}.h": w["weight_hh_l0"][sl],
                   f"{g}.bias": w["bias_ih_l0"][sl] + w["bias_hh_l0"][sl]}
    sl = blocks["n"]
    params |= {"n.x": w["weight_ih_l0"][sl], "n.bias": w["bias_ih_l0"][sl],
               "hn.h": w["weight_hh_l0"][sl], "hn.bias": w["bias_hh_l0"][sl]}
    xs, h0 = rng.standard_normal((T, B, M)), rng.standard_normal((B, N))
    dout, dh = rng.standard_normal((T, B, N)), rng.standard_normal((B, N))

    x_t = torch.tensor(xs, requires_grad=True)
    y, hT = gru(x_t, torch.tensor(h0[None]))
    ((y * torch.tensor(dout)).sum() + (hT[0] * torch.tensor(dh)).sum()).backward()

    plan = load_plan("gru", dtype="float64")
    out, tape = plan.forward(params, xs, {"h": h0})
    assert _relative(out, y.detach().numpy()) < AUTOGRAD_RELATIVE
    grads = plan.backward(params, tape, dout, {"h": dh}, input_gradient=True)
    gi, gh = gru.weight_ih_l0.grad.numpy(), gru.weight_hh_l0.grad.numpy()
    bi, bh = gru.bias_ih_l0.grad.numpy(), gru.bias_hh_l0.grad.numpy()
    for g in "rz":
        sl = blocks[g]
        assert _relative(grads[f"{g}.x"], gi[sl]) < AUTOGRAD_RELATIVE
        assert _relative(grads[f"{g}.h"], gh[sl]) < AUTOGRAD_RELATIVE
        assert _relative(grads[f"{g}.bias"], bi[sl]) < AUTOGRAD_RELATIVE
    sl = blocks["n"]
    assert _relative(grads["n.x"], gi[sl]) < AUTOGRAD_RELATIVE
    assert _relative(grads["n.bias"], bi[sl]) < AUTOGRAD_RELATIVE
    assert _relative(grads["hn.h"], gh[sl]) < AUTOGRAD_RELATIVE
    assert _relative(grads["hn.bias"], bh[sl]) < AUTOGRAD_RELATIVE
    assert _relative(grads["x"], x_t.grad.numpy()) < AUTOGRAD_RELATIVE


# ---------------------------------------------------------------- finite differences, every cell


@pytest.mark.parametrize("which", [*available_cells(), "peephole", "edge_cases"])
def test_gradients_match_central_differences(which, user_cells):
    cell = user_cells.get(which, which)
    plan = load_plan(cell, dtype="float64")
    rng = np.random.default_rng(3)
    params = _random_params(plan, rng)
    xs = rng.standard_normal((T, B, M))
    initial = {s: rng.standard_normal((B, N)) for s in plan.states}
    dout = rng.standard_normal((T, B, N))
    dfinal = {s: rng.standard_normal((B, N)) for s in plan.states}

    def loss() -> float:  # L = <dout, outputs> + sum_s <dfinal_s, final s>: its gradient is what backward returns
        out, tape = plan.forward(params, xs, initial)
        return float((out * dout).sum() + sum((tape[f"S_{s}"][-1] * dfinal[s]).sum() for s in plan.states))

    out, tape = plan.forward(params, xs, initial)
    grads = plan.backward(params, tape, dout, dfinal, input_gradient=True)
    again = plan.backward(params, tape, dout, dfinal, input_gradient=True)  # the tape survives a backward
    assert set(grads) == set(params) | {"x"}
    for key in [*params, "x"]:
        a = xs if key == "x" else params[key]
        numeric = np.empty_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + FD_STEP
            up = loss()
            a[idx] = old - FD_STEP
            down = loss()
            a[idx] = old
            numeric[idx] = (up - down) / (2 * FD_STEP)
        assert np.max(np.abs(numeric)) > 0 or key.startswith("dead."), key  # a real check, not 0 == 0
        assert _relative(grads[key], numeric) < FINITE_DIFFERENCE_RELATIVE or np.max(np.abs(numeric)) == 0, key
        assert np.max(np.abs(grads[key] - numeric)) < 1e-8 * max(1.0, np.max(np.abs(numeric))), key
        np.testing.assert_array_equal(grads[key], again[key])


# ---------------------------------------------------------------- the cell file's own step


@pytest.mark.parametrize("which", [*available_cells(), "peephole", "edge_cases"])
def test_forward_matches_network_step(which, user_cells):
    """Network.step runs the cell file itself on numpy arrays (columns = sequences) with the same weights."""
    cell = load_cell(user_cells.get(which, which))
    plan = load_plan(cell, dtype="float64")
    rng = np.random.default_rng(4)
    params = _random_params(plan, rng)
    net = Network(cell, width=N, input_dim=M, tied=True, rng=0)
    for a in cell.affines:
        for inp in a.inputs:
            net.matrices[a.name, inp.vector] = params[f"{a.name}.{inp.vector}"]
        net.biases[a.name] = params[f"{a.name}.bias"][:, None]
    xs = rng.standard_normal((T, B, M))
    initial = {s: rng.standard_normal((B, N)) for s in cell.states}
    out, tape = plan.forward(params, xs, initial)
    states = {s: v.T for s, v in initial.items()}
    for t in range(T):
        states = net.step(xs[t].T, states)
        for s in cell.states:
            np.testing.assert_allclose(tape[f"S_{s}"][t + 1], states[s].T, rtol=0, atol=FORWARD_ABSOLUTE)
        np.testing.assert_allclose(out[t], states[plan.output].T, rtol=0, atol=FORWARD_ABSOLUTE)


def test_params_from_network_are_the_network_weights():
    cell = load_cell("minimal_rnn")
    plan = load_plan(cell, dtype="float64")
    net = Network(cell, {"mu_u": 1.5}, width=N, input_dim=M, tied=True, rng=5)
    params = plan.params_from_network(net)
    assert set(params) == set(plan.param_shapes(N, M))
    np.testing.assert_array_equal(params["u.z"], net.matrices["u", "z"])
    np.testing.assert_array_equal(params["u.bias"], net.biases["u"][:, 0])
    assert plan.param_shapes(N, M)["u.z"] == (N, N) and plan.param_shapes(N, M)["z.x"] == (N, M)


def test_float32_plan_agrees_with_float64():
    rng = np.random.default_rng(6)
    p64, p32 = load_plan("lstm", dtype="float64"), load_plan("lstm", dtype="float32")
    params = _random_params(p64, rng)
    xs, dout = rng.standard_normal((T, B, M)), rng.standard_normal((T, B, N))
    o64, t64 = p64.forward(params, xs)
    o32, t32 = p32.forward(params, xs)
    assert o32.dtype == np.float32
    g64, g32 = p64.backward(params, t64, dout), p32.backward(params, t32, dout)
    for k in g64:
        assert g32[k].dtype == np.float32, k
        assert _relative(g32[k], g64[k]) < FLOAT32_RELATIVE, k


def test_reused_memory_never_overwrites_a_tape_still_held():
    """The plan reuses its big arrays only once no tape or output refers to them (symmft.harness.plan.Plan._empty)."""
    plan, fresh = load_plan("gru", dtype="float64"), load_plan("gru", dtype="float64")
    rng = np.random.default_rng(11)
    p1, p2 = _random_params(plan, rng), _random_params(plan, rng)
    xs, dout = rng.standard_normal((T, B, M)), rng.standard_normal((T, B, N))
    out1, tape1 = plan.forward(p1, xs)
    expected_out = out1.copy()
    expected = {k: v.copy() for k, v in fresh.backward(p1, fresh.forward(p1, xs)[1], dout).items()}
    for _ in range(3):  # more tapes than the plan keeps per array
        out2, tape2 = plan.forward(p2, xs)
        plan.backward(p2, tape2, dout)
    np.testing.assert_array_equal(out1, expected_out)
    for k, v in plan.backward(p1, tape1, dout).items():
        np.testing.assert_array_equal(v, expected[k])
    address = tape1["U1"].__array_interface__["data"][0]
    del out1, tape1
    out3, tape3 = plan.forward(p1, xs)  # reuses the first tape's memory now (tape2's is still held)
    assert tape3["U1"].__array_interface__["data"][0] == address
    np.testing.assert_array_equal(out3, expected_out)
    for batch in (1, 2, 5, 7):  # other shapes replace free arrays: at most two kept per name
        plan.forward(p1, xs[:, :1].repeat(batch, axis=1))
    assert max(len(kept) for kept in plan._pool.values()) <= 2


# ---------------------------------------------------------------- the source: cached, inspectable


def test_generated_source_is_cached_by_cell_hash_and_importable(tmp_path, user_cells):
    path = user_cells["peephole"]
    plan = load_plan(path)
    assert plan.source_path.parent == tmp_path / "cache" / "codegen"
    assert load_plan(path).source_path == plan.source_path
    assert "def forward(xp, K, params, xs, initial):" in inspect.getsource(plan.module)
    assert plan.source == generate(load_cell(path))
    path.write_text(PEEPHOLE + "\n# edited\n")
    assert load_plan(path).source_path != plan.source_path  # new hash, new source


def test_codegen_command_writes_a_module_that_runs(tmp_path):
    target = tmp_path / "gru_step.py"
    run = subprocess.run([sys.executable, "-m", "symmft", "codegen", "gru", "--backend", "numpy", "-o", str(target)],
                         capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    spec = importlib.util.spec_from_file_location("gru_step", target)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.BACKENDS == ("numpy",) and not hasattr(module, "cupy_stages")
    plan = load_plan("gru", dtype="float64")
    params = _random_params(plan, np.random.default_rng(7))
    xs = np.random.default_rng(8).standard_normal((T, B, M))
    out, _ = module.forward(np, module.numpy_stages(), params, xs, {"h": np.zeros((B, N))})
    np.testing.assert_array_equal(out, plan.forward(params, xs)[0])


# ---------------------------------------------------------------- errors


def test_bad_arrays_raise_clear_errors():
    plan = load_plan("lstm")
    params = {k: np.zeros(s, np.float32) for k, s in plan.param_shapes(N, M).items()}
    xs = np.zeros((T, B, M), np.float32)
    with pytest.raises(PlanInputError, match=r"xs must be a non-empty \(T, B, m\)"):
        plan.forward(params, xs[0])
    with pytest.raises(PlanInputError, match=r"params\['f.h'\] must have shape \(4, 4\)"):
        plan.forward({**params, "f.h": np.zeros((4, 3))}, xs)
    with pytest.raises(PlanInputError, match=r"missing \['o.x'\]"):
        plan.forward({k: v for k, v in params.items() if k != "o.x"}, xs)
    with pytest.raises(PlanInputError, match=r"initial\['c'\] must have shape"):
        plan.forward(params, xs, {"c": np.zeros((B, N + 1))})
    _, tape = plan.forward(params, xs)
    with pytest.raises(PlanInputError, match="d_outputs must have the outputs' shape"):
        plan.backward(params, tape, np.zeros((T, B, N + 1)))
    with pytest.raises(SymmftError, match="dtype must be one of float32, float64"):
        load_plan("lstm", dtype="float16")


def test_cells_the_generator_cannot_handle_name_the_line(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text('STATE = ("h",)\n\n\ndef step(x, h, ops):\n'
                    '    return ops.tanh(ops.affine("a", x, h, bias=h * h))\n')
    with pytest.raises(CellDefinitionError, match=rf"{path}:5: .*names a vector 'bias'"):
        generate(load_cell(path))
    path.write_text('STATE = ("h",)\n\n\ndef step(x, h, ops):\n'
                    '    k = ops.tanh(ops.affine("a", x) * 0 + 0.5) * h\n'
                    '    return ops.tanh(ops.affine("b", x, h, k=ops.sigmoid(0.5 - 0.2) * ops.tanh(0.1)))\n')
    with pytest.raises(CellDefinitionError, match=rf"{path}:6: this value depends on neither x nor a state"):
        generate(load_cell(path))


# ---------------------------------------------------------------- the CUDA kernels


_CPP = """#include <cmath>
#define __device__
using std::tanh; using std::exp; using std::erf;
{preamble}
template <typename T> void body({params}) {{ {body} }}
extern "C" void run(long count, double** a) {{
    for (long i = 0; i < count; ++i) body<double>({args});
}}
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs a C++ compiler")
@pytest.mark.parametrize("which", ["lstm", "gru", "gru_reset_before", "minimal_rnn", "peephole"])
def test_cuda_kernel_bodies_compute_the_numpy_stages(which, user_cells, tmp_path):
    """Without a GPU: each ElementwiseKernel body, compiled by g++ as C++ on doubles, equals the numpy stage."""
    plan = load_plan(user_cells.get(which, which), dtype="float64")
    rng = np.random.default_rng(9)
    for name, (ins, outs, body) in plan.module.CUDA_STAGES.items():
        names = [p.split()[1] for p in (ins + ", " + outs).split(", ")]
        n_in = len(ins.split(", "))
        params = ", ".join(("const T& " if k < n_in else "T& ") + v for k, v in enumerate(names))
        source = _CPP.format(preamble=plan.module.CUDA_PREAMBLE, params=params, body=body,
                             args=", ".join(f"a[{k}][i]" for k in range(len(names))))
        lib = tmp_path / f"{name}.so"
        (tmp_path / f"{name}.cpp").write_text(source)
        subprocess.run(["g++", "-O1", "-shared", "-fPIC", "-o", str(lib), str(tmp_path / f"{name}.cpp")],
                       check=True, capture_output=True, timeout=120)
        arrays = [rng.uniform(0.05, 0.95, (B, N)) for _ in names]  # in (0, 1): valid gate values too
        expected = [a.copy() for a in arrays]
        getattr(plan.module.numpy_stages(), name)(*expected)
        pointers = (ctypes.POINTER(ctypes.c_double) * len(arrays))(
            *(a.ctypes.data_as(ctypes.POINTER(ctypes.c_double)) for a in arrays))
        ctypes.CDLL(str(lib)).run(ctypes.c_long(B * N), pointers)
        for k in range(n_in, len(names)):
            np.testing.assert_allclose(arrays[k], expected[k], rtol=1e-13, atol=1e-15, err_msg=f"{name}: {names[k]}")


@pytest.mark.gpu
@pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA GPU")
@pytest.mark.parametrize("which", [*available_cells(), "peephole", "edge_cases"])
@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-10), ("float32", 1e-4)])
def test_cupy_plan_agrees_with_numpy(which, dtype, tolerance, user_cells):
    """tolerance: float64 rounding through 5 steps; float32 (eps 6e-8) through the same, relative to the max."""
    import cupy

    cell = user_cells.get(which, which)
    host, device = load_plan(cell, dtype=dtype), load_plan(cell, xp="cupy", dtype=dtype)
    rng = np.random.default_rng(10)
    params = _random_params(host, rng)
    xs, dout = rng.standard_normal((T, B, M)), rng.standard_normal((T, B, N))
    out, tape = host.forward(params, xs)
    grads = host.backward(params, tape, dout, input_gradient=True)
    dparams = {k: cupy.asarray(v) for k, v in params.items()}
    dout_d, dtape = device.forward(dparams, cupy.asarray(xs))
    dgrads = device.backward(dparams, dtape, cupy.asarray(dout), input_gradient=True)
    assert _relative(backend.to_numpy(dout_d), out) < tolerance
    for k in grads:
        assert _relative(backend.to_numpy(dgrads[k]), grads[k]) < tolerance, k
    with pytest.raises(PlanInputError, match="is a numpy array but this plan runs on cupy"):
        device.forward(params, xs)
