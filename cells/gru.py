"""GRU as in PyTorch, cuDNN and Keras reset_after=True: the reset gate acts after the recurrent matmul,
which carries its own bias b_hn (the affine map "hn").

    r, z = sigmoid(u^r), sigmoid(u^z)
    n = tanh(W_n x + b_n + r*(U_hn h + b_hn))
    h' = (1 - z)*n + z*h
"""

STATE = ("h",)


def step(x, h, ops):
    r = ops.sigmoid(ops.affine("r", x, h))
    z = ops.sigmoid(ops.affine("z", x, h))
    n = ops.tanh(ops.affine("n", x) + r * ops.affine("hn", h))
    return (1 - z) * n + z * h
