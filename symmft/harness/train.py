"""Train a cell on a task from an init rule or a framework's default: the harness behind ``symmft train``.

Stage: init rules / baselines (criticality) + generated plan (codegen) + tasks -> a trained network, a metrics log
and checkpoints. Nothing upstream imports this module.

**Initialization** (:func:`initial_parameters`). An init rule (JSON from ``symmft critical``, or "critical": a rule
searched for the task's length and input statistics, cached by cell-file hash) is drawn in the project's
convention by :class:`symmft.network.simulate.Network`: W_k entries N(0, sigma2_k/m), U_k entries N(0, nu2_k/n) or
sqrt(nu2_k) Haar-orthogonal (the rule's ``weights``), biases N(mu_k, rho2_k) + beta_k log U (chrono). A named
baseline is drawn as the framework draws it (frameworks.md), with the means of
:func:`symmft.init.search.baseline_hyperparameters`: ``pytorch``/``forget1``/``chrono`` every weight
U(-1/sqrt(H), 1/sqrt(H)) and one such bias per matrix of a map (b_ih + b_hh), plus the memory gate's +1
(forget1) or b_f = log U, b_i = -log U with U ~ U[1, T-1] (chrono, T = the task's steps); ``keras`` glorot-uniform
on the fused (m, G H) input kernel, an orthogonal fused (H, R H) recurrent kernel (R recurrent matrices), zero
biases and the LSTM's unit forget bias. The readout (K x n) is U(-1/sqrt(n), 1/sqrt(n)) with zero bias for every
init, from its own seed stream.

**Loop** (:func:`train`). Each step: a minibatch (a permutation of the training split per epoch, seeded by
(seed, epoch), so a step's batch is a function of the step number alone), the plan's forward, the readout at the
task's last R steps, the task loss, the readout's gradient, the plan's backward (BPTT), gradient-norm clipping
(the global norm over all parameters, scaled to ``clip`` when larger, as torch.nn.utils.clip_grad_norm_), one
Adam step (Kingma & Ba, bias-corrected, eps outside the square root: torch.optim.Adam's update). A checkpoint
(npz: parameters, Adam moments, step, configuration) every ``checkpoint_every`` steps and at the end; training
into a directory holding a checkpoint of the same configuration resumes from it and continues bit-identically.
``metrics.jsonl`` gets one line per step (step, loss, accuracy or mse, grad_norm, time) and one per evaluation
(``"split": "test"``).
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from symmft import cache
from symmft.backend import BACKENDS, get_xp, to_numpy
from symmft.cell import params as params_mod
from symmft.cell.graph import Cell
from symmft.cell.trace import load_cell
from symmft.init.search import (BASELINES, Criteria, InfeasibleError, baseline_hyperparameters, evaluate_points,
                                 find_critical, gate_roles, read_rule)
from symmft.errors import SymmftError
from symmft.serialize import jsonable
from symmft.network.simulate import Network
from symmft.harness.tasks import Task, make_task
from symmft.progress import progress as show_progress

INITS = ("critical", *BASELINES)
CHECKPOINT, METRICS, RESULT = "checkpoint.npz", "metrics.jsonl", "result.json"


class TrainingError(SymmftError):
    """Invalid training options, or a checkpoint that does not belong to this run."""


# ---------------------------------------------------------------- initialization


def critical_rule(cell: Cell, length: int, q_x: float, progress: bool = False) -> dict:
    """The init rule ``find_critical`` gives for ``cell``, sequence length T and input second moment q_x, cached
    as JSON under $SYMMFT_CACHE (default ~/.cache/symmft) by cell-file hash, T, q_x and the default criteria
    (a rule cached under other criteria is searched again)."""
    criteria = hashlib.sha256(json.dumps(Criteria(length).thresholds(), sort_keys=True).encode()).hexdigest()[:8]
    path = cache.directory("rules") / f"{cell.name}_{cell.file_hash[:12]}_T{length}_qx{q_x:g}_{criteria}.json"
    if path.exists():
        return read_rule(path)
    try:
        rule = find_critical(cell, length, fixed={"q_x": q_x}, progress=progress)
    except InfeasibleError as e:  # its advice names critical's options (--free, --bound): say how to use them here
        raise InfeasibleError(
            f"--init critical searches only the default free set and bounds, and found no rule: {e} To widen the "
            f"search, run it yourself: symmft critical {cell.path} --length {length} --fix q_x={q_x:g} [--free "
            f"NAME ...] [--bound NAME=LO:HI ...] -o RULE.json, then train with --init RULE.json") from None
    rule.write_rule(path)
    return read_rule(path)


def resolve_init(cell: Cell, init: str | dict, task: Task, width: int, progress: bool = False) -> dict:
    """What ``init`` means for this cell and task: ``{"name", "kind" ("rule" | "framework"), "hyperparameters",
    "weights", "notes"}``. ``init`` is a rule dict, a rule file path, "critical" or a baseline name."""
    if isinstance(init, dict):
        rule, name = init, "rule"
    elif init == "critical":
        rule, name = critical_rule(cell, task.steps, task.q_rule, progress), "critical"
    elif init in BASELINES:
        h, notes = baseline_hyperparameters(cell, init, task.steps, width, task.input_dim)
        return {"name": init, "kind": "framework", "hyperparameters": params_mod.resolve(cell, {**h, "q_x": task.q_x}),
                "weights": "keras" if init == "keras" else "uniform", "notes": notes}
    elif str(init).endswith(".json") or Path(str(init)).exists():
        rule, name = read_rule(init), Path(str(init)).stem
    else:
        raise TrainingError(f"unknown init {init!r}: give an init rule (RULE.json from symmft critical), "
                            f"'critical', or one of {', '.join(BASELINES)}")
    if rule["cell_file_hash"] != cell.file_hash:
        raise TrainingError(f"init rule for cell {rule['cell']!r} (file hash {rule['cell_file_hash'][:12]}) does not "
                            f"match cell {cell.name!r} ({cell.file_hash[:12]}); make one with symmft critical {cell.name}")
    notes = []
    q = rule["hyperparameters"].get("q_x", 1.0)
    if abs(q - task.q_x) > 1e-9:
        notes.append(f"the rule assumes inputs with q_x = {q:g}; this task's long stretch has q_x = {task.q_x:g}")
    hyper = {k: float(v) for k, v in rule["hyperparameters"].items()}
    hyper["q_x"] = task.q_x  # predictions for this task's inputs; the draw does not depend on q_x
    return {"name": name, "kind": "rule", "hyperparameters": hyper, "weights": rule["weights"], "notes": notes,
            "rule_length": rule["length"]}


def initial_parameters(cell: Cell, init: dict, width: int, input_dim: int, length: int, seed: int) -> dict:
    """One draw of the cell's parameters (float64 numpy, keys "map.vector" (out, in) and "map.bias" (n,)) for the
    resolved ``init`` (:func:`resolve_init`) at width H, input dimension m; ``length`` T sets chrono's range."""
    if init["kind"] == "rule":
        net = Network(cell, init["hyperparameters"], width=width, input_dim=input_dim, weights=init["weights"],
                      rng=seed)
        out = {f"{k}.{v}": np.array(M) for (k, v), M in net.matrices.items()}
        out.update({f"{k}.bias": np.array(b[:, 0]) for k, b in net.biases.items()})
        return out
    return _framework_draw(cell, init["name"], init["hyperparameters"], width, input_dim, length,
                           np.random.default_rng(seed))


