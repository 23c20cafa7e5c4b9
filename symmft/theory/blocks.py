"""The stationary solver's steps a block at a time: its random numbers drawn ahead, its affine maps precomputed.

What: two helpers of :mod:`symmft.theory.stationary` (docs/tied.md §4; RESULTS §7.2b). :class:`BlockNormals`
gives the standard normals of one block of steps at a time, in the order the per-step solver drew them, and
draws the next block's in a second thread while the caller runs this one (numpy's fills release the GIL): the
same seed gives the same numbers with or without the thread, and as before. :class:`BlockOps` are the
single-site ``ops`` (:class:`~symmft.theory.site.SiteOps`) for fields that a
:class:`~symmft.theory.spectral.StreamingFields` drew for the whole block before its steps.

How: a stationary field does not depend on the vector it multiplies (that is only recorded, for the lagged
products), so every affine map's value over the block -- bias, input term and recurrent fields -- is known before
the steps; :class:`BlockOps` computes it vectorized over CHUNK steps at a time (time-major), and likewise a
sigmoid or tanh applied directly to an affine map's value. The cell's own ``step`` then runs per step only what
depends on its states (LSTM: c = f c + i g, h = o tanh c), with ~6 array operations instead of ~60 (the
per-step Python was ~30% of the solver's time at 2 x 1008 units).

Precision: as the per-step ops, float64 (the fields float32). Gates in float32 would round f = sigmoid(u) near 1
to 6e-8: at the T = 1000 LSTM rule (mu_f = 9.6, 1 - f ~ 7e-5) 6e-4 rms of 1 - f and a bias of -8e-5 in its mean.
"""

from __future__ import annotations

import math
import threading

import numpy as np

from symmft.errors import CellDefinitionError
from symmft.theory.site import X, SiteOps

CHUNK = 128  # steps whose affine maps and gates are precomputed together (small arrays: ~2 MB per map)


