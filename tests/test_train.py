"""The training harness: Adam and clipping against torch, initial draws against their rules' statistics,
exact checkpoint resume, and a short run that learns."""

import json
import math

import numpy as np
import pytest
import torch

from symmft import load_cell, make_task, train
from symmft.init.search import baseline_hyperparameters
from symmft.harness.train import CHECKPOINT, METRICS, Adam, TrainingError, clip_gradients, initial_parameters, resolve_init

LSTM = load_cell("lstm")


def test_adam_matches_torch_adam_in_float64():
    rng = np.random.default_rng(0)
    params = {"a": rng.standard_normal((3, 4)), "b": rng.standard_normal(5)}
    tparams = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    ours = Adam(params, lr=3e-3)
    ref = torch.optim.Adam(list(tparams.values()), lr=3e-3)
    for _ in range(7):
        grads = {k: rng.standard_normal(v.shape) * 10 ** rng.uniform(-4, 1) for k, v in params.items()}
        ours.update(params, grads)
        for k, t in tparams.items():
            t.grad = torch.tensor(grads[k])
        ref.step()
    for k in params:
        # both float64, same formula up to the order of a few operations: agreement to ~1e-15 relative; 1e-12
        # leaves room for the accumulated rounding of 7 steps
        np.testing.assert_allclose(params[k], tparams[k].detach().numpy(), rtol=1e-12, atol=1e-14)


def test_gradient_clipping_matches_torch_clip_grad_norm():
    rng = np.random.default_rng(1)
    grads = {"a": rng.standard_normal((4, 4)), "b": rng.standard_normal(3)}
    ts = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads.values()]
    for t, g in zip(ts, grads.values()):
        t.grad = torch.tensor(g.copy())
    ref_norm = torch.nn.utils.clip_grad_norm_(ts, 0.5)
    norm = clip_gradients(grads, 0.5)
    assert norm == pytest.approx(ref_norm.item(), rel=1e-14)
    for t, g in zip(ts, grads.values()):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-14)


def _rule(hyper, weights):
    return {"cell": "lstm", "cell_file_hash": LSTM.file_hash, "length": 100, "weights": weights,
            "hyperparameters": hyper, "criteria": {}, "margins": {}, "input_statistics": {}}


def test_rule_init_has_the_rules_per_block_statistics():
    H, m = 400, 30
    task = make_task("adding", 10, train_size=4, test_size=4)
    hyper = {"mu_f": 3.0, "rho2_f": 0.25, "mu_i": -1.0, "nu2_f": 0.5, "nu2_g": 2.0, "sigma2_g": 3.0, "q_x": task.q_x}
    info = resolve_init(LSTM, _rule(hyper, "orthogonal"), task, H)
    p = initial_parameters(LSTM, info, H, m, task.steps, seed=0)
    # orthogonal blocks: U U^T = nu2 I exactly (up to float64 rounding of the QR)
    np.testing.assert_allclose(p["f.h"] @ p["f.h"].T, 0.5 * np.eye(H), atol=1e-12)
    np.testing.assert_allclose(p["g.h"] @ p["g.h"].T, 2.0 * np.eye(H), atol=1e-12)
    np.testing.assert_allclose(p["i.h"] @ p["i.h"].T, np.eye(H), atol=1e-12)  # default nu2 = 1
    # Gaussian input blocks: entry variance sigma2/m; 12000 entries: relative std error sqrt(2/12000) ~ 1.3%, 5 sigma
    assert p["g.x"].shape == (H, m)
    assert np.var(p["g.x"]) * m == pytest.approx(3.0, rel=0.07)
    assert np.var(p["o.x"]) * m == pytest.approx(1.0, rel=0.07)
    # biases N(mu, rho2); 400 units: std error of the mean sqrt(0.25/400) = 0.025 (5 sigma: 0.125), variance 7% (5 sigma: 35%)
    assert np.mean(p["f.bias"]) == pytest.approx(3.0, abs=0.125)
    assert np.var(p["f.bias"]) == pytest.approx(0.25, rel=0.35)
    np.testing.assert_array_equal(p["i.bias"], -1.0)  # rho2_i = 0: exactly the mean


