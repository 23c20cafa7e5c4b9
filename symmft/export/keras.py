"""Keras 3 exporter: a ``RuleInitializer`` (a ``keras.initializers.Initializer`` with ``get_config``) for the
layer's kernel, recurrent kernel and bias, ``initializers()`` (the layer keyword arguments), ``make_layer`` and
``check_layer``; draws with numpy.

Keras fuses gates into column blocks of ``kernel`` (m, G u) and ``recurrent_kernel`` (u, G u), in the order
i, f, c, o (LSTM) and z, r, h (GRU). The GRU with ``reset_after=True`` (cell gru) has a (2, 3u) bias [input;
recurrent] whose recurrent h block is b_hn; ``reset_after=False`` (cell gru_reset_before) has one (3u,) bias.
``unit_forget_bias=True`` would add 1 to the LSTM forget bias and calls the bias initializer per piece, so the
rule requires ``unit_forget_bias=False`` (its forget bias is already in mu_f).
"""

from __future__ import annotations

from symmft.export.emit import NUMPY_DRAWS, constants, header, tuple_literal

FRAMEWORK = "Keras"

_LSTM = ("i", "f", "g", "o")  # Keras calls the g block "c"
#: cell -> layers computing it, the map of each column block, bias rows, required options and activations
LAYOUTS = {
    "lstm": {"layers": ("LSTM", "LSTMCell"), "kernel": _LSTM, "recurrent_kernel": _LSTM, "bias": (_LSTM,),
             "options": {"unit_forget_bias": False},
             "activations": {"activation": "tanh", "recurrent_activation": "sigmoid"}},
    "gru": {"layers": ("GRU", "GRUCell"), "kernel": ("z", "r", "n"), "recurrent_kernel": ("z", "r", "hn"),
            "bias": (("z", "r", "n"), (None, None, "hn")), "options": {"reset_after": True},
            "activations": {"activation": "tanh", "recurrent_activation": "sigmoid"}},
    "gru_reset_before": {"layers": ("GRU", "GRUCell"), "kernel": ("z", "r", "n"), "recurrent_kernel": ("z", "r", "n"),
                         "bias": (("z", "r", "n"),), "options": {"reset_after": False},
                         "activations": {"activation": "tanh", "recurrent_activation": "sigmoid"}},
    "vanilla_rnn": {"layers": ("SimpleRNN", "SimpleRNNCell"), "kernel": ("h",), "recurrent_kernel": ("h",),
                    "bias": (("h",),), "options": {}, "activations": {"activation": "tanh"}},
}
REFUSED = {"minimal_rnn": "Keras has no minimalRNN layer"}

USAGE = """from {module} import make_layer, initializers, check_layer
layer = make_layer(units)                        # keras.layers.{layer}(units, ...) with the rule's initializers
layer = keras.layers.{layer}(units, **initializers(seed=0))   # the same by hand (adds {options})
check_layer(layer)                               # refuses options that change the cell (e.g. hard_sigmoid)"""

