"""Vanilla (Elman) tanh RNN: h' = tanh(W x + U h + b)."""

STATE = ("h",)


def step(x, h, ops):
    return ops.tanh(ops.affine("h", x, h))
