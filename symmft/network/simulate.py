"""The real finite-width random network: run a cell file's own ``step`` on arrays and measure state moments.

What: draw the random network a cell's hyperparameters describe (docs/theory.md §1) at a finite width n, feed it two
input sequences a and b with correlation c_x, and record per state, at every step t = 0..T, the mean, the second
moment Q = <s^2>, the cross moment Q^ab = <s^a s^b> and the correlation c = Q^ab / Q.

How: :class:`Network` holds one draw of every matrix and bias; its numeric ``ops`` namespace gives
``ops.affine(name, *vectors, **named)`` = sum_v M_v v + b (one matrix per input vector, matched to the cell's
``AffineMap.inputs`` by order: positional, then keyword) and elementwise ``sigmoid``/``tanh``/``erf``. Columns
are sequences: the first ``batch`` columns are independent a-sequences, the next ``batch`` their b partners, all
sharing the network, so one matrix product advances every pair. ``tied=True`` is the real network (weights drawn
once); ``tied=False`` redraws every matrix and bias each step -- the untied (annealed) approximation the paper's
mean-field maps make exact (docs/theory.md §2, §5). An untied matrix is used once, so only its product with the
current columns is sampled, from the columns' gram matrix: exact in law and ~100x cheaper at width 2000.

Independence: this module imports only ``cell``, ``params``, ``backend`` and ``errors`` -- never the mean-field
code -- so a theory-vs-simulation test compares two computations that share nothing but the cell file.
"""

from __future__ import annotations

import math
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from symmft import backend
from symmft.cell.graph import AffineInput, AffineMap, Cell
from symmft.cell.trace import load_cell
from symmft.errors import CellDefinitionError, HyperparameterError, integer_option
from symmft.cell.params import chrono_maps, resolve

WEIGHTS = ("gaussian", "orthogonal")


# ---------------------------------------------------------------- the network


