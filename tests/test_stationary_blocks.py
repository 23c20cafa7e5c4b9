"""The stationary solver's block helpers (symmft/theory/blocks.py) against the per-step single-site ops.

BlockOps precomputes a block's affine maps and gates; SiteOps (site.py, shared with the causal solver) computes
them step by step from the same fields and input normals. BlockNormals must draw the generator's numbers in the
per-step solver's order, whether or not its thread draws them ahead.
"""

from __future__ import annotations

import numpy as np

from symmft import load_cell
from symmft.cell.params import resolve
from symmft.theory.blocks import BlockNormals, BlockOps
from symmft.theory.site import Draws, SiteOps, consumers


def test_block_normals_are_the_generators_draws_in_order_with_or_without_the_thread():
    # The normals of each block are what the per-step solver drew from its generator, in its order: a per-mode
    # array as spectral._stream draws it (mode by mode, FFT_SERIES series at a time), then the rest. Drawn ahead
    # in a thread or in turn, with plans that change (the block drawn ahead is then dropped) and other draws from
    # the generator between blocks after a rewind (set_lags' grid noise): the same numbers as a twin generator
    # drawing them one by one.
    from symmft.theory.spectral import FFT_SERIES
    S = FFT_SERIES + 7  # two chunks of series
    plan_a = [("fine", (3, 2, S, 4), np.float32, True), ("grid", (3, 2, 5), np.float32, False),
              ("inputs", (4, 2, 3), np.float64, False)]
    plan_b = [("fine", (1, 2, S, 2), np.float32, True)]
    twin = np.random.default_rng(11)

    def expected(plan):
        out = {}
        for name, shape, dtype, per_mode in plan:
            if per_mode:
                out[name] = np.empty(shape, dtype)
                for m in range(2):
                    for s in range(0, S, FFT_SERIES):
                        piece = out[name][:, m, s:s + FFT_SERIES]
                        piece[...] = twin.standard_normal(piece.shape, dtype=dtype)
            else:
                out[name] = twin.standard_normal(shape, dtype=dtype)
        return out

    for threaded in (True, False):
        twin = np.random.default_rng(11)
        rng = np.random.default_rng(11)
        normals = BlockNormals(rng, threaded=threaded)
        for plan, between in ((plan_a, 0), (plan_a, 0), (plan_b, 0), (plan_b, 3), (plan_a, 0), (plan_a, 0)):
            if between:
                normals.rewind()
                np.testing.assert_array_equal(rng.standard_normal(between), twin.standard_normal(between))
            got, want = normals.take(plan), expected(plan)
            assert got.keys() == want.keys()
            for name in got:
                assert got[name].dtype == want[name].dtype
                np.testing.assert_array_equal(got[name], want[name])
        normals.rewind()
        np.testing.assert_array_equal(rng.standard_normal(5), twin.standard_normal(5))


class _Recorder:
    """A FieldSource for SiteOps serving given fields (maps, copy, group, unit, step) and recording v."""

    def __init__(self, values: dict, steps: int, shape: tuple):
        self.values, self.t = values, 0
        self.recorded = {node: np.zeros((2, *shape, steps)) for node in values}

    def begin(self, t: int) -> None:
        self.t = t

    def fields(self, node: int, v: np.ndarray) -> np.ndarray:
        self.recorded[node][..., self.t] = v
        return self.values[node][..., self.t]


class _Queue:
    """A generator stand-in handing out prepared arrays in order (SiteOps' per-step input draws)."""

    def __init__(self, arrays: list):
        self.arrays = list(arrays)

    def standard_normal(self, shape, dtype=np.float64):
        z = self.arrays.pop(0)
        assert z.shape == tuple(shape)
        return z.astype(dtype)


def test_block_ops_step_as_the_site_ops():
    # The same block of fields (float32) and input normals (float64, as the solver draws them), the same biases:
    # the LSTM's states after every step, by BlockOps (affine maps and gates precomputed per chunk) and by SiteOps
    # (per step). c_x = 0.3 mixes the copies' inputs; two chunks of 128 and a part. BlockOps does SiteOps'
    # operations in its order and precision, vectorized over the chunk: the same numbers but for rounding of the
    # vectorized tanh (none expected; 1e-12 absolute over 300 steps of states of order 0.1-3 allows a last bit).
    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, {"mu_f": 3.0, "c_x": 0.3, "rho2_f": 0.2, "q_x": 0.7}).items()}
    G, U, B = 2, 5, 300
    rng = np.random.default_rng(4)
    maps = consumers(cell)
    values = {node: rng.standard_normal((len(m), 2, G, U, B)).astype(np.float32) for node, m in maps.items()}
    source = type("Block", (), {"values": values, "recorded": {n: np.zeros((2, G, U, B), np.float32) for n in maps}})()
    block = BlockOps(cell, h, source, Draws(rng, G), (G, U))
    inputs = rng.standard_normal(block.input_shape(B))  # (step, copy, map, group, unit)
    reference_source = _Recorder(values, B, (G, U))
    per_step = list(inputs)  # SiteOps draws (copy, map, group, unit) a step
    draws = Draws(rng, G)
    reference = SiteOps(cell, h, reference_source, draws, (G, U))
    reference.bias = dict(block.bias)
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
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
        block.flush()
    for node in maps:
        np.testing.assert_allclose(source.recorded[node], reference_source.recorded[node], rtol=0, atol=1e-6)


def test_solver_result_does_not_depend_on_the_prefetch_thread(monkeypatch):
    # The stationary solver with its normals drawn a block ahead in a thread and drawn in turn: the same numbers,
    # so the same result to the bit. LSTM mu_f = 3 from 8 lags with the two-rate thresholds lowered (32 lags, a
    # grid of 16 points), so that the range doubles through the two-rate sampler: the drawn-ahead block is
    # dropped at every change of the block's shape and the generator rewound before set_lags draws the new grid's
    # noise from it.
    import symmft.theory.spectral as spectral
    from symmft.theory.stationary import solve_stationary
    monkeypatch.setattr(spectral, "TWO_RATE", 32)
    monkeypatch.setattr(spectral, "COARSE_LAGS", 16)
    monkeypatch.setattr(spectral, "FAST_LAGS", 16)
    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, {"mu_f": 3.0, "c_x": 0.5}).items()}
    runs = [solve_stationary(cell, h, lags=8, population=128, seed=3, max_steps=4096, prefetch=p)
            for p in (True, False)]
    assert runs[0]["steps"] == runs[1]["steps"] and runs[0]["stride"] > 1 and runs[0]["lags"] >= 128
    np.testing.assert_array_equal(runs[0]["mean"], runs[1]["mean"])
    for node in runs[0]["gamma"]:
        np.testing.assert_array_equal(runs[0]["gamma"][node][0], runs[1]["gamma"][node][0])