class BlockNormals:
    """The standard normals of one block at a time from the solver's generator, in the order the per-step solver
    drew them (so a seed gives the realization it gave before: the T = 1000 LSTM rule's passes depend on it,
    RESULTS §7.2a). :meth:`take` (a plan: ``(name, shape, dtype, per_mode)`` entries in drawing order) -> {name:
    array}; ``per_mode``: a (k, 2, S, steps) array drawn as :func:`~symmft.theory.spectral._stream` draws it,
    mode by mode and FFT_SERIES series at a time. ``threaded``: after each take the next block's are drawn in a
    background thread with the same plan (numpy's fills release the GIL), used if the next take asks for that
    plan; otherwise, and before anything else draws from the generator (:meth:`rewind`), the generator is set back
    to where the block drawn ahead began. The numbers do not depend on ``threaded``. The arrays are filled in
    place, two sets taking turns (fresh arrays of a block's size cost the system ~25% of the drawing): a take's
    arrays hold until the take after next."""

    def __init__(self, rng: np.random.Generator, threaded: bool = True):
        self.rng, self.threaded = rng, threaded
        self._next: tuple | None = None  # (plan, generator state before it, thread, its result box)
        self._sets: tuple[tuple, list] | None = None  # (plan, its two sets of arrays)
        self._turn = 0

    def _arrays(self, plan: tuple) -> dict[str, np.ndarray]:
        """The set of arrays whose turn it is (new ones for a new plan)."""
        if self._sets is None or self._sets[0] != plan:
            self._sets = (plan, [None, None])
        sets, self._turn = self._sets[1], 1 - self._turn
        if sets[self._turn] is None:
            sets[self._turn] = {name: np.empty(shape, dtype=dtype) for name, shape, dtype, _ in plan}
        return sets[self._turn]

    def _draw(self, plan: tuple, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from symmft.theory import spectral  # FFT_SERIES read at call time, as _stream does
        for name, shape, dtype, per_mode in plan:
            a = out[name]
            if not per_mode:
                self.rng.standard_normal(dtype=dtype, out=a)
                continue
            scratch = np.empty(shape[0] * min(shape[2], spectral.FFT_SERIES) * shape[3], dtype=dtype)
            for m in range(2):
                for s in range(0, shape[2], spectral.FFT_SERIES):
                    piece = a[:, m, s:s + spectral.FFT_SERIES]
                    z = scratch[:piece.size].reshape(piece.shape)
                    piece[...] = self.rng.standard_normal(dtype=dtype, out=z)
        return out

    def take(self, plan: list) -> dict[str, np.ndarray]:
        key = tuple((name, tuple(int(n) for n in shape), np.dtype(dtype).str, bool(per_mode))
                    for name, shape, dtype, per_mode in plan)
        ahead = self._next
        if ahead is not None and ahead[0] == key:
            ahead[2].join()
            self._next = None
            out = ahead[3].get("out")
            if out is None:  # the thread failed: draw here, from where it began, into its arrays
                self.rng.bit_generator.state = ahead[1]
                out = self._draw(key, ahead[4])
        else:
            self.rewind()
            out = self._draw(key, self._arrays(key))
        if self.threaded:
            box: dict = {}
            state, arrays = self.rng.bit_generator.state, self._arrays(key)
            thread = threading.Thread(target=lambda: box.update(out=self._draw(key, arrays)), daemon=True)
            thread.start()
            self._next = (key, state, thread, box, arrays)
        return dict(out)

    def rewind(self) -> None:
        """Drop the block drawn ahead (waiting for its thread) and set the generator back to where it began: call
        before anything else draws from the generator."""
        if self._next is not None:
            self._next[2].join()
            self.rng.bit_generator.state = self._next[1]
            self._next = None
            self._turn = 1 - self._turn  # its arrays are free again


class BlockOps(SiteOps):
    """:class:`SiteOps` whose recurrent fields, input terms and biases were drawn for the whole block (the source's
    ``values``, :meth:`begin_block`'s inputs): :meth:`prepare` (steps t0..t1 of the block) computes every affine
    map's value and :meth:`step` hands out its row; the vectors the maps read are recorded into the source's
    ``recorded`` (:meth:`flush`, after the chunk's steps). A sigmoid or tanh of an affine map's value (the very
    array :meth:`affine` returned this step) is taken from the chunk's, computed once vectorized; any other
    argument is computed as :class:`SiteOps` does. Infinite input size only (the stationary solver's)."""

    def __init__(self, cell, h: dict, source, draws, shape: tuple[int, int]):
        super().__init__(cell, h, source, draws, shape)
        self.tanh = self._tanh  # SiteOps binds xp.tanh per instance
        rows = {node: [name for name, _ in maps] for node, maps in self.consumers.items()}
        # Per map: (node or None for the input x, its factor, its row among the node's fields); the input term's
        # factor is sqrt(q_x sigma2_k) on the map's own column of the block's input normals.
        self._terms = {}
        for amap in cell.affines:
            terms = []
            for inp in amap.inputs:
                if inp.hyperparameter.startswith("sigma2_"):
                    terms.append((None, math.sqrt(h["q_x"] * h[inp.hyperparameter]), self.input_maps.index(amap.name)))
                else:
                    terms.append((inp.node, math.sqrt(h[inp.hyperparameter]), rows[inp.node].index(amap.name)))
            self._terms[amap.name] = terms
        self._t, self._t0 = 0, 0
        self._u: dict[str, np.ndarray] = {}
        self._gates: dict[tuple[str, str], np.ndarray] = {}
        self._given: dict[int, tuple[str, np.ndarray]] = {}  # id of this step's affine values -> (map, value)
        self._rec: dict[int, np.ndarray] = {}
        self._seen: set[int] = set()

    def input_shape(self, steps: int) -> tuple[int, ...]:
        """The shape of a block's input normals (:meth:`begin_block`): (step, copy, map, group, unit), what
        :meth:`SiteOps._draw_inputs` drew step by step (float64)."""
        return (steps, 2, len(self.input_maps), *self.shape)

    def begin_block(self, inputs: np.ndarray) -> None:
        """A new block: the source has drawn its fields; ``inputs`` are standard normals of :meth:`input_shape`,
        the copies mixed here to the a/b correlation c_x (as SiteOps does)."""
        c = self.h["c_x"]
        self._z = inputs
        if c != 0.0:
            self._z = inputs.copy()
            self._z[:, 1] = c * inputs[:, 0] + math.sqrt(max(1.0 - c * c, 0.0)) * inputs[:, 1]

    def prepare(self, t0: int, t1: int) -> None:
        """Steps t0..t1-1 of the block: every affine map's value, (step, copy, group, unit), by the operations
        :meth:`SiteOps.affine` does per step, in its order and precision (float64; a field times its factor in
        float32): the same numbers."""
        self._t0, self._u, self._gates = t0, {}, {}
        values = self.source.values
        for name, terms in self._terms.items():
            u = np.empty((t1 - t0, 2, *self.shape))
            u[...] = self.bias[name]
            for node, factor, row in terms:
                if node is None:
                    u += factor * self._z[t0:t1, :, row]
                else:
                    u += np.float32(factor) * np.moveaxis(values[node][row, ..., t0:t1], -1, 0)
            self._u[name] = u
        self._rec = {node: np.empty((t1 - t0, 2, *self.shape), dtype=np.float32) for node in self.consumers}

    def flush(self) -> None:
        """The chunk's recorded vectors into the source's ``recorded`` (copy, group, unit, step)."""
        for node, rec in self._rec.items():
            self.source.recorded[node][..., self._t0:self._t0 + len(rec)] = np.moveaxis(rec, 0, -1)

    def affine(self, name: str, *vectors, **named) -> np.ndarray:
        values, terms = (*vectors, *named.values()), self._terms.get(name)
        if terms is None or len(values) != len(terms):
            raise CellDefinitionError(f"{self.cell.path}: ops.affine({name!r}) differs from the traced cell")
        for (node, _, _), v in zip(terms, values):
            if node is not None and node not in self._seen:  # the vector's value this step, for the lagged products
                self._rec[node][self._t] = v
                self._seen.add(node)
        u = self._u[name][self._t]
        self._given[id(u)] = (name, u)
        return u

    def _gate(self, kind: str, u, compute):
        given = self._given.get(id(u))
        if given is None or given[1] is not u:
            return compute(u)
        key = (kind, given[0])
        if key not in self._gates:
            self._gates[key] = compute(self._u[given[0]])
        return self._gates[key][self._t]

    def sigmoid(self, u):
        return self._gate("sigmoid", u, super().sigmoid)

    def _tanh(self, u):
        return self._gate("tanh", u, np.tanh)

    def step(self, t: int, states: list[np.ndarray]) -> list[np.ndarray]:
        """States after step t of the block (within the prepared chunk)."""
        self._t = t - self._t0
        self._seen.clear()
        self._given.clear()
        out = self.cell.step(X, *states, self)  # x's term is in the precomputed values
        out = out if isinstance(out, tuple) else (out,)
        return [np.broadcast_to(np.asarray(o), s.shape).copy() if getattr(o, "shape", ()) != s.shape else o
                for o, s in zip(out, states)]