class Network:
    """The random network of ``cell`` at width n; :meth:`step` advances a batch of sequences one step.

    Tied (default, the real network): one draw, kept. ``matrices[map, vector]`` is n x m for the input ``"x"``
    (entries N(0, sigma2_k/m)) and n x n for a state-derived vector (entries N(0, nu2/n), or sqrt(nu2) times a
    Haar-orthogonal matrix with ``weights="orthogonal"``); ``biases[map]`` is n x 1, entries N(mu_k, rho2_k).

    ``tied=False`` (annealed): every call of :meth:`step` uses fresh matrices and biases. A matrix used once on
    the k columns V (d x k) is never formed: its product has exactly the law of M V -- Gaussian M: rows iid
    N(0, (s/d) V'V), i.e. Z sqrt((s/d) V'V); orthogonal: a Haar n x k frame times sqrt(nu2 V'V) (rotation
    invariance) -- at cost n k^2 instead of n d k. With k >= d the matrix is drawn instead.

    ``rng`` is a seed or an ``xp.random`` Generator; arrays live on ``xp`` (numpy, cupy, or their names).
    """

    def __init__(self, cell: Cell | str | Path, hyperparameters: Mapping[str, Any] | None = None, *,
                 width: int = 1000, input_dim: int | None = None, weights: str = "gaussian", tied: bool = True,
                 rng: Any = 0, xp: Any = None):
        self.cell = cell if isinstance(cell, Cell) else load_cell(cell)
        self.hyperparameters = _scalar_hyperparameters(self.cell, hyperparameters)
        self.width = integer_option("width", width)
        self.input_dim = self.width if input_dim is None else integer_option("input_dim", input_dim)
        if weights not in WEIGHTS:
            raise HyperparameterError(f"option weights must be one of {', '.join(WEIGHTS)}, got {weights!r}")
        if not isinstance(tied, bool):
            raise HyperparameterError(f"option tied must be True or False, got {tied!r}")
        self.weights, self.tied, self.xp = weights, tied, _xp(xp)
        if tied:
            self._check_memory()
        self.rng = self.xp.random.default_rng(int(rng)) if isinstance(rng, (int, np.integer)) else rng
        self.ops = _NumericOps(self)
        self.matrices: dict[tuple[str, str], Any] = {}
        self.biases: dict[str, Any] = {}
        self._chrono = self._chrono_bias()
        if tied:
            for amap in self.cell.affines:  # fixed order, so a seed fixes every draw
                for inp in amap.inputs:
                    self.matrices[amap.name, inp.vector] = self._matrix(inp.hyperparameter)
                self.biases[amap.name] = self._bias(amap)

    def _check_memory(self) -> None:
        """Refuse, before drawing anything, a tied network whose matrices cannot fit in the device's memory."""
        n, m = self.width, self.input_dim
        entries = sum(n * (m if _is_input(i.hyperparameter) else n) for a in self.cell.affines for i in a.inputs)
        need = 8 * entries * (2 if self.weights == "orthogonal" else 1)  # float64; a QR needs a second n x n
        have = backend.memory_bytes(self.xp)
        if have is not None and need > have / 2:
            raise HyperparameterError(
                f"width {n}: the tied network's {sum(len(a.inputs) for a in self.cell.affines)} matrices need "
                f"{need / 2**30:.3g} GiB (float64), more than half of this machine's {have / 2**30:.3g} GiB; use "
                f"the untied network (it samples only each matrix's product with the current states) or a width "
                f"below {int(n * math.sqrt(have / 2 / need))}")

    def step(self, x: Any, states: Mapping[str, Any]) -> dict[str, Any]:
        """Advance every column once: ``x`` is m x k (k sequences), each state n x k; returns the new states."""
        if not self.tied:
            self._chrono = self._chrono_bias()  # redrawn with the biases, shared by this step's maps
        out = self.cell.step(x, *(states[s] for s in self.cell.states), self.ops)
        out = out if isinstance(out, tuple) else (out,)
        shape = (self.width, x.shape[1])
        return {s: self.xp.broadcast_to(v, shape) for s, v in zip(self.cell.states, out)}

    def _matrix(self, hyperparameter: str) -> Any:
        n, scale, rng = self.width, self.hyperparameters[hyperparameter], self.rng
        if _is_input(hyperparameter):
            return math.sqrt(scale / self.input_dim) * rng.standard_normal((n, self.input_dim))
        if self.weights == "orthogonal":
            return math.sqrt(scale) * _haar_frame(self.xp, rng, n, n)
        return math.sqrt(scale / n) * rng.standard_normal((n, n))

    def _bias(self, amap: AffineMap) -> Any:
        hp = self.hyperparameters
        bias = hp[amap.mean] + math.sqrt(hp[amap.bias_variance]) * self.rng.standard_normal((self.width, 1))
        beta = hp.get(f"beta_{amap.name}", 0.0)
        return bias + beta * self._chrono if beta else bias

    def _chrono_bias(self) -> Any:
        """Per unit L = log U, U ~ Uniform[1, T-1] (Tallec & Ollivier's chrono init), shared by every map."""
        T = self.hyperparameters.get("chrono_length", 0.0)
        if T < 3:
            return None
        return self.xp.log(self.rng.uniform(1.0, T - 1.0, (self.width, 1)))

    def _product(self, amap: AffineMap, inp: AffineInput, v: Any) -> Any:
        """M v for the matrix of ``inp``: the kept one (tied) or a fresh one's product, exact in law (untied)."""
        if self.tied:
            return self.matrices[amap.name, inp.vector] @ v
        d, k = v.shape
        if k >= d:
            return self._matrix(inp.hyperparameter) @ v
        scale = self.hyperparameters[inp.hyperparameter]
        orthogonal = self.weights == "orthogonal" and not _is_input(inp.hyperparameter)
        gram = (scale if orthogonal else scale / d) * (v.T @ v)
        w, q = self.xp.linalg.eigh(gram)
        root = (q * self.xp.sqrt(self.xp.maximum(w, 0.0))) @ q.T  # symmetric square root of the gram
        n, rng = self.width, self.rng
        frame = _haar_frame(self.xp, rng, n, k) if orthogonal else rng.standard_normal((n, k))
        return frame @ root


class _NumericOps:
    """The numeric ``ops`` a cell file's ``step`` runs against (the tracer in cell.py is the symbolic twin)."""

    def __init__(self, network: Network):
        self._net = network
        self._maps = {a.name: a for a in network.cell.affines}
        self.tanh = network.xp.tanh
        self.erf = _erf(network.xp)

    def affine(self, name: str, *vectors: Any, **named: Any) -> Any:
        amap, net = self._maps.get(name), self._net
        values = (*vectors, *named.values())
        if amap is None or len(values) != len(amap.inputs):
            raise CellDefinitionError(f"{net.cell.path}: ops.affine({name!r}) differs from the traced cell "
                                      "(the step function must call the same maps with the same vectors every time)")
        u = net.biases[name] if net.tied else net._bias(amap)
        for inp, v in zip(amap.inputs, values):
            u = u + net._product(amap, inp, v)
        return u

    def sigmoid(self, u: Any) -> Any:
        return 0.5 * (1.0 + self._net.xp.tanh(0.5 * u))  # = 1/(1+e^-u), without overflow for large |u|


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class StateTrajectory:
    """Moments of one state over t = 0..T, each averaged over units and sequence pairs.

    ``mean`` = <s> (over a and b), ``second_moment`` Q = <s^2> (over a and b), ``cross_moment`` Q^ab =
    <s^a s^b>, ``correlation`` c = Q^ab / Q (NaN where Q = 0, e.g. the zero initial state).
    """

    mean: np.ndarray
    second_moment: np.ndarray
    cross_moment: np.ndarray
    correlation: np.ndarray

    @property
    def final(self) -> dict[str, float]:
        """The four moments at the last step."""
        return {k: float(getattr(self, k)[-1]) for k in ("mean", "second_moment", "cross_moment", "correlation")}


