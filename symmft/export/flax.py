"""Flax exporter: ``init_params(params, seed=None)`` returning a linen ``LSTMCell``/``OptimizedLSTMCell``/
``GRUCell``/``SimpleCell`` parameter tree initialized by the rule, and ``init_nnx_(cell, seed=None)`` setting an NNX
cell's parameters in place; draws with numpy.

Flax keeps one Dense/Linear module per gate and side (linen; NNX ``LSTMCell``) or fused ones with gate blocks as
column blocks (NNX ``OptimizedLSTMCell``, ``GRUCell``, ``SimpleCell``); kernels are (in, out). Only one of a map's
two Dense modules has a bias, so it gets the map's whole bias law. NNX's ``GRUCell`` has no b_hn (its hidden
Linear has no bias): it equals cell gru with b_hn = 0, so it takes only rules whose map hn has a zero bias.
"""

from __future__ import annotations

from symmft.export.emit import NUMPY_DRAWS, constants, header

FRAMEWORK = "Flax"

_LSTM_LINEN = {"ii": ("input", ("i",)), "if": ("input", ("f",)), "ig": ("input", ("g",)), "io": ("input", ("o",)),
               "hi": ("recurrent", ("i",)), "hf": ("recurrent", ("f",)), "hg": ("recurrent", ("g",)),
               "ho": ("recurrent", ("o",))}
#: cell -> linen parameter-tree modules and NNX cells: module name -> (input | recurrent, map of each column block)
LAYOUTS = {
    "lstm": {
        "linen": _LSTM_LINEN,
        "nnx": {"LSTMCell": {("if_" if k == "if" else k): v for k, v in _LSTM_LINEN.items()},
                "OptimizedLSTMCell": {"dense_i": ("input", ("i", "f", "g", "o")),
                                      "dense_h": ("recurrent", ("i", "f", "g", "o"))}},
    },
    "gru": {
        "linen": {"ir": ("input", ("r",)), "iz": ("input", ("z",)), "in": ("input", ("n",)),
                  "hr": ("recurrent", ("r",)), "hz": ("recurrent", ("z",)), "hn": ("recurrent", ("hn",))},
        "nnx": {"GRUCell": {"dense_i": ("input", ("r", "z", "n")), "dense_h": ("recurrent", ("r", "z", "hn"))}},
    },
    "vanilla_rnn": {
        "linen": {"i": ("input", ("h",)), "h": ("recurrent", ("h",))},
        "nnx": {"SimpleCell": {"dense_i": ("input", ("h",)), "dense_h": ("recurrent", ("h",))}},
    },
}
REFUSED = {
    "gru_reset_before": "Flax's GRUCell applies the reset gate after the recurrent matmul (cell gru)",
    "minimal_rnn": "Flax has no minimalRNN cell",
}

USAGE = """import jax, jax.numpy as jnp, flax.linen as nn
from {module} import init_params, init_nnx_
cell = nn.{linen}(features=n)
params = cell.init(jax.random.key(0), cell.initialize_carry(jax.random.key(1), (1, m)), jnp.zeros((1, m)))
params = init_params(params, seed=0)               # a new tree; pass module=cell to check its activations
init_nnx_(nnx_cell, seed=0)                        # flax.nnx.{nnx}: in place"""