def _framework_draw(cell: Cell, name: str, hyper: dict, H: int, m: int, length: int, rng) -> dict:
    out: dict[str, np.ndarray] = {}
    if name == "keras":  # glorot_uniform fused (m, G H) kernel; orthogonal fused (H, R H) recurrent kernel
        fed = [(a.name, i) for a in cell.affines for i in a.inputs if i.vector == "x"]
        rec = [(a.name, i) for a in cell.affines for i in a.inputs if i.vector != "x"]
        limit = math.sqrt(6.0 / (m + len(fed) * H))
        kernel = rng.uniform(-limit, limit, (m, len(fed) * H))
        for j, (k, i) in enumerate(fed):
            out[f"{k}.x"] = kernel[:, j * H:(j + 1) * H].T.copy()
        if rec:
            # Keras Orthogonal on (H, R H): QR of an (R H, H) Gaussian, sign-fixed, transposed: orthonormal rows
            q, r = np.linalg.qr(rng.standard_normal((len(rec) * H, H)))
            recurrent = (q * np.sign(np.diag(r))).T
            for j, (k, i) in enumerate(rec):
                out[f"{k}.{i.vector}"] = recurrent[:, j * H:(j + 1) * H].T.copy()
        for a in cell.affines:
            out[f"{a.name}.bias"] = np.full(H, hyper[a.mean])
        return out
    bound = 1.0 / math.sqrt(H)  # PyTorch: every weight and bias U(-1/sqrt(H), 1/sqrt(H))
    for a in cell.affines:
        for i in a.inputs:
            out[f"{a.name}.{i.vector}"] = rng.uniform(-bound, bound, (H, m if i.vector == "x" else H))
        out[f"{a.name}.bias"] = hyper[a.mean] + rng.uniform(-bound, bound, (len(a.inputs), H)).sum(axis=0)
    if name == "chrono":
        if length < 3:
            raise TrainingError("chrono needs T >= 3 (b_f ~ log U[1, T-1])")
        log_u = np.log(rng.uniform(1.0, length - 1.0, H))
        roles = gate_roles(cell)
        for k, s in roles["memory"].items():  # the whole bias replaced, as Tallec & Ollivier do
            out[f"{k}.bias"] = s * log_u
        for k, s in roles["write"].items():
            out[f"{k}.bias"] = -s * log_u
    return out


