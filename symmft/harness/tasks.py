"""Offline long-memory tasks for the training harness: padded digits, repeated-pixel digits, copy memory, adding.

Stage: harness input. :func:`make_task` returns a :class:`Task` holding a train and a test split (fixed seed) in
compact per-example form; :meth:`Task.batch` builds the time-major input (steps, B, m) and the targets of a
minibatch on demand, so long sequences never sit in memory for the whole data set. A model reads its output
state at the task's last ``readout_steps`` steps through a linear readout; :meth:`Task.loss` takes those logits
(R, B, K) and returns the loss and its gradient, :meth:`Task.metric` the accuracy (classification) or the mean
squared error (regression).

| task | input (m) | steps | readout | metric, chance |
|---|---|---|---|---|
| ``digits_padded`` | scikit-learn's 8x8 digits read pixel by pixel (1), standardized, then T padding steps (zeros, or N(0, 1) noise with ``padding="noise"``) | 64 + T | label at the last step | accuracy; the majority class |
| ``digits_repeated`` | each pixel repeated k = T/64 times (1) | T | label at the last step | accuracy; the majority class |
| ``copy`` | S = 10 symbols of K = 8 (one-hot, + blank + delimiter: 10), T blanks, the delimiter, S - 1 blanks (Arjovsky et al. 2016) | S + T + S | the S symbols at the last S steps | per-symbol accuracy; 1/K |
| ``adding`` | (value U[0, 1], marker) pairs (2); one marker in each half (Le et al. 2015) | T | sum of the two marked values | mean squared error; 1/6 (predicting 1) |

``Task.q_x`` is the per-coordinate input second moment over the long stretch the memory must bridge (0 for zero
padding, 1 for noise padding): the value the theory's time scale xi is predicted at. ``Task.q_signal`` is the
second moment while the informative input is read (1: standardized pixels); a critical rule is searched at
``max(q_x, q_signal)``, since its bound on the state's second moment must hold while the signal is written (at
q_x = 0 the fixed point is the zero state and the bound is vacuous: such a rule shut the write gate and stayed at
chance at T = 1000, benchmarks/RESULTS.md "Trainability").
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from symmft.extras import require
from symmft.errors import SymmftError


class TaskError(SymmftError):
    """An unknown task or an invalid task option; the message names the valid choices."""


#: name -> one-line description (for --help and errors)
TASKS = {
    "digits_padded": "8x8 digits pixel by pixel, then T padding steps (zeros or noise), label at the end",
    "digits_repeated": "8x8 digits pixel by pixel, each pixel repeated T/64 times, label at the end",
    "copy": "copy memory: 10 symbols of 8, T blanks, a delimiter, recall the symbols",
    "adding": "adding problem: sum of the two marked values in a sequence of T (value, marker) pairs",
}

COPY_SYMBOLS, COPY_LENGTH = 8, 10


@dataclass(frozen=True)
class Task:
    """A task with its splits (compact arrays, first axis = example) and its loss; see the module docstring."""

    name: str
    length: int  # T as given to make_task
    steps: int  # total sequence length
    input_dim: int
    classes: int  # output dimension K (1 for regression)
    regression: bool
    readout_steps: int  # R: the last R steps are read out
    q_x: float
    train: dict = field(repr=False)
    test: dict = field(repr=False)
    options: dict = field(default_factory=dict)
    q_signal: float | None = None  # None: the same as q_x

    @property
    def q_rule(self) -> float:
        """The input second moment a critical rule for this task is searched at (see the module docstring)."""
        return max(self.q_x, self.q_signal if self.q_signal is not None else self.q_x)

    @property
    def metric_name(self) -> str:
        return "mse" if self.regression else "accuracy"

    def size(self, split: str) -> int:
        """Number of examples in ``split`` ("train" or "test")."""
        return len(self._split(split)["targets"])

    def _split(self, split: str) -> dict:
        if split not in ("train", "test"):
            raise TaskError(f"split must be 'train' or 'test', got {split!r}")
        return self.train if split == "train" else self.test

    def batch(self, split: str, index, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
        """(xs, targets) of the examples ``index`` of ``split``: xs (steps, B, m); targets (R, B) class indices,
        or (R, B) values for regression."""
        data = self._split(split)
        index = np.asarray(index)
        build = _BUILDERS[self.name]
        xs = build(self, {k: v[index] for k, v in data.items()})
        targets = data["targets"][index]
        targets = targets.T if targets.ndim == 2 else targets[None, :]
        return xs.astype(dtype, copy=False), targets

    def loss(self, logits: np.ndarray, targets: np.ndarray) -> tuple[float, np.ndarray]:
        """Mean loss over readout steps and examples, and its gradient w.r.t. ``logits`` (R, B, K): softmax
        cross-entropy for classification, squared error (on logits[..., 0]) for regression."""
        n = targets.size
        if self.regression:
            diff = logits[..., 0] - targets
            return float((diff * diff).sum() / n), (2.0 / n * diff)[..., None]
        z = logits - logits.max(axis=-1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
        onehot = np.eye(self.classes, dtype=logits.dtype)[targets]
        return float(-(logp * onehot).sum() / n), (np.exp(logp) - onehot) / n

    def metric(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """Accuracy (fraction of correct argmax over readout steps and examples), or mean squared error."""
        if self.regression:
            return float(np.mean((logits[..., 0] - targets) ** 2))
        return float(np.mean(np.argmax(logits, axis=-1) == targets))

    @property
    def chance(self) -> float:
        """The metric of the best input-blind predictor fitted on the training split, on the test split: the
        majority class (classification), the mean target (regression)."""
        train, test = self.train["targets"], self.test["targets"]
        if self.regression:
            return float(np.mean((test - train.mean()) ** 2))
        counts = np.bincount(train.ravel(), minlength=self.classes)
        return float(np.mean(test == np.argmax(counts)))

    @property
    def chance_loss(self) -> float:
        """Loss of the input-blind predictor: log K (uniform) for classification, the chance MSE for regression."""
        return self.chance if self.regression else float(np.log(self.classes))


def make_task(name: str, length: int, *, seed: int = 0, padding: str = "zeros", train_size: int = 10000,
              test_size: int = 1000, test_fraction: float = 0.2) -> Task:
    """Task ``name`` (see :data:`TASKS`) at length T = ``length``. Digits: the 1797 scikit-learn digits split
    ``test_fraction`` for test by a permutation with ``seed``; ``padding`` "zeros" | "noise". Synthetic tasks:
    ``train_size`` + ``test_size`` examples drawn with ``seed``."""
    if name not in TASKS:
        raise TaskError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    lowest = 0 if name == "digits_padded" else 1  # padded digits without padding: the plain pixel stream
    if int(length) != length or length < lowest:
        raise TaskError(f"task length T must be an integer >= {lowest} for {name}, got {length!r}")
    length = int(length)
    rng = np.random.default_rng(seed)
    if name.startswith("digits"):
        return _digits(name, length, rng, padding, test_fraction)
    if padding != "zeros":
        raise TaskError(f"padding={padding!r} applies to digits_padded only")
    n = int(train_size) + int(test_size)
    if name == "copy":
        symbols = rng.integers(0, COPY_SYMBOLS, size=(n, COPY_LENGTH))
        data = {"targets": symbols}
        steps, m, k, r, q = 2 * COPY_LENGTH + length, COPY_SYMBOLS + 2, COPY_SYMBOLS, COPY_LENGTH, 1.0 / (COPY_SYMBOLS + 2)
    else:  # adding
        if length < 4:
            raise TaskError(f"the adding problem needs T >= 4 (one marker in each half), got {length}")
        values = rng.uniform(0.0, 1.0, size=(n, length))
        half = length // 2
        marks = np.stack([rng.integers(0, half, n), rng.integers(half, length, n)], axis=1)
        rows = np.arange(n)[:, None]
        data = {"values": values, "marks": marks, "targets": values[rows, marks].sum(axis=1)}
        # q_x: per-coordinate second moment of (value, marker): (E[U^2] + E[marker^2]) / 2 ~ (1/3 + 2/T) / 2
        steps, m, k, r, q = length, 2, 1, 1, (1.0 / 3.0 + 2.0 / length) / 2.0
    split = int(train_size)
    train = {key: v[:split] for key, v in data.items()}
    test = {key: v[split:] for key, v in data.items()}
    return Task(name, length, steps, m, k, name == "adding", r, q, train, test, {"seed": seed})


def _digits(name: str, length: int, rng, padding: str, test_fraction: float) -> Task:
    load_digits = require("sklearn.datasets").load_digits  # the bundled 8x8 digits: offline

    if padding not in ("zeros", "noise"):
        raise TaskError(f"padding must be 'zeros' or 'noise', got {padding!r}")
    if name == "digits_repeated":
        if padding != "zeros":
            raise TaskError("digits_repeated has no padding; use digits_padded for padding='noise'")
        if length % 64:
            raise TaskError(f"digits_repeated reads 64 pixels each repeated k times: T must be a multiple of 64, got {length}")
    if not 0 < test_fraction < 1:
        raise TaskError(f"test_fraction must lie in (0, 1), got {test_fraction}")
    digits = load_digits()
    order = rng.permutation(len(digits.target))
    n_test = int(round(test_fraction * len(order)))
    test_idx, train_idx = order[:n_test], order[n_test:]
    pixels = digits.data.astype(np.float64)
    mean, std = pixels[train_idx].mean(), pixels[train_idx].std()  # one scalar pair: pixel scale, from train only
    pixels = (pixels - mean) / std

    def part(idx):
        out = {"pixels": pixels[idx], "targets": digits.target[idx].astype(np.int64), "example": idx}
        return out

    train, test = part(train_idx), part(test_idx)
    if name == "digits_padded":
        steps, q = 64 + length, (1.0 if padding == "noise" else 0.0)
        if padding == "noise":  # fixed noise per example, drawn once
            train["noise"] = rng.standard_normal((len(train_idx), length))
            test["noise"] = rng.standard_normal((len(test_idx), length))
    else:
        steps, q = length, 1.0
    options = {"padding": padding, "pixel_mean": float(mean), "pixel_std": float(std), "test_fraction": test_fraction}
    return Task(name, length, steps, 1, 10, False, 1, q, train, test, options, q_signal=1.0)


def _build_digits_padded(task: Task, data: dict) -> np.ndarray:
    b = len(data["targets"])
    xs = np.zeros((task.steps, b, 1))
    xs[:64, :, 0] = data["pixels"].T
    if "noise" in data:
        xs[64:, :, 0] = data["noise"].T
    return xs


def _build_digits_repeated(task: Task, data: dict) -> np.ndarray:
    return np.repeat(data["pixels"].T, task.length // 64, axis=0)[:, :, None]


def _build_copy(task: Task, data: dict) -> np.ndarray:
    s, b = COPY_LENGTH, len(data["targets"])
    codes = np.full((task.steps, b), COPY_SYMBOLS)  # blank
    codes[:s] = data["targets"].T
    codes[s + task.length] = COPY_SYMBOLS + 1  # delimiter: recall starts at the next step
    return np.eye(COPY_SYMBOLS + 2)[codes]


def _build_adding(task: Task, data: dict) -> np.ndarray:
    b = len(data["targets"])
    xs = np.zeros((task.steps, b, 2))
    xs[:, :, 0] = data["values"].T
    xs[data["marks"][:, 0], np.arange(b), 1] = 1.0
    xs[data["marks"][:, 1], np.arange(b), 1] = 1.0
    return xs


_BUILDERS = {"digits_padded": _build_digits_padded, "digits_repeated": _build_digits_repeated,
             "copy": _build_copy, "adding": _build_adding}

__all__ = ["COPY_LENGTH", "COPY_SYMBOLS", "TASKS", "Task", "TaskError", "make_task"]
