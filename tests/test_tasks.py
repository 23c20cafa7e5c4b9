"""The training harness's tasks: data against scikit-learn and recomputed targets, losses against torch."""

import numpy as np
import pytest
import torch
from sklearn.datasets import load_digits

from symmft import make_task
from symmft.harness.tasks import COPY_LENGTH, COPY_SYMBOLS, TaskError


def test_padded_digits_are_sklearn_pixels_standardized_then_padding():
    task = make_task("digits_padded", 30, seed=3)
    digits = load_digits()
    assert task.size("train") + task.size("test") == len(digits.target)
    assert task.steps == 64 + 30 and task.input_dim == 1 and task.q_x == 0.0
    idx = np.arange(5)
    xs, y = task.batch("test", idx)
    example = task.test["example"][idx]
    # independent standardization: mean and std of the raw training pixels
    train_pixels = digits.data[task.train["example"]]
    expected = (digits.data[example] - train_pixels.mean()) / train_pixels.std()
    np.testing.assert_allclose(xs[:64, :, 0].T, expected, rtol=0, atol=1e-12)  # same arithmetic, float64 rounding
    assert np.all(xs[64:] == 0)
    np.testing.assert_array_equal(y[0], digits.target[example])
    # the training split's pixel stream is standardized: mean 0, second moment 1
    all_train = task.batch("train", np.arange(task.size("train")))[0][:64]
    assert abs(all_train.mean()) < 1e-12 and abs((all_train ** 2).mean() - 1) < 1e-12
    # a critical rule is searched at the signal's second moment (1, measured just above), not the padding's 0
    assert task.q_signal == pytest.approx((all_train ** 2).mean(), abs=1e-12) and task.q_rule == task.q_signal


def test_noise_padding_is_fixed_per_example_and_unit_variance():
    task = make_task("digits_padded", 200, seed=0, padding="noise")
    a, _ = task.batch("train", [4, 9])
    b, _ = task.batch("train", [9, 4])
    np.testing.assert_array_equal(a[:, 0], b[:, 1])
    noise = task.batch("train", np.arange(300))[0][64:]
    assert abs(noise.var() - 1) < 0.02  # 60000 N(0,1) draws: std error of the variance ~ 0.006
    assert task.q_x == 1.0


def test_repeated_digits_repeat_each_pixel_k_times():
    task = make_task("digits_repeated", 64 * 3, seed=1)
    short = make_task("digits_padded", 1, seed=1)
    xs, y = task.batch("train", [0, 1])
    xs1, y1 = short.batch("train", [0, 1])
    for k in range(3):
        np.testing.assert_array_equal(xs[k::3], xs1[:64])
    np.testing.assert_array_equal(y, y1)
    with pytest.raises(TaskError, match="multiple of 64"):
        make_task("digits_repeated", 100)


def test_split_is_fixed_by_seed_and_disjoint():
    a, b = make_task("digits_padded", 5, seed=7), make_task("digits_padded", 5, seed=7)
    np.testing.assert_array_equal(a.test["example"], b.test["example"])
    assert not set(a.train["example"]) & set(a.test["example"])
    assert not np.array_equal(a.test["example"], make_task("digits_padded", 5, seed=8).test["example"])


def test_digits_chance_is_majority_class_frequency():
    task = make_task("digits_padded", 5, seed=0)
    train_labels = load_digits().target[task.train["example"]]
    majority = np.bincount(train_labels).argmax()
    assert task.chance == pytest.approx(np.mean(load_digits().target[task.test["example"]] == majority), abs=0)
    assert 0.05 < task.chance < 0.15  # ten nearly balanced classes, 359 test digits: std error ~ 0.016
    assert task.chance_loss == pytest.approx(np.log(10))


def test_adding_targets_recomputed_from_inputs():
    task = make_task("adding", 50, seed=2, train_size=200, test_size=100)
    xs, y = task.batch("test", np.arange(100))
    assert xs.shape == (50, 100, 2)
    markers = xs[:, :, 1]
    np.testing.assert_array_equal(markers.sum(axis=0), 2)
    first, second = (np.argmax(markers[:25], axis=0), 25 + np.argmax(markers[25:], axis=0))
    assert np.all(markers[:25].sum(axis=0) == 1)  # one marker in each half
    np.testing.assert_allclose(y[0], (xs[:, :, 0] * markers).sum(axis=0), rtol=1e-14)
    np.testing.assert_allclose(y[0], xs[first, np.arange(100), 0] + xs[second, np.arange(100), 0], rtol=1e-14)
    # chance: predicting the mean; the sum of two U[0,1] has variance 1/6; 100 test samples: std error ~ 0.025
    assert abs(task.chance - 1 / 6) < 0.06


def test_copy_inputs_targets_and_layout():
    T = 20
    task = make_task("copy", T, seed=0, train_size=50, test_size=10)
    xs, y = task.batch("train", np.arange(50))
    assert xs.shape == (2 * COPY_LENGTH + T, 50, COPY_SYMBOLS + 2) and y.shape == (COPY_LENGTH, 50)
    codes = xs.argmax(axis=-1)
    np.testing.assert_array_equal(xs.sum(axis=-1), 1)  # one-hot
    np.testing.assert_array_equal(codes[:COPY_LENGTH], y)  # the symbols to recall are the first S inputs
    assert np.all(codes[COPY_LENGTH:COPY_LENGTH + T] == COPY_SYMBOLS)  # blanks
    assert np.all(codes[COPY_LENGTH + T] == COPY_SYMBOLS + 1)  # delimiter
    assert np.all(codes[COPY_LENGTH + T + 1:] == COPY_SYMBOLS)
    assert task.readout_steps == COPY_LENGTH and task.classes == COPY_SYMBOLS


@pytest.mark.parametrize("name", ["digits_padded", "copy", "adding"])
def test_loss_and_gradient_match_torch(name):
    task = make_task(name, 8, train_size=20, test_size=4) if name != "digits_padded" else make_task(name, 8)
    _, y = task.batch("train", np.arange(6))
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((*y.shape, task.classes))
    loss, grad = task.loss(logits, y)
    t = torch.tensor(logits, requires_grad=True)
    if task.regression:
        ref = torch.nn.functional.mse_loss(t[..., 0], torch.tensor(y))
    else:
        ref = torch.nn.functional.cross_entropy(t.reshape(-1, task.classes), torch.tensor(y).reshape(-1))
    ref.backward()
    # float64 on both sides: agreement to rounding (1e-12 relative)
    assert loss == pytest.approx(ref.item(), rel=1e-12)
    np.testing.assert_allclose(grad, t.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_bad_task_names_and_options_are_clear_errors():
    with pytest.raises(TaskError, match="choose one of"):
        make_task("mnist", 10)
    with pytest.raises(TaskError, match="padding"):
        make_task("digits_padded", 10, padding="ones")
    with pytest.raises(TaskError, match="integer >= 1"):
        make_task("copy", 0)
