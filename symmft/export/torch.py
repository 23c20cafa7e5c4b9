"""PyTorch exporter: an ``init_(module, generator=None)`` for ``nn.LSTM``/``nn.GRU``/``nn.RNN`` (every layer and
direction) and their ``*Cell`` versions, drawing in place with ``torch`` only.

PyTorch fuses a layer's gates into row blocks of ``weight_ih`` (G n, m), ``weight_hh`` (G n, n), ``bias_ih`` and
``bias_hh`` (G n), and adds the two biases. Each map's bias therefore goes into one of the two vectors and the
other's block is zero, so their sum has the rule's law; the GRU's n gate is the exception that is not redundant:
``bias_ih``'s n block is map n's bias (b_in) and ``bias_hh``'s is map hn's (b_hn, multiplied by r).
"""

from __future__ import annotations

from symmft.export.emit import constants, header, tuple_literal

FRAMEWORK = "PyTorch"

#: cell -> layers computing it, and the map each row block holds (None: a zero bias block)
LAYOUTS = {
    "lstm": {"layers": ("LSTM", "LSTMCell"), "weight_ih": ("i", "f", "g", "o"), "weight_hh": ("i", "f", "g", "o"),
             "bias_ih": ("i", "f", "g", "o"), "bias_hh": (None, None, None, None)},
    "gru": {"layers": ("GRU", "GRUCell"), "weight_ih": ("r", "z", "n"), "weight_hh": ("r", "z", "hn"),
            "bias_ih": ("r", "z", "n"), "bias_hh": (None, None, "hn")},
    "vanilla_rnn": {"layers": ("RNN", "RNNCell"), "weight_ih": ("h",), "weight_hh": ("h",),
                    "bias_ih": ("h",), "bias_hh": (None,)},
}
REFUSED = {
    "gru_reset_before": "nn.GRU and nn.GRUCell apply the reset gate after the recurrent matmul (cell gru); a "
                        "reset-before rule describes another function (derive one for gru, or use Keras "
                        "GRU(reset_after=False))",
    "minimal_rnn": "PyTorch has no minimalRNN layer",
}

USAGE = """import torch
from {module} import init_
layer = torch.nn.{layer}(input_size, hidden_size)   # any num_layers, bidirectional; or nn.{cell}
init_(layer, generator=torch.Generator().manual_seed(0))   # in place; checks the layer computes cell {cell_name}"""

