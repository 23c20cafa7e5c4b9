"""Exported initializers on the real frameworks (PyTorch, Keras 3 on JAX, Flax linen and NNX), on CPU.

For every framework and cell:
* round trip: build the framework's layer, apply the emitted init, read the parameters back with a layout written
  here by hand from the frameworks' documentation (not the exporter's tables) and check, per map, the empirical
  weight variance, each recurrent gate block's orthogonality and the effective bias's mean and variance against
  the rule (whose per-map values differ by factors 2-4, so a misplaced block fails);
* forward equivalence: the framework's own forward pass with those parameters equals the cell file's step
  (symmft.network.simulate.Network, tied, its matrices and biases overwritten with the framework's) in float64.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras / flax: Keras 3 otherwise looks for tensorflow

import jax
import jax.numpy as jnp
import keras
import numpy as np
import pytest
import torch
from flax import linen, nnx

from export_support import load_emitted, make_rule
from symmft import export_source, Network

#: Statistical checks allow 5 standard errors of the estimate (a false alarm ~6e-7 per check; draws are seeded,
#: so the outcome is fixed): the mean square of N iid N(0, s) entries has relative standard error sqrt(2/N), a
#: sample mean of N(mu, s) values sqrt(s/N), a sample variance (N - 1 dof) relative sqrt(2/(N - 1)).
SIGMAS = 5.0
#: float64 forward passes of a few steps agree to rounding (~1e-15 per operation); 1e-10 leaves room for the
#: different summation orders of fused and per-gate matrix products.
FORWARD = 1e-10
#: Keras computes in float32 (see the Keras test): float32 rounding (6e-8 relative per operation) over sums of
#: m + n = 23 products and 6 steps gave differences up to ~1e-7 in the measured runs; 1e-5 stays far below the
#: O(0.1) differences a wrong gate order or bias convention makes.
FORWARD_FLOAT32 = 1e-5
#: An orthogonal block: Householder QR is orthogonal to ~n * eps, and storing it in the parameter's dtype
#: (float32 for Keras and Flax defaults) rounds each entry by eps/2; 10 n eps of the parameter's dtype.
ORTHOGONAL_ULPS = 10.0

torch.set_num_threads(1)


# ---------------------------------------------------------------- the frameworks' layouts, from their documentation
# Each reader returns one draw (layer/direction) in symmft's convention: {"x": {map: (n, m)}, "h": {map: (n, n)},
# "b": {map: (n,)}} with the effective bias of each map.

def _rows(a, k):
    return np.split(np.asarray(a, dtype=np.float64), k, axis=0)


def torch_draws(layer, cell: str) -> list[dict]:
    """torch.nn docs: weight_ih_l{k} = (W_ii|W_if|W_ig|W_io) rows (GRU W_ir|W_iz|W_in); the gate's bias is
    b_i* + b_h*, except the GRU's n = tanh(W_in x + b_in + r * (W_hn h + b_hn))."""
    suffixes = [""] if not hasattr(layer, "num_layers") else [
        f"_l{k}{d}" for k in range(layer.num_layers) for d in (["", "_reverse"] if layer.bidirectional else [""])]
    out = []
    for s in suffixes:
        p = {name: getattr(layer, name + s).detach().numpy() for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
        if cell == "lstm":
            gx, gh, bi, bh = (dict(zip("ifgo", _rows(p[k], 4))) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            out.append({"x": gx, "h": gh, "b": {k: bi[k] + bh[k] for k in "ifgo"}})
        elif cell == "gru":
            (xr, xz, xn), (hr, hz, hn), (br, bz, bn), (cr, cz, cn) = (
                _rows(p[k], 3) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
            out.append({"x": {"r": xr, "z": xz, "n": xn}, "h": {"r": hr, "z": hz, "hn": hn},
                        "b": {"r": br + cr, "z": bz + cz, "n": bn, "hn": cn}})
        else:
            out.append({"x": {"h": p["weight_ih"]}, "h": {"h": p["weight_hh"]}, "b": {"h": p["bias_ih"] + p["bias_hh"]}})
    return out


def _cols(a, k):
    return [b.T for b in np.split(np.asarray(a, dtype=np.float64), k, axis=-1)]


def keras_draw(cell_layer, cell: str) -> dict:
    """Keras docs/source: kernel (m, G u) and recurrent_kernel (u, G u) column blocks i, f, c, o (LSTM) or z, r, h
    (GRU); GRU reset_after=True bias (2, 3u) = [input; recurrent], the recurrent h block multiplied by r."""
    c = cell_layer
    k, rk, b = np.asarray(c.kernel), np.asarray(c.recurrent_kernel), np.asarray(c.bias, dtype=np.float64)
    if cell == "lstm":
        return {"x": dict(zip("ifgo", _cols(k, 4))), "h": dict(zip("ifgo", _cols(rk, 4))),
                "b": dict(zip("ifgo", np.split(b, 4)))}
    if cell == "gru":
        (bz, br, bn), (cz, cr, cn) = np.split(b[0], 3), np.split(b[1], 3)
        return {"x": dict(zip("zrn", _cols(k, 3))), "h": dict(zip(("z", "r", "hn"), _cols(rk, 3))),
                "b": {"z": bz + cz, "r": br + cr, "n": bn, "hn": cn}}
    if cell == "gru_reset_before":
        return {"x": dict(zip("zrn", _cols(k, 3))), "h": dict(zip("zrn", _cols(rk, 3))), "b": dict(zip("zrn", np.split(b, 3)))}
    return {"x": {"h": k.T}, "h": {"h": rk.T}, "b": {"h": b}}


def linen_draw(params: dict, cell: str) -> dict:
    """flax.linen.recurrent: LSTMCell Dense 'i?' (input, no bias) and 'h?' (hidden, bias); GRUCell 'ir', 'iz',
    'in' (bias), 'hr', 'hz' (no bias), 'hn' (bias); SimpleCell 'i' (bias), 'h'. Kernels are (in, out)."""
    p = {k: {a: np.asarray(v, dtype=np.float64) for a, v in d.items()} for k, d in params["params"].items()}
    if cell == "lstm":
        return {"x": {k: p["i" + k]["kernel"].T for k in "ifgo"}, "h": {k: p["h" + k]["kernel"].T for k in "ifgo"},
                "b": {k: p["h" + k]["bias"] for k in "ifgo"}}
    if cell == "gru":
        return {"x": {k: p["i" + k]["kernel"].T for k in "rzn"},
                "h": {"r": p["hr"]["kernel"].T, "z": p["hz"]["kernel"].T, "hn": p["hn"]["kernel"].T},
                "b": {"r": p["ir"]["bias"], "z": p["iz"]["bias"], "n": p["in"]["bias"], "hn": p["hn"]["bias"]}}
    return {"x": {"h": p["i"]["kernel"].T}, "h": {"h": p["h"]["kernel"].T}, "b": {"h": p["i"]["bias"]}}


def nnx_draw(c, cell: str) -> dict:
    """flax.nnx.recurrent: LSTMCell Linear ii, if_, ig, io / hi..ho (hidden with bias); OptimizedLSTMCell fused
    dense_i (no bias) / dense_h (bias), i, f, g, o; GRUCell fused dense_i (bias) r, z, n / dense_h (no bias):
    no b_hn; SimpleCell dense_i (bias), dense_h."""
    def a(x):
        return np.asarray(x[...], dtype=np.float64)
    kind = type(c).__name__
    if kind == "LSTMCell":
        names = {"i": "i", "f": "f_", "g": "g", "o": "o"}
        return {"x": {k: a(getattr(c, "i" + names[k]).kernel).T for k in "ifgo"},
                "h": {k: a(getattr(c, "h" + k).kernel).T for k in "ifgo"}, "b": {k: a(getattr(c, "h" + k).bias) for k in "ifgo"}}
    if kind == "OptimizedLSTMCell":
        return {"x": dict(zip("ifgo", _cols(a(c.dense_i.kernel), 4))), "h": dict(zip("ifgo", _cols(a(c.dense_h.kernel), 4))),
                "b": dict(zip("ifgo", np.split(a(c.dense_h.bias), 4)))}
    if kind == "GRUCell":
        bx = np.split(a(c.dense_i.bias), 3)
        return {"x": dict(zip("rzn", _cols(a(c.dense_i.kernel), 3))), "h": dict(zip(("r", "z", "hn"), _cols(a(c.dense_h.kernel), 3))),
                "b": {"r": bx[0], "z": bx[1], "n": bx[2], "hn": np.zeros_like(bx[0])}}
    return {"x": {"h": a(c.dense_i.kernel).T}, "h": {"h": a(c.dense_h.kernel).T}, "b": {"h": a(c.dense_i.bias)}}


# ---------------------------------------------------------------- checks against the rule


def check_statistics(draws: list[dict], rule: dict, dtype=np.float32) -> None:
    """``dtype``: the parameters' storage type. Per map, pooled over draws: input weights' mean square * m / sigma2 = 1, each recurrent block sqrt(nu2) *
    orthogonal (or mean square * n / nu2 = 1), effective bias mean mu and variance rho2."""
    h = rule["hyperparameters"]
    for k in sorted(set(draws[0]["x"]) | set(draws[0]["h"]) | set(draws[0]["b"])):
        if k in draws[0]["x"]:
            w = [d["x"][k] for d in draws]
            N = sum(x.size for x in w)
            ratio = sum(np.sum(x**2) * x.shape[1] for x in w) / N / h[f"sigma2_{k}"]
            assert abs(ratio - 1) <= SIGMAS * math.sqrt(2 / N), (k, ratio)
        if k in draws[0]["h"]:
            nu2 = h[f"nu2_{k}"]
            for d in draws:
                u = d["h"][k]
                n = u.shape[0]
                if rule["weights"] == "orthogonal":
                    np.testing.assert_allclose(u @ u.T, nu2 * np.eye(n), err_msg=k,
                                               atol=ORTHOGONAL_ULPS * n * np.finfo(dtype).eps * max(nu2, 1))
                else:
                    assert abs(np.mean(u**2) * n / nu2 - 1) <= SIGMAS * math.sqrt(2 / u.size), k
        if k not in draws[0]["b"]:
            continue
        b = np.concatenate([d["b"][k] for d in draws])
        mu, rho2 = h[f"mu_{k}"], h[f"rho2_{k}"]
        assert abs(b.mean() - mu) <= SIGMAS * math.sqrt(rho2 / b.size) + 1e-12, (k, b.mean(), mu)
        assert abs(b.var(ddof=1) / rho2 - 1) <= SIGMAS * math.sqrt(2 / (b.size - 1)), (k, b.var(), rho2)


def network_from(draw: dict, rule: dict) -> Network:
    """symmft's own network of the rule's cell with the framework's parameters in place of its draw."""
    n, m = next(iter(draw["x"].values())).shape
    net = Network(rule["cell"], rule["hyperparameters"], width=n, input_dim=m, tied=True, rng=0)
    for (k, v) in list(net.matrices):
        net.matrices[k, v] = draw["x"][k] if v == "x" else draw["h"][k]
    for k in net.biases:
        net.biases[k] = draw["b"][k][:, None]
    return net


def cell_run(net: Network, xs: np.ndarray, states: dict) -> list[dict]:
    """The cell file's step over xs (T, k, m); states n x k; returns the states after every step."""
    out = []
    for x in xs:
        states = net.step(x.T, states)
        out.append({s: np.asarray(v) for s, v in states.items()})
    return out


# ---------------------------------------------------------------- PyTorch

TORCH_LAYERS = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "vanilla_rnn": torch.nn.RNN}
TORCH_CELLS = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell, "vanilla_rnn": torch.nn.RNNCell}


@pytest.mark.parametrize("cell", ["lstm", "gru", "vanilla_rnn"])
@pytest.mark.parametrize("weights", ["orthogonal", "gaussian"])
def test_torch_round_trip_matches_rule_per_gate(cell, weights, tmp_path):
    rule = make_rule(cell, weights)
    mod = load_emitted(export_source(rule, "torch"), tmp_path, f"torch_rt_{cell}_{weights}")
    # 2 layers x 2 directions = 4 draws, hidden 200: biases pooled over 800 units per map
    layer = TORCH_LAYERS[cell](24, 200, num_layers=2, bidirectional=True).double()
    mod.init_(layer, generator=torch.Generator().manual_seed(1))
    check_statistics(torch_draws(layer, cell), rule, np.float64)


@pytest.mark.parametrize("cell", ["lstm", "gru", "vanilla_rnn"])
def test_torch_forward_equals_cell_step(cell, tmp_path):
    rule = make_rule(cell, scale=0.5)
    mod = load_emitted(export_source(rule, "torch"), tmp_path, f"torch_fw_{cell}")
    n, m, k, T = 16, 7, 3, 6
    layer = mod.init_(TORCH_LAYERS[cell](m, n).double(), generator=torch.Generator().manual_seed(2))
    net = network_from(torch_draws(layer, cell)[0], rule)
    rng = np.random.default_rng(3)
    xs, h0, c0 = rng.standard_normal((T, k, m)), 0.5 * rng.standard_normal((k, n)), 0.5 * rng.standard_normal((k, n))
    states = {"h": h0.T, "c": c0.T} if cell == "lstm" else {"h": h0.T}
    expected = cell_run(net, xs, states)
    with torch.no_grad():
        x = torch.from_numpy(xs)
        if cell == "lstm":
            out, (_, c) = layer(x, (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None]))
            np.testing.assert_allclose(c[0].numpy().T, expected[-1]["c"], atol=FORWARD, rtol=0)
        else:
            out, _ = layer(x, torch.from_numpy(h0)[None])
    np.testing.assert_allclose(out.numpy(), np.stack([e["h"].T for e in expected]), atol=FORWARD, rtol=0)
    # the *Cell version of the same layer type draws by the same rule and computes the same step
    single = mod.init_(TORCH_CELLS[cell](m, n).double(), generator=torch.Generator().manual_seed(2))
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        getattr(single, name).data.copy_(getattr(layer, name + "_l0"))
    with torch.no_grad():
        hx = torch.from_numpy(h0) if cell != "lstm" else (torch.from_numpy(h0), torch.from_numpy(c0))
        first = single(torch.from_numpy(xs[0]), hx)
    first = first[0] if cell == "lstm" else first
    np.testing.assert_allclose(first.numpy().T, expected[0]["h"], atol=FORWARD, rtol=0)


