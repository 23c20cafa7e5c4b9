"""LSTM (Hochreiter & Schmidhuber 1997; gates as in PyTorch and Keras): memory c, output h.

    i, f, o = sigmoid(u^i), sigmoid(u^f), sigmoid(u^o);  g = tanh(u^g)
    c' = f*c + i*g;  h' = o*tanh(c')
"""

STATE = ("c", "h")


def step(x, c, h, ops):
    i = ops.sigmoid(ops.affine("i", x, h))
    f = ops.sigmoid(ops.affine("f", x, h))
    g = ops.tanh(ops.affine("g", x, h))
    o = ops.sigmoid(ops.affine("o", x, h))
    c = f * c + i * g
    return c, o * ops.tanh(c)
