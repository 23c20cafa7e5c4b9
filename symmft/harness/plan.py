"""Runtime of the generated training step: :func:`load_plan` -> :class:`Plan` (forward, exact BPTT backward).

Stage: :mod:`symmft.harness.codegen` (source text) -> this module (cached on disk, imported, run) -> training loops.

How: the source :func:`symmft.harness.codegen.generate` writes for a cell is cached as a plain ``.py`` file under
``$SYMMFT_CACHE/codegen`` (default ``~/.cache/symmft/codegen``), named by the cell name, the cell file's sha256 and
the generator's own source hash, so editing the cell file or upgrading symmft regenerates it; it is imported like any
module (``plan.module``, ``plan.source_path``; ``inspect.getsource`` works). The same plan runs on numpy and CuPy
arrays: the driver takes the array module ``xp`` (numpy, or CuPy with fused ``ElementwiseKernel`` stages).

Conventions (shared with ``symmft.network.simulate.Network`` and PyTorch): parameters are a dict keyed
``"{map}.{vector}"`` -> matrix (out, in) -- ``(n, m)`` for the input ``x``, ``(n, n)`` for a state or named
vector -- and ``"{map}.bias"`` -> ``(n,)``; sequences are time-major ``xs`` (T, B, m); states are (B, n).
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import threading
import types
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from symmft import backend, cache
from symmft.cell.graph import Cell
from symmft.cell.trace import load_cell
from symmft.harness.codegen import GENERATOR_VERSION, generate
from symmft.errors import BackendError, SymmftError

DTYPES = ("float32", "float64")


class PlanInputError(SymmftError, ValueError):
    """Arrays passed to a plan have the wrong keys, shapes or dtype; the message names the array."""


def cache_dir() -> Path:
    """Where generated sources are kept: ``$SYMMFT_CACHE/codegen`` or ``~/.cache/symmft/codegen``."""
    return cache.directory("codegen")


def cached_source(cell: Cell) -> Path:
    """The generated source of ``cell`` on disk, written on first use (atomically: concurrent runs are safe)."""
    path = cache_dir() / f"{cell.name}_{cell.file_hash[:16]}_{GENERATOR_VERSION}.py"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        source = generate(cell)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            f.write(source)
        os.replace(tmp, path)
    return path


def _import(path: Path) -> types.ModuleType:
    name = f"symmft_generated_{path.stem}"
    if name in sys.modules and getattr(sys.modules[name], "__file__", None) == str(path):
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


class Plan:
    """The generated forward and backward step of one cell on one array module and dtype.

    ``states``: the cell's STATE tuple; ``output``: the state read out (the last of STATE, "h" for the LSTM).
    """

    def __init__(self, cell: Cell, module: types.ModuleType, xp: types.ModuleType, dtype: str, source_path: Path):
        self.cell, self.module, self.xp, self.dtype, self.source_path = cell, module, xp, dtype, source_path
        self.states: tuple[str, ...] = tuple(module.STATES)
        self.output: str = module.OUTPUT
        stages = module.cupy_stages(xp) if xp.__name__.startswith("cupy") else module.numpy_stages()
        self._stages = types.SimpleNamespace(**{**vars(stages), "empty": self._empty})
        self._pool: dict[tuple, list] = {}
        self._lock = threading.Lock()

    @property
    def source(self) -> str:
        """The generated Python source this plan runs."""
        return self.source_path.read_text()

    def param_shapes(self, width: int, input_dim: int) -> dict[str, tuple[int, ...]]:
        """Shape of every parameter at width n and input dimension m (matrices (out, in), biases (n,))."""
        size = {"n": int(width), "m": int(input_dim)}
        return {k: tuple(size[d] for d in dims) for k, dims in self.module.PARAMETERS.items()}

    def params_from_network(self, network) -> dict[str, Any]:
        """The parameters of a tied ``symmft.network.simulate.Network`` draw (same matrices, biases flattened), as this
        plan's dtype on this plan's array module: initialize training from any symmft hyperparameters."""
        if not network.tied:
            raise PlanInputError("params_from_network needs a tied Network (one draw of the weights)")
        params = {f"{a}.{v}": w for (a, v), w in network.matrices.items()}
        params.update({f"{a}.bias": b.reshape(-1) for a, b in network.biases.items()})
        return {k: self.xp.asarray(backend.to_numpy(v), dtype=self.dtype) for k, v in params.items()}

    # ---- running
    def forward(self, params: Mapping[str, Any], xs: Any, initial: Mapping[str, Any] | None = None):
        """Run T steps: ``xs`` (T, B, m) -> ``(outputs, tape)``; outputs (T, B, n) is the output state after each
        step (a view into the tape), the tape holds what :meth:`backward` needs. ``initial``: state -> (B, n),
        zeros for states not given."""
        xp = self.xp
        xs = self._array("xs", xs)
        if xs.ndim != 3 or 0 in xs.shape:
            raise PlanInputError(f"xs must be a non-empty (T, B, m) array (time-major), got shape {tuple(xs.shape)}")
        T, B, m = xs.shape
        params = self._params(params, m)
        n = params[f"{self.cell.affines[0].name}.bias"].shape[0]
        init = {}
        for s in self.states:
            v = (initial or {}).get(s)
            init[s] = xp.zeros((B, n), self.dtype) if v is None else self._state("initial", s, v, B, n)
        unknown = set(initial or {}) - set(self.states)
        if unknown:
            raise PlanInputError(f"initial names {sorted(unknown)}, not states of {self.cell.name} ({self.states})")
        return self.module.forward(xp, self._stages, params, xs, init)

    def backward(self, params: Mapping[str, Any], tape: dict, d_outputs: Any = None,
                 d_final: Mapping[str, Any] | None = None, input_gradient: bool = False) -> dict[str, Any]:
        """Exact gradients (BPTT) of a loss L given ``d_outputs`` = dL/d outputs (T, B, n) (None: zero) and
        ``d_final`` = {state: dL/d final state (B, n)} (missing: zero). Returns a dict with the keys of ``params``
        (and ``"x"``: dL/d xs (T, B, m) when ``input_gradient``). Overwrites parts of the tape that only the
        backward uses; calling it again on the same tape gives the same result."""
        xp = self.xp
        T, B, n, m = (tape[k] for k in ("T", "B", "n", "m"))
        params = self._params(params, m)
        if d_outputs is None:
            d_outputs = xp.zeros((T, B, n), self.dtype)
        else:
            d_outputs = self._array("d_outputs", d_outputs)
            if tuple(d_outputs.shape) != (T, B, n):
                raise PlanInputError(f"d_outputs must have the outputs' shape {(T, B, n)}, got {tuple(d_outputs.shape)}")
        final = {}
        for s in self.states:  # copied: the carries are overwritten in the loop
            v = (d_final or {}).get(s)
            final[s] = xp.zeros((B, n), self.dtype) if v is None else self._state("d_final", s, v, B, n).copy()
        return self.module.backward(xp, self._stages, params, tape, d_outputs, final, bool(input_gradient))

    def _empty(self, name: str, shape: tuple, dtype) -> Any:
        """The tape's and the backward's big arrays, reused from earlier calls when nothing else holds them any
        more. Why: fresh memory costs a page fault per 4 KiB on first touch, and numpy maps every array over
        32 MiB afresh; on the development VM that was 2 ms per MiB, 40% of an LSTM step at B=64, H=512. At most
        two arrays are kept per name (a training loop ``out, tape = plan.forward(...)`` still holds the previous
        tape while the next forward allocates), whatever the shapes, so the memory kept is bounded by two tapes
        of the largest shape in use; a free array of another shape is replaced. :meth:`release` drops them."""
        shape = tuple(int(d) for d in shape)
        with self._lock:
            kept = self._pool.setdefault((name, str(dtype)), [])
            # free = held only by the list and getrefcount's argument (no enumerate: its tuple holds one more)
            free = [k for k in range(len(kept)) if sys.getrefcount(kept[k]) <= 2]
            for k in free:
                if kept[k].shape == shape:
                    return kept[k]
            a = self.xp.empty(shape, dtype)
            if free:
                kept[free[0]] = a
            elif len(kept) < 2:
                kept.append(a)
            return a

    def release(self) -> None:
        """Forget the arrays kept for reuse (their memory is freed once no tape holds them)."""
        with self._lock:
            self._pool.clear()

    # ---- checking inputs
    def _array(self, what: str, a: Any):
        xp = self.xp
        if xp is not np and isinstance(a, np.ndarray):
            raise PlanInputError(f"{what} is a numpy array but this plan runs on {xp.__name__}; move it with "
                                 f"{xp.__name__}.asarray")
        return xp.asarray(a, dtype=self.dtype)

    def _state(self, what: str, s: str, v: Any, B: int, n: int):
        v = self._array(f"{what}[{s!r}]", v)
        if tuple(v.shape) != (B, n):
            raise PlanInputError(f"{what}[{s!r}] must have shape (B, n) = {(B, n)}, got {tuple(v.shape)}")
        return v

    def _params(self, params: Mapping[str, Any], m: int) -> dict[str, Any]:
        bias = f"{self.cell.affines[0].name}.bias"
        if bias not in params:
            raise PlanInputError(f"params lacks {bias!r}; expected keys {sorted(self.module.PARAMETERS)}")
        n = int(np.shape(params[bias])[0])
        shapes = self.param_shapes(n, m)
        missing, extra = set(shapes) - set(params), set(params) - set(shapes)
        if missing or extra:
            raise PlanInputError(f"params for cell {self.cell.name!r}: missing {sorted(missing)}, unexpected "
                                 f"{sorted(extra)}; the keys are {sorted(shapes)} (plan.param_shapes(n, m))")
        out = {}
        for k, shape in shapes.items():
            a = self._array(f"params[{k!r}]", params[k])
            if tuple(a.shape) != shape:
                raise PlanInputError(f"params[{k!r}] must have shape {shape} (n={n}, m={m}), got {tuple(a.shape)}")
            out[k] = a
        return out


def load_plan(cell: Cell | str | Path, xp: str | types.ModuleType = "numpy", dtype: str = "float32") -> Plan:
    """The generated training step of ``cell`` (a ``Cell``, built-in name or cell file path) on ``xp``
    ("numpy", "cupy" or the module) in ``dtype`` ("float32" or "float64")."""
    cell = cell if isinstance(cell, Cell) else load_cell(cell)
    if isinstance(xp, str):
        xp = backend.get_xp(xp)
    elif not (xp is np or getattr(xp, "__name__", "").startswith("cupy")):
        raise BackendError(f"xp must be 'numpy', 'cupy' or one of those modules, got {xp!r}")
    if str(dtype) not in DTYPES:
        raise PlanInputError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    path = cached_source(cell)
    return Plan(cell, _import(path), xp, str(dtype), path)