@dataclass(frozen=True)
class SimulationResult:
    """What :func:`simulate` measured, with everything needed to reproduce it."""

    cell: str
    hyperparameters: dict[str, float]
    width: int
    input_dim: int
    steps: int
    batch: int
    tied: bool
    weights: str
    seed: int
    states: dict[str, StateTrajectory]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (plain lists and floats; NaN becomes None)."""
        def clean(values):
            return [None if math.isnan(v) else float(v) for v in values]

        states = {}
        for name, tr in self.states.items():
            states[name] = {k: clean(getattr(tr, k)) for k in ("mean", "second_moment", "cross_moment", "correlation")}
            states[name]["final"] = {k: (None if math.isnan(v) else v) for k, v in tr.final.items()}
        return {"cell": self.cell, "hyperparameters": dict(self.hyperparameters), "width": self.width,
                "input_dim": self.input_dim, "steps": self.steps, "batch": self.batch, "tied": self.tied,
                "weights": self.weights, "seed": self.seed, "states": states}


# ---------------------------------------------------------------- simulation


def simulate(cell: Cell | str | Path, hyperparameters: Mapping[str, Any] | None = None, *, width: int = 1000,
             steps: int = 100, tied: bool = False, weights: str = "gaussian", seed: int = 0, batch: int = 1,
             input_dim: int | None = None, initial: Mapping[str, tuple] | None = None,
             xp: Any = None) -> SimulationResult:
    """Run ``batch`` pairs of input sequences (a, b) through one random network of ``cell`` for ``steps`` steps.

    hyperparameters: scalar values by name (``params.resolve`` fills defaults); q_x, c_x set the inputs
        x^a = sqrt(q_x) z1, x^b = sqrt(q_x)(c_x z1 + sqrt(1 - c_x^2) z2), fresh z ~ N(0, I_m) every step.
    width: n, units per state; input_dim: m (default n); weights: "gaussian" | "orthogonal" (recurrent only).
    tied: True reuses one draw of weights and biases (the real network); False redraws them every step
        (the untied approximation; see :class:`Network`). With one seed both see the same inputs.
    initial: per state, either explicit ``(a, b)`` arrays of shape (n,) or (n, batch), or numbers
        ``(second_moment, correlation)`` to draw zero-mean Gaussian states with that Q and a/b correlation
        (needed to watch correlations decay when c_x = 1). Unnamed states start at zero.
    xp: numpy (default), cupy, or their names. Deterministic given ``seed`` and the backend.
    """
    cell = cell if isinstance(cell, Cell) else load_cell(cell)
    steps = integer_option("steps", steps, minimum=0)
    batch = integer_option("batch", batch)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
        raise HyperparameterError(f"option seed must be an integer, got {seed!r}")
    xp = _xp(xp)
    # Independent streams for weights, initial states and inputs: runs differing only in tied/weights/width
    # options but not in seed see the same initial states and inputs where the shapes agree.
    weight_rng, initial_rng, input_rng = (xp.random.default_rng(int(s.generate_state(1, np.uint32)[0]))
                                          for s in np.random.SeedSequence(int(seed)).spawn(3))
    net = Network(cell, hyperparameters, width=width, input_dim=input_dim, weights=weights, tied=tied,
                  rng=weight_rng, xp=xp)
    hp, n, m = net.hyperparameters, net.width, net.input_dim
    states = _initial_states(cell, initial, n, batch, xp, initial_rng)
    moments: dict[str, list[tuple[float, float, float]]] = {s: [] for s in cell.states}
    q_x, c_x = hp["q_x"], hp["c_x"]
    for t in range(steps + 1):
        if t > 0:
            z1, z2 = input_rng.standard_normal((m, batch)), input_rng.standard_normal((m, batch))
            x = math.sqrt(q_x) * xp.concatenate([z1, c_x * z1 + math.sqrt(max(1.0 - c_x * c_x, 0.0)) * z2], axis=1)
            states = net.step(x, states)
        for s, v in states.items():
            a, b = v[:, :batch], v[:, batch:]
            moments[s].append(tuple(float(backend.to_numpy(w)) for w in (v.mean(), (v * v).mean(), (a * b).mean())))
    trajectories = {}
    for s, rows in moments.items():
        mean, second, cross = (_frozen(col) for col in np.array(rows).T)
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = _frozen(np.where(second > 0, cross / np.where(second > 0, second, 1.0), np.nan))
        trajectories[s] = StateTrajectory(mean, second, cross, corr)
    return SimulationResult(cell=cell.name, hyperparameters=dict(hp), width=n, input_dim=m, steps=steps,
                            batch=batch, tied=tied, weights=weights, seed=int(seed), states=trajectories)


# ---------------------------------------------------------------- helpers


def _initial_states(cell: Cell, initial: Mapping[str, tuple] | None, n: int, batch: int, xp, rng) -> dict[str, Any]:
    initial = dict(initial or {})
    unknown = set(initial) - set(cell.states)
    if unknown:
        raise HyperparameterError(f"option initial names {sorted(unknown)}, which are not states of cell "
                                  f"{cell.name!r} (its states: {', '.join(cell.states)})")
    states = {}
    for s in cell.states:
        if s not in initial:
            states[s] = xp.zeros((n, 2 * batch))
            continue
        value = initial[s]
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise HyperparameterError(f"option initial[{s!r}] must be a pair: (a, b) arrays or "
                                      f"(second_moment, correlation) numbers, got {value!r}")
        if all(np.ndim(v) == 0 for v in value):
            q, c = float(value[0]), float(value[1])
            if not (q >= 0 and abs(c) <= 1):
                raise HyperparameterError(f"option initial[{s!r}] = (second_moment, correlation) needs "
                                          f"second_moment >= 0 and |correlation| <= 1, got {value!r}")
            z1, z2 = rng.standard_normal((n, batch)), rng.standard_normal((n, batch))
            states[s] = math.sqrt(q) * xp.concatenate([z1, c * z1 + math.sqrt(1.0 - c * c) * z2], axis=1)
            continue
        pair = []
        for label, v in zip("ab", value):
            v = xp.asarray(v, dtype=float)
            v = v[:, None] if v.ndim == 1 else v
            if v.ndim != 2 or v.shape[0] != n or v.shape[1] not in (1, batch):
                raise HyperparameterError(f"option initial[{s!r}]: the {label} array must have shape ({n},) or "
                                          f"({n}, {batch}) (width, batch), got {tuple(v.shape)}")
            pair.append(xp.broadcast_to(v, (n, batch)))
        states[s] = xp.concatenate(pair, axis=1)
    return states


def _scalar_hyperparameters(cell: Cell, values: Mapping[str, Any] | None) -> dict[str, float]:
    hp = resolve(cell, values)
    for name, v in hp.items():
        if np.ndim(v) != 0:
            raise HyperparameterError(f"hyperparameter {name}: a simulation takes one value, got an array of shape "
                                      f"{np.shape(v)}; loop over the grid and simulate each point")
    chrono_maps(cell, hp)  # beta_k without a chrono_length is an error
    return {k: float(v) for k, v in hp.items()}


def _is_input(hyperparameter: str) -> bool:
    return hyperparameter.startswith("sigma2_")  # cell.py names input-matrix scales sigma2_k, all others nu2_*


def _haar_frame(xp, rng, n: int, k: int):
    """n x k matrix with Haar-distributed orthonormal columns (k = n: Haar-orthogonal): QR of a Gaussian matrix,
    columns signed by diag(R). Without the sign fix LAPACK's positive diag(R) biases Q (trace about -12 at
    n = 500 instead of N(0, 1))."""
    q, r = xp.linalg.qr(rng.standard_normal((n, k)))
    return q * xp.sign(xp.diag(r))[None, :]


def _xp(xp: Any) -> types.ModuleType:
    if xp is None:
        return np
    return backend.get_xp(xp) if isinstance(xp, str) else xp


def _erf(xp):
    if xp is np:
        from scipy.special import erf
    else:  # CuPy's twin of scipy.special
        from cupyx.scipy.special import erf
    return erf


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, dtype=float)
    a.setflags(write=False)
    return a