def test_rule_init_with_gaussian_weights():
    H = 300
    task = make_task("adding", 10, train_size=4, test_size=4)
    info = resolve_init(LSTM, _rule({"nu2_o": 0.3, "q_x": task.q_x}, "gaussian"), task, H)
    p = initial_parameters(LSTM, info, H, 2, task.steps, seed=1)
    # 90000 entries: relative std error of the variance sqrt(2/90000) ~ 0.5%; 3% is 6 sigma
    assert np.var(p["o.h"]) * H == pytest.approx(0.3, rel=0.03)


def test_pytorch_default_draw_is_uniform_with_the_baselines_variance():
    H, m = 200, 1
    task = make_task("digits_padded", 10)
    p = initial_parameters(LSTM, resolve_init(LSTM, "pytorch", task, H), H, m, task.steps, seed=0)
    hyper, _ = baseline_hyperparameters(LSTM, "pytorch", task.steps, H, m)
    for k in ("i", "f", "g", "o"):
        assert np.abs(p[f"{k}.h"]).max() <= 1 / math.sqrt(H)  # U(-1/sqrt(H), 1/sqrt(H))
        # entry variance nu2/H = 1/(3H); 40000 entries (uniform: relative std error of the variance ~0.45%), 3%
        assert np.var(p[f"{k}.h"]) * H == pytest.approx(hyper[f"nu2_{k}"], rel=0.03)
        # bias b_ih + b_hh: variance 2/(3H) = rho2_k; 200 units: relative std error ~ 8%, 5 sigma
        assert np.var(p[f"{k}.bias"]) == pytest.approx(hyper[f"rho2_{k}"], rel=0.4)
        assert np.abs(p[f"{k}.bias"]).max() <= 2 / math.sqrt(H)


def test_keras_default_draw_has_orthonormal_fused_recurrent_rows_and_unit_forget_bias():
    H, m = 50, 3
    task = make_task("digits_padded", 10)
    p = initial_parameters(LSTM, resolve_init(LSTM, "keras", task, H), H, m, task.steps, seed=0)
    fused = np.hstack([p[f"{k}.h"].T for k in ("i", "f", "g", "o")])  # Keras' (H, 4H) recurrent kernel
    np.testing.assert_allclose(fused @ fused.T, np.eye(H), atol=1e-12)
    limit = math.sqrt(6 / (m + 4 * H))  # glorot_uniform on the fused (m, 4H) kernel
    assert all(np.abs(p[f"{k}.x"]).max() <= limit for k in "ifgo")
    np.testing.assert_array_equal(p["f.bias"], 1.0)
    np.testing.assert_array_equal(p["i.bias"], 0.0)


def test_chrono_draw_sets_forget_bias_log_uniform_and_input_bias_its_negative():
    H, T = 500, 300
    task = make_task("digits_padded", T - 64)
    p = initial_parameters(LSTM, resolve_init(LSTM, "chrono", task, H), H, 1, task.steps, seed=0)
    np.testing.assert_array_equal(p["i.bias"], -p["f.bias"])
    u = np.exp(p["f.bias"])
    assert u.min() >= 1 and u.max() <= T - 1
    # U uniform on [1, T-1]: mean T/2; 500 draws: std error (T-2)/sqrt(12*500) ~ 3.8, 5 sigma
    assert np.mean(u) == pytest.approx(T / 2, abs=20)


def test_unknown_init_and_foreign_rule_are_clear_errors():
    task = make_task("adding", 10, train_size=4, test_size=4)
    with pytest.raises(TrainingError, match="critical"):
        resolve_init(LSTM, "glorot", task, 8)
    with pytest.raises(TrainingError, match="does not match"):
        resolve_init(load_cell("gru"), _rule({}, "orthogonal"), task, 8)


def _params(directory):
    with np.load(directory / CHECKPOINT) as z:
        return {k: z[k] for k in z.files if k.startswith(("param/", "m/", "v/"))}