# ---------------------------------------------------------------- Keras 3

KERAS_LAYERS = {"lstm": keras.layers.LSTM, "gru": keras.layers.GRU, "gru_reset_before": keras.layers.GRU,
                "vanilla_rnn": keras.layers.SimpleRNN}


@pytest.mark.parametrize("cell", ["lstm", "gru", "gru_reset_before", "vanilla_rnn"])
def test_keras_round_trip_and_forward_equal_cell_step(cell, tmp_path):
    mod = load_emitted(export_source(make_rule(cell), "keras"), tmp_path, f"keras_rt_{cell}")
    # round trip: 4 layers of 200 units pool 800 bias values per map
    draws = []
    for seed in range(4):
        layer = mod.make_layer(200, seed=seed)
        layer.build((None, None, 24))
        draws.append(keras_draw(layer.cell, cell))
    check_statistics(draws, make_rule(cell))
    # get_config round trip: a layer rebuilt from its config draws by the same rule
    clone = KERAS_LAYERS[cell].from_config(layer.get_config())
    assert isinstance(clone.cell.kernel_initializer, mod.RuleInitializer)
    # forward equivalence in float64
    rule = make_rule(cell, scale=0.5)
    mod = load_emitted(export_source(rule, "keras"), tmp_path, f"keras_fw_{cell}")
    n, m, k, T = 16, 7, 3, 6
    rng = np.random.default_rng(3)
    xs, h0, c0 = rng.standard_normal((T, k, m)), 0.5 * rng.standard_normal((k, n)), 0.5 * rng.standard_normal((k, n))
    # float32: Keras 3 on JAX does not run these layers in float64 (SimpleRNN fails under jax x64, LSTM keeps
    # float32 intermediates), so the framework side computes in float32 and the cell step in float64
    layer = mod.make_layer(n, seed=5, return_sequences=True)
    init = [h0, c0] if cell == "lstm" else [h0]
    out = np.asarray(layer(np.transpose(xs, (1, 0, 2)).astype(np.float32), initial_state=[v.astype(np.float32) for v in init]))
    net = network_from(keras_draw(layer.cell, cell), rule)
    states = {"h": h0.T, "c": c0.T} if cell == "lstm" else {"h": h0.T}
    expected = cell_run(net, xs.astype(np.float32).astype(np.float64), states)
    np.testing.assert_allclose(out, np.stack([e["h"].T for e in expected], axis=1), atol=FORWARD_FLOAT32, rtol=0)


