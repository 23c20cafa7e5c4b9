"""symmft.export.spec and ``symmft export``: convention checks, refusals with clear errors (export time and, in the
emitted code, layer options), the JSON description, baseline rules and the command line."""

from __future__ import annotations

import ast
import json
import math
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # before keras / flax: Keras 3 otherwise looks for tensorflow

import keras
import numpy as np
import pytest
import torch
from flax import nnx

from export_support import load_emitted, make_rule
from symmft import load_cell, SymmftError, export_source
from symmft.cli.main import main
from symmft.export.spec import ExportError, baseline_rule, json_description

FRAMEWORKS = ("torch", "flax", "keras")


# ---------------------------------------------------------------- what the emitted modules are


@pytest.mark.parametrize("target", FRAMEWORKS)
def test_emitted_module_is_standalone_and_carries_the_rule(target):
    rule = make_rule("lstm")
    text = export_source(rule, target, source="rules/x.json")
    tree = ast.parse(text)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))
                for a in (n.names if isinstance(n, ast.Import) else [ast.alias(n.module or "")])}
    assert "symmft" not in imported
    doc = ast.get_docstring(tree)
    assert rule["cell_file_hash"] in doc and "rules/x.json" in doc and "cell lstm" in doc
    # the numbers are the rule's, exactly (repr round-trips floats)
    maps = ast.literal_eval(next(n.value for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "MAPS"))
    assert maps["f"] == {"sigma2": rule["hyperparameters"]["sigma2_f"], "nu2": rule["hyperparameters"]["nu2_f"],
                         "mu": rule["hyperparameters"]["mu_f"], "rho2": rule["hyperparameters"]["rho2_f"], "beta": 0.0}


def test_chrono_bias_is_one_log_uniform_per_unit_shared_by_maps(tmp_path):
    # chrono init (Tallec & Ollivier): b_f = log U, b_i = -log U with the same U, U ~ Uniform[1, T - 1]
    T = 50
    rule = make_rule("lstm", "gaussian", mu_f=0.0, rho2_f=0.0, mu_i=0.0, rho2_i=0.0, beta_f=1.0, beta_i=-1.0,
                     chrono_length=T)  # gaussian: 2000 units without four 2000 x 2000 QRs
    mod = load_emitted(export_source(rule, "torch"), tmp_path, "chrono_torch")
    layer = mod.init_(torch.nn.LSTM(8, 2000), generator=torch.Generator().manual_seed(0))
    b = (layer.bias_ih_l0 + layer.bias_hh_l0).detach().double().numpy().reshape(4, -1)
    bi, bf = b[0], b[1]
    np.testing.assert_allclose(bi, -bf, atol=1e-6)  # float32 storage
    assert bf.min() >= 0 and bf.max() <= math.log(T - 1) + 1e-6
    # E[log U] and Var[log U] for U ~ Uniform[1, c], c = T - 1, in closed form: (c ln c - c + 1)/(c - 1) and
    # (c (ln^2 c - 2 ln c + 2) - 2)/(c - 1) - mean^2; 5 standard errors of the 2000-unit sample mean
    c = T - 1.0
    mean = (c * math.log(c) - c + 1) / (c - 1)
    var = (c * (math.log(c) ** 2 - 2 * math.log(c) + 2) - 2) / (c - 1) - mean**2
    assert abs(bf.mean() - mean) <= 5 * math.sqrt(var / bf.size)


# ---------------------------------------------------------------- refusals at export time


def test_rule_from_a_changed_cell_file_is_refused_unless_overridden():
    rule = make_rule("lstm")
    rule["cell_file_hash"] = "0" * 64
    with pytest.raises(ExportError, match="Re-derive.*--as-cell lstm"):
        export_source(rule, "torch")
    assert "init_" in export_source(rule, "torch", as_cell="lstm")
    assert "Exported AS built-in cell lstm" in export_source(rule, "torch", as_cell="lstm")


def test_user_cell_rule_is_refused_for_frameworks_but_exports_to_json():
    rule = make_rule("lstm")
    rule["cell"] = "janet"
    with pytest.raises(ExportError, match="not a built-in cell.*json"):
        export_source(rule, "keras")
    assert json.loads(export_source(rule, "json"))["cell"] == "janet"


@pytest.mark.parametrize("target, cell, reason", [
    ("torch", "gru_reset_before", "reset gate after the recurrent matmul"),
    ("flax", "gru_reset_before", "reset gate after the recurrent matmul"),
    ("torch", "minimal_rnn", "no minimalRNN"),
    ("keras", "minimal_rnn", "no minimalRNN"),
    ("flax", "minimal_rnn", "no minimalRNN"),
])
def test_cell_without_a_framework_layer_is_refused(target, cell, reason):
    with pytest.raises(ExportError, match=reason):
        export_source(make_rule(cell), target)