def predicted(cell: Cell, init: dict, length: int) -> dict:
    """Theory at the init's hyperparameters and the task's q_x: xi, m1, Q_s, status (weights: the rule's own; for
    framework draws the distribution their blocks are spectrally closest to, as in criticality's baseline table)."""
    if init["kind"] == "rule":
        weights = init["weights"]
    else:  # Keras with one fused block (a vanilla RNN) is truly orthogonal (criticality's baseline table)
        fed = sum(any(i.vector == "x" for i in a.inputs) for a in cell.affines)
        weights = "orthogonal" if init["name"] == "keras" and fed == 1 else "gaussian"
    ev = evaluate_points(cell, init["hyperparameters"], weights=weights, length=length)
    return {k: float(v[0]) for k, v in ev.items()}


# ---------------------------------------------------------------- optimizer


class Adam:
    """Adam (Kingma & Ba 2015) with torch.optim.Adam's update: m, v moving averages, bias-corrected,
    p -= lr m_hat / (sqrt(v_hat) + eps). State: ``m``, ``v`` (dicts like the parameters) and ``step``."""

    def __init__(self, params: dict, lr: float, betas=(0.9, 0.999), eps: float = 1e-8, xp=np):
        self.lr, self.betas, self.eps, self.xp, self.step = lr, betas, eps, xp, 0
        self.m = {k: xp.zeros_like(v) for k, v in params.items()}
        self.v = {k: xp.zeros_like(v) for k, v in params.items()}

    def update(self, params: dict, grads: dict) -> None:
        """One step in place."""
        b1, b2 = self.betas
        self.step += 1
        c1, c2 = 1 - b1 ** self.step, 1 - b2 ** self.step
        for k, g in grads.items():
            self.m[k] *= b1
            self.m[k] += (1 - b1) * g
            self.v[k] *= b2
            self.v[k] += (1 - b2) * g * g
            params[k] -= (self.lr / c1) * self.m[k] / (self.xp.sqrt(self.v[k]) / math.sqrt(c2) + self.eps)


