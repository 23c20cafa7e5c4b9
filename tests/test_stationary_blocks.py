"""The stationary solver's block helpers (symmft/theory/blocks.py) against the per-step single-site ops.

BlockOps precomputes a block's affine maps and gates; SiteOps (site.py, shared with the causal solver) computes
them step by step from the same fields and input normals. BlockNormals' numbers must not depend on its thread.
"""

from __future__ import annotations

import numpy as np

from symmft import load_cell
from symmft.cell.params import resolve
from symmft.theory.blocks import BlockNormals, BlockOps
from symmft.theory.site import Draws, SiteOps, consumers


def test_block_normals_do_not_depend_on_the_thread():
    # Block i's numbers come from its own generator: drawn ahead in a thread or here, and when the shapes change
    # between blocks (the drawn-ahead block is then discarded and drawn again), the same numbers.
    plan = [{"a": (3, 5), "b": (2,)}, {"a": (3, 5), "b": (2,)}, {"a": (4,)}, {"a": (4,)}, {"a": (4,)}]
    threaded, plain = BlockNormals(11, threaded=True), BlockNormals(11, threaded=False)
    for shapes in plan:
        got, want = threaded.take(shapes), plain.take(shapes)
        assert got.keys() == want.keys() and all(np.array_equal(got[k], want[k]) for k in got)
        assert all(got[k].shape == shapes[k] and got[k].dtype == np.float32 for k in got)
    threaded.close()
    other = BlockNormals(12, threaded=False).take(plan[0])
    assert not np.array_equal(other["a"], BlockNormals(11, threaded=False).take(plan[0])["a"])


class _Recorder:
    """A FieldSource for SiteOps serving given fields (maps, copy, group, unit, step) and recording v."""

    def __init__(self, values: dict, steps: int, shape: tuple):
        self.values, self.t = values, 0
        self.recorded = {node: np.zeros((2, *shape, steps)) for node in values}

    def begin(self, t: int) -> None:
        self.t = t

    def fields(self, node: int, v: np.ndarray) -> np.ndarray:
        self.recorded[node][..., self.t] = v
        return self.values[node][..., self.t].astype(float)


class _Queue:
    """A generator stand-in handing out prepared arrays in order (SiteOps' per-step input draws)."""

    def __init__(self, arrays: list):
        self.arrays = list(arrays)

    def standard_normal(self, shape, dtype=np.float64):
        z = self.arrays.pop(0)
        assert z.shape == tuple(shape)
        return z.astype(dtype)


def test_block_ops_step_as_the_site_ops():
    # The same block of fields and input normals (float32, as the solver draws them), the same biases: the LSTM's
    # states after every step, by BlockOps (affine maps and gates precomputed per chunk, float32) and by SiteOps
    # (per step, float64 from the same numbers). c_x = 0.3 mixes the copies' inputs; two chunks of 128 and a
    # part. Tolerance: float32 rounding of the affine values (~1e-7 relative; the gates are float64), grown by the
    # recurrence over 300 steps: 1e-5 absolute on states of order 0.1-3.
    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, {"mu_f": 3.0, "c_x": 0.3, "rho2_f": 0.2, "q_x": 0.7}).items()}
    G, U, B = 2, 5, 300
    rng = np.random.default_rng(4)
    maps = consumers(cell)
    values = {node: rng.standard_normal((len(m), 2, G, U, B)).astype(np.float32) for node, m in maps.items()}
    source = type("Block", (), {"values": values, "recorded": {n: np.zeros((2, G, U, B), np.float32) for n in maps}})()
    block = BlockOps(cell, h, source, Draws(rng, G), (G, U))
    inputs = rng.standard_normal(block.input_shape(B)).astype(np.float32)  # (map, copy, group, unit, step)
    reference_source = _Recorder(values, B, (G, U))
    per_step = [np.moveaxis(inputs[..., t], 0, 1) for t in range(B)]  # SiteOps draws (copy, map, group, unit)
    draws = Draws(rng, G)
    reference = SiteOps(cell, h, reference_source, draws, (G, U))
    reference.bias = {k: b.astype(np.float32).astype(float) for k, b in block.bias.items()}
    draws.rng = _Queue(per_step)
    start = [rng.standard_normal((2, G, U)) for _ in cell.states]
    got, want = list(start), list(start)
    block.begin_block(inputs)
    for t0 in range(0, B, 128):
        block.prepare(t0, min(B, t0 + 128))
        for t in range(t0, min(B, t0 + 128)):
            got = block.step(t, got)
            want = reference.step(t, want)
            for a, b in zip(got, want):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
        block.flush()
    for node in maps:
        np.testing.assert_allclose(source.recorded[node], reference_source.recorded[node], rtol=0, atol=1e-5)


def test_solver_result_does_not_depend_on_the_prefetch_thread():
    # The stationary solver with its normals drawn a block ahead in a thread and drawn in turn: the same numbers,
    # so the same result to the bit (LSTM mu_f = 3 from 8 lags: ranges doubled, so the drawn-ahead block is
    # discarded at every change of the block's shape).
    from symmft.theory.stationary import solve_stationary
    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, {"mu_f": 3.0, "c_x": 0.5}).items()}
    runs = [solve_stationary(cell, h, lags=8, population=128, seed=3, max_steps=3072, prefetch=p) for p in (True, False)]
    assert runs[0]["steps"] == runs[1]["steps"] and runs[0]["lags"] > 8
    np.testing.assert_array_equal(runs[0]["mean"], runs[1]["mean"])
    for node in runs[0]["gamma"]:
        np.testing.assert_array_equal(runs[0]["gamma"][node][0], runs[1]["gamma"][node][0])
