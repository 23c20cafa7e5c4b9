# A user's cell, not shipped (JANET-like: one forget gate, no output gate, one state): the "any cell the core
# accepts" row of the tied-theory matrix (tests/tied_cells.py).
STATE = ("h",)


def step(x, h, ops):
    f = ops.sigmoid(ops.affine("f", x, h))
    g = ops.tanh(ops.affine("g", x, h))
    return f * h + (1 - f) * g