def clip_gradients(grads: dict, max_norm: float, xp=np) -> float:
    """Scale ``grads`` in place so their global 2-norm is at most ``max_norm`` (scale max_norm / (norm + 1e-6), as
    torch.nn.utils.clip_grad_norm_); returns the norm before clipping. ``max_norm`` <= 0 or inf: no clipping."""
    norm = math.sqrt(sum(float(xp.sum(g * g)) for g in grads.values()))
    if 0 < max_norm < math.inf and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for g in grads.values():
            g *= scale
    return norm


# ---------------------------------------------------------------- model


class Model:
    """A cell's generated plan plus a linear readout at the task's last R steps."""

    def __init__(self, cell: Cell, task: Task, backend: str = "numpy", dtype: str = "float32"):
        from symmft.harness.plan import load_plan  # the generated forward/backward (BPTT) step

        self.task, self.plan = task, load_plan(cell, xp=backend, dtype=dtype)
        self.xp = get_xp(backend)
        self.dtype = np.dtype(dtype)

    def loss_and_grads(self, params: dict, xs, targets) -> tuple[float, float, dict]:
        """(loss, metric, gradients) on one batch: xs (steps, B, m), targets (R, B)."""
        xp, R = self.xp, self.task.readout_steps
        cell_params = {k: v for k, v in params.items() if not k.startswith("readout.")}
        outputs, tape = self.plan.forward(cell_params, xp.asarray(xs, dtype=self.dtype))
        h = outputs[-R:]
        logits = h @ params["readout.weight"].T + params["readout.bias"]
        logits_np = to_numpy(logits)
        loss, d_logits = self.task.loss(logits_np, targets)
        metric = self.task.metric(logits_np, targets)
        d_logits = xp.asarray(d_logits, dtype=self.dtype)
        d_readout = {"readout.weight": xp.einsum("rbk,rbn->kn", d_logits, h), "readout.bias": d_logits.sum(axis=(0, 1))}
        d_out = xp.zeros_like(outputs)
        d_out[-R:] = d_logits @ params["readout.weight"]
        grads = self.plan.backward(cell_params, tape, d_out)  # may overwrite the tape (outputs, h): read it before
        return loss, metric, {**grads, **d_readout}

    def evaluate(self, params: dict, split: str = "test", batch: int = 256) -> dict:
        """Mean loss and metric over a whole split (batches of ``batch``)."""
        n, total_loss, total_metric = self.task.size(split), 0.0, 0.0
        R = self.task.readout_steps
        cell_params = {k: v for k, v in params.items() if not k.startswith("readout.")}
        for lo in range(0, n, batch):
            idx = np.arange(lo, min(n, lo + batch))
            xs, targets = self.task.batch(split, idx)
            outputs, _ = self.plan.forward(cell_params, self.xp.asarray(xs, dtype=self.dtype))
            logits = to_numpy(outputs[-R:] @ params["readout.weight"].T + params["readout.bias"])
            total_loss += self.task.loss(logits, targets)[0] * len(idx)
            total_metric += self.task.metric(logits, targets) * len(idx)
        return {"loss": total_loss / n, self.task.metric_name: total_metric / n}


# ---------------------------------------------------------------- the loop


@dataclass
class TrainConfig:
    """Everything that determines a run (checkpoints are only resumed under the same configuration)."""

    cell: str
    cell_file_hash: str
    init: str
    task: str
    length: int
    width: int = 64
    steps: int = 1000
    lr: float = 1e-3
    batch: int = 64
    clip: float = 1.0
    seed: int = 0
    padding: str = "zeros"
    dtype: str = "float32"
    backend: str = "numpy"

    def digest(self) -> str:
        """Identifies the trajectory: everything but ``steps`` (a step's batch depends on its number alone, so a
        longer run continues a shorter one's checkpoint)."""
        d = {k: v for k, v in asdict(self).items() if k != "steps"}
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class TrainResult:
    """A finished run: its configuration, the init (hyperparameters, theory's prediction), the final test loss
    and metric, the task's chance level, timings, where its files are."""

    config: dict
    init: dict
    predicted: dict
    test: dict
    chance: float
    chance_loss: float
    metric: str
    final_train_loss: float
    seconds: float
    out_dir: str | None
    resumed_from: int = 0
    history: list = field(default_factory=list, repr=False)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("history")
        return jsonable(d)