def _steps(directory):
    rows = [json.loads(ln) for ln in (directory / METRICS).read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time"} for r in rows if "split" not in r]


def test_checkpoint_resume_continues_bit_identically(tmp_path):
    options = dict(width=6, lr=1e-2, batch=8, seed=3, checkpoint_every=3, predict=False, dtype="float64")
    whole = train("lstm", "pytorch", "adding", 6, steps=6, out_dir=tmp_path / "whole", **options)
    train("lstm", "pytorch", "adding", 6, steps=3, out_dir=tmp_path / "part", **options)  # "interrupted" at 3
    resumed = train("lstm", "pytorch", "adding", 6, steps=6, out_dir=tmp_path / "part", **options)
    assert resumed.resumed_from == 3
    a, b = _params(tmp_path / "whole"), _params(tmp_path / "part")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])  # bit-identical: same arithmetic in the same order
    assert _steps(tmp_path / "whole") == _steps(tmp_path / "part")
    assert resumed.test == whole.test
    with pytest.raises(TrainingError, match="another configuration"):
        train("lstm", "pytorch", "adding", 6, steps=6, out_dir=tmp_path / "part", **{**options, "lr": 2e-2})


def test_short_training_run_learns_the_adding_problem(tmp_path):
    result = train("lstm", "pytorch", "adding", 8, width=16, steps=300, lr=1e-2, batch=32, seed=0,
                   predict=False, out_dir=tmp_path)
    first = np.mean([r["loss"] for r in result.history[:10]])
    # chance MSE ~ 1/6 (predicting the mean); an 8-step adding problem is learned to well below half of it
    assert result.test["mse"] < 0.5 * result.chance
    assert result.final_train_loss < 0.5 * first


def test_model_gradient_matches_central_differences():
    from symmft.harness.train import Model

    task = make_task("copy", 3, train_size=8, test_size=2)  # per-step readout over the last 10 steps
    model = Model(LSTM, task, dtype="float64")
    p = initial_parameters(LSTM, resolve_init(LSTM, "pytorch", task, 5), 5, task.input_dim, task.steps, seed=0)
    rng = np.random.default_rng(0)
    p["readout.weight"], p["readout.bias"] = rng.standard_normal((task.classes, 5)), rng.standard_normal(task.classes)
    xs, y = task.batch("train", np.arange(4))
    _, _, grads = model.loss_and_grads(p, xs, y)
    eps = 1e-6
    for key, index in (("readout.weight", (2, 3)), ("readout.bias", (1,)), ("f.bias", (0,)), ("i.h", (1, 4)),
                       ("g.x", (3, 7))):
        plus, minus = {k: v.copy() for k, v in p.items()}, {k: v.copy() for k, v in p.items()}
        plus[key][index] += eps
        minus[key][index] -= eps
        fd = (model.loss_and_grads(plus, xs, y)[0] - model.loss_and_grads(minus, xs, y)[0]) / (2 * eps)
        # float64 central difference: truncation ~eps^2 = 1e-12, rounding ~1e-16/eps = 1e-10 (absolute, loss ~ 2)
        assert grads[key][index] == pytest.approx(fd, rel=1e-6, abs=1e-9), key


@pytest.mark.gpu
def test_cupy_training_follows_the_numpy_run():
    from symmft.backend import gpu_available

    if not gpu_available():
        pytest.skip("needs CuPy and a CUDA GPU")
    options = dict(width=16, steps=5, lr=1e-3, batch=16, seed=0, predict=False, dtype="float64")
    cpu = train("lstm", "pytorch", "digits_padded", 20, backend="numpy", **options)
    gpu = train("lstm", "pytorch", "digits_padded", 20, backend="cupy", **options)
    # float64 on both; only BLAS summation orders differ (~1e-15), and 5 Adam steps keep the losses within 1e-9
    np.testing.assert_allclose([r["loss"] for r in gpu.history], [r["loss"] for r in cpu.history], rtol=1e-9)


def test_cli_train_writes_the_run_and_reports_bad_init_in_one_line(capsys, tmp_path):
    from symmft.cli.main import main

    code = main(["train", "lstm", "--init", "pytorch", "--task", "adding", "--length", "5", "--steps", "3",
                 "--width", "4", "--batch", "8", "-o", str(tmp_path), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["config"]["steps"] == 3
    assert out["test"] == json.loads((tmp_path / "result.json").read_text())["test"]
    assert [json.loads(ln)["step"] for ln in (tmp_path / METRICS).read_text().splitlines()] == [1, 2, 3, 3]
    code = main(["train", "lstm", "--init", "glorot", "--task", "adding", "--length", "5"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown init 'glorot'" in err and len(err.strip().splitlines()) == 1
