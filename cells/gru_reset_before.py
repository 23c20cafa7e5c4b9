"""GRU of Cho et al. (2014, v3) and Keras reset_after=False: the reset gate acts before the recurrent matmul.

    r, z = sigmoid(u^r), sigmoid(u^z)
    n = tanh(W_n x + U_n (r*h) + b_n)
    h' = (1 - z)*n + z*h
"""

STATE = ("h",)


def step(x, h, ops):
    r = ops.sigmoid(ops.affine("r", x, h))
    z = ops.sigmoid(ops.affine("z", x, h))
    n = ops.tanh(ops.affine("n", x, r * h))
    return (1 - z) * n + z * h