# ---------------------------------------------------------------- Flax

LINEN_CELLS = {"lstm": linen.LSTMCell, "gru": linen.GRUCell, "vanilla_rnn": linen.SimpleCell}
NNX_CELLS = {"lstm": (nnx.LSTMCell, nnx.OptimizedLSTMCell), "gru": (nnx.GRUCell,), "vanilla_rnn": (nnx.SimpleCell,)}


def _linen_params(cell_cls, n, m, dtype=jnp.float32):
    c = cell_cls(features=n, param_dtype=dtype, dtype=dtype)
    carry = c.initialize_carry(jax.random.key(1), (1, m))
    return c, c.init(jax.random.key(0), carry, jnp.zeros((1, m), dtype))


@pytest.mark.parametrize("cell", ["lstm", "gru", "vanilla_rnn"])
def test_flax_linen_round_trip_and_forward_equal_cell_step(cell, tmp_path):
    rule = make_rule(cell)
    mod = load_emitted(export_source(rule, "flax"), tmp_path, f"flax_rt_{cell}")
    module, params = _linen_params(LINEN_CELLS[cell], 200, 24)
    draws = [linen_draw(mod.init_params(params, seed=s, module=module), cell) for s in range(4)]
    check_statistics(draws, rule)

    rule = make_rule(cell, scale=0.5)
    mod = load_emitted(export_source(rule, "flax"), tmp_path, f"flax_fw_{cell}")
    n, m, k, T = 16, 7, 3, 6
    rng = np.random.default_rng(3)
    xs, h0, c0 = rng.standard_normal((T, k, m)), 0.5 * rng.standard_normal((k, n)), 0.5 * rng.standard_normal((k, n))
    with jax.enable_x64(True):
        module, params = _linen_params(LINEN_CELLS[cell], n, m, jnp.float64)
        params = mod.init_params(params, seed=7)
        carry = (c0, h0) if cell == "lstm" else h0
        outs = []
        for x in xs:
            carry, y = module.apply(params, carry, x)
            outs.append(np.asarray(y))
    expected = cell_run(network_from(linen_draw(params, cell), rule), xs,
                        {"h": h0.T, "c": c0.T} if cell == "lstm" else {"h": h0.T})
    np.testing.assert_allclose(np.stack(outs), np.stack([e["h"].T for e in expected]), atol=FORWARD, rtol=0)