def test_minimal_rnn_exports_to_json_with_both_recurrent_matrices():
    d = json_description(make_rule("minimal_rnn"))
    assert set(d["maps"]) == {"z", "u"}
    assert set(d["maps"]["u"]["matrices"]) == {"h", "z"} and set(d["maps"]["z"]["matrices"]) == {"x"}
    assert d["maps"]["u"]["matrices"]["z"]["value"] == make_rule("minimal_rnn")["hyperparameters"]["nu2_u_z"]


def test_json_description_of_gru_keeps_hn_separate():
    d = json_description(make_rule("gru"))
    h = make_rule("gru")["hyperparameters"]
    assert set(d["maps"]) == {"r", "z", "n", "hn"}
    assert set(d["maps"]["hn"]["matrices"]) == {"h"} and d["maps"]["hn"]["mu"] == h["mu_hn"]
    assert set(d["maps"]["n"]["matrices"]) == {"x"}


def test_missing_or_invalid_hyperparameters_are_named():
    rule = make_rule("lstm")
    del rule["hyperparameters"]["nu2_g"]
    with pytest.raises(SymmftError, match="nu2_g"):
        export_source(rule, "torch")
    rule = make_rule("lstm", rho2_f=-1.0)
    with pytest.raises(SymmftError, match="rho2_f.*>= 0"):
        export_source(rule, "torch")


# ---------------------------------------------------------------- refusals by the emitted code (layer options)


def test_torch_layer_options_that_change_the_cell_are_refused(tmp_path):
    lstm = load_emitted(export_source(make_rule("lstm"), "torch"), tmp_path, "refuse_torch_lstm")
    rnn = load_emitted(export_source(make_rule("vanilla_rnn"), "torch"), tmp_path, "refuse_torch_rnn")
    with pytest.raises(ValueError, match="proj_size"):
        lstm.init_(torch.nn.LSTM(4, 8, proj_size=3))
    with pytest.raises(ValueError, match="for cell lstm.*got GRU"):
        lstm.init_(torch.nn.GRU(4, 8))
    with pytest.raises(ValueError, match="bias=False"):
        lstm.init_(torch.nn.LSTM(4, 8, bias=False))
    with pytest.raises(ValueError, match="relu"):
        rnn.init_(torch.nn.RNN(4, 8, nonlinearity="relu"))
    # a rule without biases fits a bias-free layer
    no_bias = make_rule("lstm", **{f"{p}_{k}": 0.0 for p in ("mu", "rho2") for k in "ifgo"})
    load_emitted(export_source(no_bias, "torch"), tmp_path, "nobias_torch").init_(torch.nn.LSTM(4, 8, bias=False))


def test_keras_layer_options_that_change_the_cell_are_refused(tmp_path):
    lstm = load_emitted(export_source(make_rule("lstm"), "keras"), tmp_path, "refuse_keras_lstm")
    gru = load_emitted(export_source(make_rule("gru"), "keras"), tmp_path, "refuse_keras_gru")
    with pytest.raises(ValueError, match="hard_sigmoid"):
        lstm.make_layer(8, recurrent_activation="hard_sigmoid")
    with pytest.raises(ValueError, match="hard_sigmoid"):
        lstm.check_layer(keras.layers.LSTM(8, recurrent_activation="hard_sigmoid", unit_forget_bias=False))
    with pytest.raises(ValueError, match="unit_forget_bias=True.*add 1"):
        lstm.check_layer(keras.layers.LSTM(8))
    with pytest.raises(ValueError, match="reset_after=False"):
        gru.make_layer(8, reset_after=False)
    with pytest.raises(ValueError, match="for cell gru.*got LSTM"):
        gru.check_layer(keras.layers.LSTM(8, unit_forget_bias=False))
    with pytest.raises(ValueError, match="would replace the rule's initializers"):
        lstm.make_layer(8, kernel_initializer="zeros")
    # the initializers used by hand in a layer with the other GRU convention: the bias shape gives it away
    layer = keras.layers.GRU(8, reset_after=False, **{k: v for k, v in gru.initializers().items() if k != "reset_after"})
    with pytest.raises(ValueError, match="does not fit the rule's layout"):
        layer.build((None, None, 4))
    # unit_forget_bias=True calls the bias initializer with (units,) pieces
    layer = keras.layers.LSTM(8, **{**lstm.initializers(), "unit_forget_bias": True})
    with pytest.raises(ValueError, match="unit_forget_bias"):
        layer.build((None, None, 4))