CODE = '''
import math

import torch

{constants}
# PyTorch's fused layout: the map whose parameters each row block holds, in PyTorch's gate order.
# The effective bias is bias_ih + bias_hh: a map's whole bias law goes into one of them, the other block is zero.
LAYERS = {layers}
WEIGHT_IH = {weight_ih}
WEIGHT_HH = {weight_hh}
BIAS_IH = {bias_ih}
BIAS_HH = {bias_hh}


def init_(module, generator=None):
    """Initialize ``module`` (torch.nn.{layer0} or {layer1}) in place by the rule; returns it.

    Every layer and direction gets its own draw. ``generator``: a torch.Generator for reproducible draws.
    Raises ValueError when the module does not compute the rule's cell."""
    _check(module)
    with torch.no_grad():
        for suffix in _suffixes(module):
            n = getattr(module, "weight_hh" + suffix).shape[1]
            chrono = _chrono(n, generator)
            w = getattr(module, "weight_ih" + suffix)
            w.copy_(torch.cat([_gaussian((n, w.shape[1]), MAPS[k]["sigma2"] / w.shape[1], generator)
                               for k in WEIGHT_IH]))
            getattr(module, "weight_hh" + suffix).copy_(torch.cat([_recurrent(n, MAPS[k]["nu2"], generator)
                                                                   for k in WEIGHT_HH]))
            if getattr(module, "bias_ih" + suffix, None) is not None:
                getattr(module, "bias_ih" + suffix).copy_(torch.cat([_bias(k, n, chrono, generator) for k in BIAS_IH]))
                getattr(module, "bias_hh" + suffix).copy_(torch.cat([_bias(k, n, chrono, generator) for k in BIAS_HH]))
    return module


def _check(module):
    kind = type(module).__name__
    if not any(isinstance(module, getattr(torch.nn, name)) for name in LAYERS):
        raise ValueError(f"this init rule is for cell {{CELL}} (torch.nn.{{' or torch.nn.'.join(LAYERS)}}); got {{kind}}. "
                         "Export the rule of the cell your layer computes (symmft export)")
    if getattr(module, "nonlinearity", "tanh") != "tanh":
        raise ValueError(f"{{kind}}(nonlinearity={{module.nonlinearity!r}}) computes relu(W x + U h + b), not the "
                         "rule's tanh cell; use nonlinearity='tanh'")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"{{kind}}(proj_size={{module.proj_size}}) feeds a projected h back (h = W_hr (o*tanh(c))): "
                         "another cell than the rule's; use proj_size=0")
    if not getattr(module, "bias", True) and any(_has_bias(k) for k in BIAS_IH + BIAS_HH):
        raise ValueError(f"{{kind}}(bias=False) cannot hold the rule's biases (nonzero mean, variance or chrono "
                         "term); use bias=True")
    if SIZES is not None:
        n = module.hidden_size
        m = getattr(module, "input_size", None)
        if (n, m) != SIZES:
            raise ValueError(f"this baseline rule was made for hidden size {{SIZES[0]}}, input size {{SIZES[1]}}; the "
                             f"layer has {{n}}, {{m}}: its variances depend on them, regenerate it for your sizes")


def _suffixes(module):
    if not hasattr(module, "num_layers"):  # a *Cell
        return [""]
    directions = ["", "_reverse"] if module.bidirectional else [""]
    return [f"_l{{k}}{{d}}" for k in range(module.num_layers) for d in directions]


def _has_bias(k):
    return k is not None and (MAPS[k]["mu"] != 0 or MAPS[k]["rho2"] != 0 or MAPS[k]["beta"] != 0)


def _gaussian(shape, variance, generator):
    return math.sqrt(variance) * torch.randn(shape, generator=generator, dtype=torch.float64)


def _recurrent(n, nu2, generator):
    """One n x n gate block: sqrt(nu2) * Haar-orthogonal (per block, never over the fused matrix), or N(0, nu2/n)."""
    if WEIGHTS == "gaussian":
        return _gaussian((n, n), nu2 / n, generator)
    q, r = torch.linalg.qr(torch.randn((n, n), generator=generator, dtype=torch.float64))
    return math.sqrt(nu2) * q * torch.sign(torch.diagonal(r))  # the sign fix makes q Haar-distributed


def _chrono(n, generator):
    """L = log U, U ~ Uniform[1, CHRONO_LENGTH - 1], one per unit, shared by every map of this layer."""
    if CHRONO_LENGTH < 3:
        return None
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.log(1 + (CHRONO_LENGTH - 2) * u)


def _bias(k, n, chrono, generator):
    if k is None:
        return torch.zeros(n, dtype=torch.float64)
    m = MAPS[k]
    b = m["mu"] + _gaussian((n,), m["rho2"], generator)
    return b + m["beta"] * chrono if m["beta"] else b
'''


def render(spec) -> str:
    """Source of the PyTorch module for ``spec`` (an ``ExportSpec`` of a cell in ``LAYOUTS``)."""
    lay = LAYOUTS[spec.cell]
    layer, cell = lay["layers"]
    usage = USAGE.format(module=f"{spec.cell}_init", layer=layer, cell=cell, cell_name=spec.cell)
    title = f"Initialize PyTorch nn.{layer} / nn.{cell} by a symmft init rule for cell {spec.cell}."
    code = CODE.format(constants=constants(spec), layers=tuple_literal(lay["layers"]), layer0=layer, layer1=cell,
                       **{k: tuple_literal(lay[k]) for k in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")})
    return header(spec, title, usage) + code