def train(cell: Cell | str, init: str | dict, task: str | Task, length: int | None = None, *, width: int = 64,
          steps: int = 1000, lr: float = 1e-3, batch: int = 64, clip: float = 1.0, seed: int = 0,
          padding: str = "zeros", out_dir: str | Path | None = None, backend: str = "numpy",
          dtype: str = "float32", checkpoint_every: int = 100, eval_every: int = 0, progress: bool = False,
          predict: bool = True) -> TrainResult:
    """Train ``cell`` from ``init`` (a rule file/dict, "critical", or a baseline name) on ``task`` (a name with
    ``length`` T, or a :class:`Task`) for ``steps`` Adam steps of ``batch`` examples at learning rate ``lr``, with
    global gradient-norm clipping at ``clip``. With ``out_dir``: metrics.jsonl, checkpoint.npz (every
    ``checkpoint_every`` steps; resumed when present), result.json. ``eval_every`` > 0 also evaluates the test split
    every that many steps. ``predict`` adds the theory's xi, m1 for the init (a few seconds)."""
    start = time.perf_counter()
    cell = cell if isinstance(cell, Cell) else load_cell(cell)
    if isinstance(task, str):
        if length is None:
            raise TrainingError("give the task length T (--length)")
        task = make_task(task, length, seed=0, padding=padding)
    for name, value, lo in (("width", width, 1), ("steps", steps, 0), ("batch", batch, 1), ("checkpoint_every", checkpoint_every, 1)):
        if int(value) != value or value < lo:
            raise TrainingError(f"{name} must be an integer >= {lo}, got {value!r}")
    if not (lr > 0 and math.isfinite(lr)):
        raise TrainingError(f"learning rate must be positive and finite, got {lr!r}")
    if backend not in BACKENDS or dtype not in ("float32", "float64"):
        raise TrainingError(f"backend must be numpy|cupy and dtype float32|float64, got {backend!r}, {dtype!r}")
    info = resolve_init(cell, init, task, width, progress)
    init_label = init if isinstance(init, str) else "rule"
    config = TrainConfig(cell.name, cell.file_hash, str(init_label), task.name, task.length, width, steps, lr, batch,
                         clip, seed, task.options.get("padding", "zeros"), dtype, backend)
    model = Model(cell, task, backend, dtype)
    xp = model.xp
    # independent streams: parameters, readout, minibatch order
    p_seed, r_seed, b_seed = (int(s.generate_state(1)[0]) for s in np.random.SeedSequence(seed).spawn(3))
    params = initial_parameters(cell, info, width, task.input_dim, task.steps, p_seed)
    bound = 1.0 / math.sqrt(width)
    rr = np.random.default_rng(r_seed)
    params["readout.weight"] = rr.uniform(-bound, bound, (task.classes, width))
    params["readout.bias"] = np.zeros(task.classes)
    params = {k: xp.asarray(v, dtype=model.dtype) for k, v in params.items()}
    opt = Adam(params, lr, xp=xp)
    out = Path(out_dir) if out_dir is not None else None
    first = 0
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        first = _resume(out, config, params, opt, xp)
    log = open(out / METRICS, "a") if out is not None else None
    history, loss = [], float("nan")
    n_train = task.size("train")
    per_epoch = max(1, n_train // batch)
    bar = None
    if progress:
        bar = show_progress(steps, f"train {cell.name} {info['name']} {task.name} T={task.length}", "step",
                            initial=first)
    try:
        for step in range(first, steps):
            epoch, k = divmod(step, per_epoch)
            order = np.random.default_rng([b_seed, epoch]).permutation(n_train)
            xs, targets = task.batch("train", order[k * batch:(k + 1) * batch])
            loss, metric, grads = model.loss_and_grads(params, xs, targets)
            norm = clip_gradients(grads, clip, xp)
            opt.update(params, grads)
            row = {"step": step + 1, "loss": loss, task.metric_name: metric, "grad_norm": norm,
                   "time": round(time.perf_counter() - start, 3)}
            history.append(row)
            if log:
                log.write(json.dumps(jsonable(row)) + "\n")
            if eval_every and (step + 1) % eval_every == 0 and step + 1 < steps:
                _log_eval(log, history, step + 1, model.evaluate(params), start)
            if out is not None and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
                log.flush()
                _save(out, config, params, opt)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.3g}", **{task.metric_name[:3]: f"{metric:.3g}"})
        test = model.evaluate(params)
        _log_eval(log, history, steps, {**test, "final": True}, start)
    finally:
        if bar is not None:
            bar.close()
        if log:
            log.close()
    result = TrainResult(asdict(config), {k: v for k, v in info.items()}, predicted(cell, info, task.steps) if predict else {},
                         test, task.chance, task.chance_loss, task.metric_name, loss, time.perf_counter() - start,
                         str(out) if out else None, first, history)
    if out is not None:
        (out / RESULT).write_text(json.dumps(result.to_json(), indent=1) + "\n")
    return result