@pytest.mark.parametrize("cell", ["lstm", "gru", "vanilla_rnn"])
def test_flax_nnx_round_trip_and_forward_equal_cell_step(cell, tmp_path):
    # NNX's GRUCell has no b_hn: it computes cell gru only with that bias zero, so the rule has mu_hn = rho2_hn = 0
    zero_hn = {"mu_hn": 0.0, "rho2_hn": 0.0} if cell == "gru" else {}
    rule = make_rule(cell, **zero_hn)
    mod = load_emitted(export_source(rule, "flax"), tmp_path, f"nnx_rt_{cell}")
    n, m, k, T = 16, 7, 3, 6
    rng = np.random.default_rng(3)
    xs, h0, c0 = rng.standard_normal((T, k, m)), 0.5 * rng.standard_normal((k, n)), 0.5 * rng.standard_normal((k, n))
    for cls in NNX_CELLS[cell]:
        draws = [nnx_draw(mod.init_nnx_(cls(24, 200, rngs=nnx.Rngs(0)), seed=s), cell) for s in range(4)]
        if cell == "gru":  # b_hn is structurally zero; check the other maps
            for d in draws:
                d["b"].pop("hn")
        check_statistics(draws, rule)
        with jax.enable_x64(True):
            c = mod.init_nnx_(cls(m, n, rngs=nnx.Rngs(0), param_dtype=jnp.float64, dtype=jnp.float64), seed=8)
            carry = (c0, h0) if cell == "lstm" else h0
            outs = []
            for x in xs:
                carry, y = c(carry, x)
                outs.append(np.asarray(y))
            draw = nnx_draw(c, cell)
        expected = cell_run(network_from(draw, rule), xs, {"h": h0.T, "c": c0.T} if cell == "lstm" else {"h": h0.T})
        np.testing.assert_allclose(np.stack(outs), np.stack([e["h"].T for e in expected]), atol=FORWARD, rtol=0)