CODE = '''
import os

os.environ.setdefault("KERAS_BACKEND", "jax")  # Keras 3 needs a backend; any works, jax is the light one

import keras
import numpy as np

{constants}
# Keras's fused layout: the map of each column block (Keras gate order), the bias rows, and the layer options
# and activations the rule's cell needs.
LAYERS = {layers}
KERNEL = {kernel}
RECURRENT_KERNEL = {recurrent_kernel}
BIAS = {bias}
LAYER_OPTIONS = {options}
ACTIVATIONS = {activations}
PARTS = ("kernel", "recurrent_kernel", "bias")


@keras.saving.register_keras_serializable(package="symmft_rule")
class RuleInitializer(keras.initializers.Initializer):
    """Draws the layer's ``part`` ("kernel", "recurrent_kernel" or "bias") by the rule.

    ``seed``: an int for reproducible draws (each part its own stream), None for fresh draws at every call."""

    def __init__(self, part, seed=None, shared=None):
        if part not in PARTS:
            raise ValueError(f"part must be one of {{PARTS}}, got {{part!r}}")
        self.part, self.seed = part, seed
        self.shared = {{}} if shared is None else shared  # the units the layer's kernels showed (not serialized)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        blocks = len(KERNEL)
        if self.part != "bias":  # Keras builds kernel, recurrent_kernel, then bias
            self.shared["units"] = shape[-1] // blocks
        elif self.shared.get("units", shape[-1] // blocks) * blocks != shape[-1]:
            raise ValueError(f"bias initializer called with shape {{shape}} for {{self.shared['units']}} units: the "
                             "layer splits its bias (unit_forget_bias=True adds 1 to the forget gate on top of the "
                             "rule's mu_f); use unit_forget_bias=False")
        rng = np.random.default_rng(None if self.seed is None else [self.seed, PARTS.index(self.part)])
        return keras.ops.convert_to_tensor(draw(self.part, shape, rng), dtype=dtype)

    def get_config(self):
        return {{"part": self.part, "seed": self.seed}}


def initializers(seed=None):
    """Keyword arguments for keras.layers.{layer}: the three rule initializers and LAYER_OPTIONS."""
    names = {{"kernel": "kernel_initializer", "recurrent_kernel": "recurrent_initializer", "bias": "bias_initializer"}}
    shared = {{}}
    return {{names[p]: RuleInitializer(p, seed, shared) for p in PARTS}} | LAYER_OPTIONS


def make_layer(units, seed=None, **kwargs):
    """keras.layers.{layer}(units, **kwargs) initialized by the rule; refuses options that change the cell."""
    taken = [k for k in kwargs if k.endswith("_initializer")]
    if taken:
        raise ValueError(f"{{', '.join(taken)}} would replace the rule's initializers; leave them out")
    _check_options(kwargs)
    return getattr(keras.layers, LAYERS[0])(units, **kwargs, **initializers(seed))


def check_layer(layer):
    """Raise ValueError unless ``layer`` (keras.layers.{layer} or {cell}) computes the rule's cell; returns it."""
    if type(layer).__name__ not in LAYERS:
        raise ValueError(f"this init rule is for cell {{CELL}} (keras.layers.{{' or '.join(LAYERS)}}); got "
                         f"{{type(layer).__name__}}. Export the rule of the cell your layer computes (symmft export)")
    _check_options(layer.get_config())
    return layer


def _check_options(options):
    for key, want in ACTIVATIONS.items():
        got = options.get(key, want)
        got = got if isinstance(got, str) else getattr(got, "__name__", repr(got))
        if got != want:
            raise ValueError(f"{{key}}={{got!r}}: the rule's cell {{CELL}} uses {{want}} (a {{got}} layer computes "
                             f"another function with another mean-field theory); use {{key}}={{want!r}}")
    for key, want in LAYER_OPTIONS.items():
        if key in options and options[key] != want:
            why = ("it would add 1 to the forget bias on top of the rule's mu_f" if key == "unit_forget_bias"
                   else "reset_after=True is cell gru, reset_after=False cell gru_reset_before")
            raise ValueError(f"{{key}}={{options[key]!r}} does not fit the rule of cell {{CELL}}: {{why}}; use {{key}}={{want!r}}")
    if not options.get("use_bias", True) and any(_has_bias(k) for row in BIAS for k in row):
        raise ValueError("use_bias=False cannot hold the rule's biases (nonzero mean, variance or chrono term); "
                         "use use_bias=True")


def _has_bias(k):
    return k is not None and (MAPS[k]["mu"] != 0 or MAPS[k]["rho2"] != 0 or MAPS[k]["beta"] != 0)


def draw(part, shape, rng):
    """The rule's values for a ``part`` of the given Keras shape (float64 numpy)."""
    blocks = {{"kernel": KERNEL, "recurrent_kernel": RECURRENT_KERNEL, "bias": BIAS[0]}}[part]
    units, rest = divmod(shape[-1], len(blocks))
    bias_shape = (len(BIAS), shape[-1]) if len(BIAS) > 1 else (shape[-1],)
    if rest or (part == "bias" and shape != bias_shape):
        raise ValueError(f"{{part}} of shape {{shape}} does not fit the rule's layout (bias rows {{BIAS}}, "
                         f"{{len(blocks)}} gate blocks): check LAYER_OPTIONS {{LAYER_OPTIONS}} (unit_forget_bias=True "
                         "splits the LSTM bias; reset_after changes the GRU bias shape)")
    if SIZES is not None and part == "kernel" and (units, shape[0]) != SIZES:
        raise ValueError(f"this baseline rule was made for units {{SIZES[0]}}, input size {{SIZES[1]}}; the layer "
                         f"has {{units}}, {{shape[0]}}: its variances depend on them, regenerate it for your sizes")
    if part == "kernel":
        m = shape[0]
        return np.concatenate([np.sqrt(MAPS[k]["sigma2"] / m) * rng.standard_normal((m, units)) for k in KERNEL], 1)
    if part == "recurrent_kernel":
        return np.concatenate([_recurrent(units, MAPS[k]["nu2"], rng) for k in RECURRENT_KERNEL], 1)
    chrono = np.log(rng.uniform(1.0, CHRONO_LENGTH - 1.0, units)) if CHRONO_LENGTH >= 3 else None
    values = np.stack([np.concatenate([_bias(k, units, chrono, rng) for k in row]) for row in BIAS])
    return values.reshape(shape)


{numpy_draws}'''


def render(spec) -> str:
    """Source of the Keras module for ``spec`` (an ``ExportSpec`` of a cell in ``LAYOUTS``)."""
    lay = LAYOUTS[spec.cell]
    layer, cell = lay["layers"]
    opts = ", ".join(f"{k}={v!r}" for k, v in lay["options"].items()) or "no options"
    usage = USAGE.format(module=f"{spec.cell}_init", layer=layer, options=opts)
    title = f"Initialize Keras 3 {layer} / {cell} by a symmft init rule for cell {spec.cell}."
    code = CODE.format(constants=constants(spec), numpy_draws=NUMPY_DRAWS, layer=layer, cell=cell, layers=tuple_literal(lay["layers"]),
                       kernel=tuple_literal(lay["kernel"]), recurrent_kernel=tuple_literal(lay["recurrent_kernel"]),
                       bias=repr(lay["bias"]),
                       options=repr(lay["options"]), activations=repr(lay["activations"]))
    return header(spec, title, usage) + code
