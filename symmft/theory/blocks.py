"""The stationary solver's steps a block at a time: its random numbers drawn ahead, its affine maps precomputed.

What: two helpers of :mod:`symmft.theory.stationary` (docs/tied.md §4; RESULTS §7.2a). :class:`BlockNormals`
gives the standard normals of one block of steps at a time -- block i's from its own generator, so the numbers
are a function of the seed, the block and the shapes asked for only -- and draws the next block's in a second
thread while the caller runs this one (numpy's fills release the GIL): the same seed gives the same numbers with
or without the thread. :class:`BlockOps` are the single-site ``ops`` (:class:`~symmft.theory.site.SiteOps`)
for fields that a :class:`~symmft.theory.spectral.StreamingFields` drew for the whole block before its steps.

How: a stationary field does not depend on the vector it multiplies (that is only recorded, for the lagged
products), so every affine map's value over the block -- bias, input term and recurrent fields -- is known before
the steps; :class:`BlockOps` computes it vectorized over CHUNK steps at a time (time-major, float32 like the
fields), and likewise a sigmoid or tanh applied directly to an affine map's value. The cell's own ``step`` then
runs per step only what depends on its states (LSTM: c = f c + i g, h = o tanh c), with ~6 array operations
instead of ~60 (the per-step Python was ~30% of the solver's time at 2 x 1008 units).

Precision: the affine values are float32 (the fields already were: ~1e-7 relative), the gates float64 from them.
Gates in float32 would round f = sigmoid(u) near 1 to 6e-8: at the T = 1000 LSTM rule (mu_f = 9.6, 1 - f ~ 7e-5)
that is 6e-4 rms of 1 - f and a bias of -8e-5 in its mean (from float32 u: 2e-7 and 1e-11; RESULTS §7.2a).
"""

from __future__ import annotations

import math
import threading

import numpy as np

from symmft.errors import CellDefinitionError
from symmft.theory.site import X, SiteOps

CHUNK = 128  # steps whose affine maps and gates are precomputed together (small arrays: ~1 MB per map)


class BlockNormals:
    """Standard normals (float32) for one block at a time: :meth:`take` ({name: shape}) -> {name: array}, drawn in
    that order from block i's own generator (SFC64 of ``SeedSequence(seed, spawn_key=(i,))``: independent of the
    solver's other draws, which come from ``SeedSequence(seed)``). ``threaded``: after each take the next block's
    are drawn in a background thread with the same shapes, and used if the next take asks for those (else drawn
    again, the same numbers): results do not depend on ``threaded``. :meth:`close` waits for that thread."""

    def __init__(self, seed: int, threaded: bool = True):
        self.seed, self.threaded, self.index = int(seed), threaded, 0
        self._next: tuple | None = None  # (index, shapes, thread, its result box)

    def _draw(self, index: int, shapes: tuple) -> dict[str, np.ndarray]:
        rng = np.random.Generator(np.random.SFC64(np.random.SeedSequence(self.seed, spawn_key=(index,))))
        return {name: rng.standard_normal(shape, dtype=np.float32) for name, shape in shapes}

    def take(self, shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
        key = tuple((name, tuple(int(n) for n in shape)) for name, shape in shapes.items())
        ahead = self._next
        self.close()
        out = ahead[3].get("out") if ahead is not None and ahead[:2] == (self.index, key) else None
        out = self._draw(self.index, key) if out is None else out  # (a failed thread left nothing: drawn here)
        self.index += 1
        if self.threaded:
            box: dict = {}
            index = self.index
            thread = threading.Thread(target=lambda: box.update(out=self._draw(index, key)), daemon=True)
            thread.start()
            self._next = (index, key, thread, box)
        return out

    def close(self) -> None:
        """Wait for the block being drawn ahead (if any) and drop it."""
        if self._next is not None:
            self._next[2].join()
            self._next = None


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
        """The shape of a block's input normals (:meth:`begin_block`)."""
        return (len(self.input_maps), 2, *self.shape, steps)

    def begin_block(self, inputs: np.ndarray) -> None:
        """A new block: the source has drawn its fields; ``inputs`` are standard normals of :meth:`input_shape`
        (map, copy, group, unit, step), the copies mixed here to the a/b correlation c_x."""
        c = self.h["c_x"]
        self._z = inputs
        if c != 0.0:
            self._z = inputs.copy()
            self._z[:, 1] = c * inputs[:, 0] + math.sqrt(max(1.0 - c * c, 0.0)) * inputs[:, 1]

    def prepare(self, t0: int, t1: int) -> None:
        """Steps t0..t1-1 of the block: every affine map's value, (step, copy, group, unit) float32."""
        self._t0, self._u, self._gates = t0, {}, {}
        values = self.source.values
        for name, terms in self._terms.items():
            u = np.broadcast_to(self.bias[name].astype(np.float32)[None, :, :, None], (2, *self.shape, t1 - t0)).copy()
            for node, factor, row in terms:
                part = self._z[row, ..., t0:t1] if node is None else values[node][row, ..., t0:t1]
                u += np.float32(factor) * part
            self._u[name] = np.ascontiguousarray(np.moveaxis(u, -1, 0))
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
            self._gates[key] = compute(self._u[given[0]].astype(np.float64))  # (see the module's note)
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