def _log_eval(log, history, step, values, start) -> None:
    row = {"step": step, "split": "test", **values, "time": round(time.perf_counter() - start, 3)}
    history.append(row)
    if log:
        log.write(json.dumps(jsonable(row)) + "\n")


def _save(out: Path, config: TrainConfig, params: dict, opt: Adam) -> None:
    arrays = {f"param/{k}": to_numpy(v) for k, v in params.items()}
    arrays.update({f"m/{k}": to_numpy(v) for k, v in opt.m.items()})
    arrays.update({f"v/{k}": to_numpy(v) for k, v in opt.v.items()})
    tmp = out / (CHECKPOINT + ".tmp.npz")
    np.savez(tmp, step=opt.step, config=json.dumps(asdict(config)), digest=config.digest(), **arrays)
    tmp.replace(out / CHECKPOINT)  # atomic: an interrupted save leaves the previous checkpoint


def _resume(out: Path, config: TrainConfig, params: dict, opt: Adam, xp) -> int:
    """Load ``out``'s checkpoint into params/opt (in place) if there is one; returns the step to continue from.
    The metrics log is cut back to that step (and loses the previous final evaluation), so the resumed log reads
    as one uninterrupted run."""
    path = out / CHECKPOINT
    if not path.exists():
        (out / METRICS).unlink(missing_ok=True)
        return 0
    with np.load(path) as z:
        if str(z["digest"]) != config.digest():
            raise TrainingError(f"{path} belongs to a run with another configuration ({z['config']}); "
                                "use another output directory or delete the checkpoint")
        for k in params:
            params[k][...] = xp.asarray(z[f"param/{k}"])
            opt.m[k][...] = xp.asarray(z[f"m/{k}"])
            opt.v[k][...] = xp.asarray(z[f"v/{k}"])
        opt.step = int(z["step"])
    metrics = out / METRICS
    if metrics.exists():
        rows = [json.loads(ln) for ln in metrics.read_text().splitlines() if ln]
        keep = [json.dumps(r) for r in rows if r["step"] <= opt.step and not r.get("final")]
        metrics.write_text("".join(ln + "\n" for ln in keep))
    return opt.step


__all__ = ["Adam", "INITS", "Model", "TrainConfig", "TrainResult", "TrainingError", "clip_gradients",
           "critical_rule", "initial_parameters", "predicted", "resolve_init", "train"]