CODE = '''
import numpy as np

{constants}
# Flax's layout: per Dense/Linear module, its side and the map of each column block of its (in, out) kernel.
# Only one of a map's modules has a bias; it gets the map's whole bias law.
LINEN = {linen}
NNX = {nnx}


def init_params(params, seed=None, module=None):
    """A copy of the linen parameter tree ``params`` (with or without the outer "params" key) drawn by the rule.

    ``seed``: an int, a numpy Generator or None (fresh). ``module``: the linen cell, to check its activations.
    Raises ValueError when the tree is not one of a cell computing the rule's cell."""
    import jax.numpy as jnp

    outer = "params" in params
    tree = dict(params["params"] if outer else params)
    if set(tree) != set(LINEN):
        raise ValueError(f"this init rule is for cell {{CELL}} (linen modules {{sorted(LINEN)}}); the tree has "
                         f"{{sorted(tree)}}. Export the rule of the cell your layer computes (symmft export)")
    if module is not None:
        _check_functions(module)
    arrays = {{name: dict(tree[name]) for name in tree}}
    values = _draw(LINEN, {{k: (v["kernel"].shape[0], "bias" in v) for k, v in arrays.items()}}, seed)
    for name, drawn in values.items():
        for key, value in drawn.items():
            arrays[name][key] = jnp.asarray(value, dtype=arrays[name][key].dtype)
    return {{"params": arrays}} if outer else arrays


def init_nnx_(cell, seed=None):
    """Set the parameters of a flax.nnx cell ({nnx_names}) in place by the rule; returns it."""
    import jax.numpy as jnp

    kind = type(cell).__name__
    if kind not in NNX:
        raise ValueError(f"this init rule is for cell {{CELL}} (flax.nnx {{', '.join(NNX)}}); got {{kind}}. Export "
                         "the rule of the cell your layer computes (symmft export)")
    _check_functions(cell)
    layout = NNX[kind]
    mods = {{name: getattr(cell, name) for name in layout}}
    values = _draw(layout, {{k: (v.kernel[...].shape[0], v.bias is not None) for k, v in mods.items()}}, seed)
    for name, drawn in values.items():
        for key, value in drawn.items():
            param = getattr(mods[name], key)
            param[...] = jnp.asarray(value, dtype=param[...].dtype)
    return cell


def _check_functions(cell):
    for attr, want in (("gate_fn", "sigmoid"), ("activation_fn", "tanh")):
        fn = getattr(cell, attr, None)
        if fn is not None and getattr(fn, "__name__", None) != want:
            raise ValueError(f"{{attr}}={{getattr(fn, '__name__', fn)}}: the rule's cell {{CELL}} uses {{want}}; a "
                             "different nonlinearity is another function with another mean-field theory")
    if getattr(cell, "residual", False):
        raise ValueError("residual=True adds h to the pre-activation: another cell than the rule's; use residual=False")


def _draw(layout, shapes, seed):
    """{{module: {{"kernel": (in, out) array, "bias": (out,) array}}}} for ``shapes`` = {{module: (in, has_bias)}}."""
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    n = next(shapes[k][0] for k, (side, _) in layout.items() if side == "recurrent")
    if SIZES is not None:
        m = next(shapes[k][0] for k, (side, _) in layout.items() if side == "input")
        if (n, m) != SIZES:
            raise ValueError(f"this baseline rule was made for hidden size {{SIZES[0]}}, input size {{SIZES[1]}}; the "
                             f"cell has {{n}}, {{m}}: its variances depend on them, regenerate it for your sizes")
    chrono = np.log(rng.uniform(1.0, CHRONO_LENGTH - 1.0, n)) if CHRONO_LENGTH >= 3 else None
    placed, out = set(), {{}}
    for name, (side, blocks) in layout.items():
        m, has_bias = shapes[name]
        if side == "input":
            kernel = [np.sqrt(MAPS[k]["sigma2"] / m) * rng.standard_normal((m, n)) for k in blocks]
        else:
            kernel = [_recurrent(n, MAPS[k]["nu2"], rng) for k in blocks]
        out[name] = {{"kernel": np.concatenate(kernel, axis=1)}}
        if has_bias:
            out[name]["bias"] = np.concatenate([_bias(k, n, chrono, rng) for k in blocks])
            placed.update(blocks)
    lost = [k for k in MAPS if k not in placed and (MAPS[k]["mu"] or MAPS[k]["rho2"] or MAPS[k]["beta"])]
    if lost:
        raise ValueError(f"this cell has no bias for map(s) {{', '.join(lost)}}, which the rule needs (nonzero mean, "
                         "variance or chrono term): flax.nnx.GRUCell has no b_hn; use linen GRUCell, or a rule "
                         "with mu_hn = rho2_hn = 0")
    return out


{numpy_draws}'''

_LINEN_NAMES = {"lstm": "LSTMCell", "gru": "GRUCell", "vanilla_rnn": "SimpleCell"}


def render(spec) -> str:
    """Source of the Flax module for ``spec`` (an ``ExportSpec`` of a cell in ``LAYOUTS``)."""
    lay = LAYOUTS[spec.cell]
    nnx_names = ", ".join(lay["nnx"])
    usage = USAGE.format(module=f"{spec.cell}_init", linen=_LINEN_NAMES[spec.cell], nnx=nnx_names.split(",")[0])
    title = f"Initialize Flax {_LINEN_NAMES[spec.cell]} (linen parameter trees) and nnx {nnx_names} by a symmft init rule for cell {spec.cell}."
    code = CODE.format(constants=constants(spec), numpy_draws=NUMPY_DRAWS, linen=_pretty(lay["linen"], 8), nnx=_pretty(lay["nnx"], 6),
                       nnx_names=nnx_names)
    return header(spec, title, usage) + code


def _pretty(table: dict, indent: int) -> str:
    """A dict literal, one entry per line."""
    pad = " " * 4
    return "{\n" + "".join(f"{pad}{k!r}: {v!r},\n" for k, v in table.items()) + "}"