def test_flax_nnx_gru_without_b_hn_is_refused_for_a_rule_with_that_bias(tmp_path):
    mod = load_emitted(export_source(make_rule("gru"), "flax"), tmp_path, "refuse_nnx_gru")
    with pytest.raises(ValueError, match="no b_hn"):
        mod.init_nnx_(nnx.GRUCell(4, 8, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="for cell gru.*got LSTMCell"):
        mod.init_nnx_(nnx.LSTMCell(4, 8, rngs=nnx.Rngs(0)))
    with pytest.raises(ValueError, match="linen modules"):
        mod.init_params({"params": {"i": {}, "h": {}}})


# ---------------------------------------------------------------- baselines as rules


def test_pytorch_baseline_rule_has_the_pytorch_variances(tmp_path):
    # PyTorch's default U(-1/sqrt(H), 1/sqrt(H)) has variance 1/(3H) per entry, so in symmft's convention
    # sigma2 = m/(3H), nu2 = 1/3, and the effective bias b_ih + b_hh has variance 2/(3H)
    H, m = 96, 40
    rule = baseline_rule("lstm", "pytorch", 100, H, m)
    h = rule["hyperparameters"]
    assert rule["cell_file_hash"] == load_cell("lstm").file_hash and rule["baseline"]["name"] == "pytorch"
    assert math.isclose(h["sigma2_f"], m / (3 * H)) and math.isclose(h["nu2_f"], 1 / 3)
    assert math.isclose(h["rho2_f"], 2 / (3 * H)) and h["mu_f"] == 0
    assert rule["criteria"]["fails"]  # the baseline is judged by the same criteria
    mod = load_emitted(export_source(rule, "torch"), tmp_path, "baseline_torch")
    layer = mod.init_(torch.nn.LSTM(m, H), generator=torch.Generator().manual_seed(0))
    w = layer.weight_ih_l0.detach().double().numpy()
    # 4 H m entries of variance 1/(3H): 5 standard errors of the mean square
    assert abs(np.mean(w**2) * 3 * H - 1) <= 5 * math.sqrt(2 / w.size)
    with pytest.raises(ValueError, match="made for hidden size 96"):
        mod.init_(torch.nn.LSTM(m, 2 * H))


def test_chrono_and_forget1_baselines_set_the_memory_gate():
    chrono = baseline_rule("lstm", "chrono", 300, 64)["hyperparameters"]
    assert (chrono["beta_f"], chrono["beta_i"], chrono["chrono_length"]) == (1.0, -1.0, 300.0)
    assert baseline_rule("lstm", "forget1", 300, 64)["hyperparameters"]["mu_f"] == 1.0
    with pytest.raises(SymmftError, match="has none"):
        baseline_rule("vanilla_rnn", "forget1", 300, 64)


# ---------------------------------------------------------------- command line


def test_cli_writes_importable_modules_and_json(tmp_path, capsys):
    rule_path = tmp_path / "rule.json"
    rule_path.write_text(json.dumps(make_rule("gru")))
    out = tmp_path / "gru_init.py"
    assert main(["export", str(rule_path), "--to", "torch", "-o", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == str(out) and summary["cell"] == "gru"
    mod = load_emitted(out.read_text(), tmp_path, "cli_gru_init")
    mod.init_(torch.nn.GRU(4, 8))
    assert main(["export", str(rule_path), "--to", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["maps"]["hn"]["mu"] == make_rule("gru")["hyperparameters"]["mu_hn"]


def test_cli_baseline_round_trips_through_a_rule_file(tmp_path, capsys):
    path = tmp_path / "forget1.json"
    assert main(["export", "--baseline", "forget1", "--cell", "lstm", "--length", "100", "--width", "32",
                 "--to", "rule", "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["export", str(path), "--to", "keras"]) == 0
    assert "forget-gate bias 1" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["export", "--to", "torch"], "give RULE.json"),
    (["export", "--baseline", "chrono", "--to", "torch"], "needs --cell, --length, --width"),
    (["export", "r.json", "--to", "torch", "--width", "8"], "only apply with --baseline"),
])
def test_cli_bad_options_give_one_line_errors(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_cli_refusal_is_one_line(tmp_path, capsys):
    rule_path = tmp_path / "rule.json"
    rule_path.write_text(json.dumps(make_rule("gru_reset_before")))
    assert main(["export", str(rule_path), "--to", "torch"]) == 2
    err = capsys.readouterr().err
    assert "reset gate after" in err and len(err.strip().splitlines()) == 1
