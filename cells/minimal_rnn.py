"""minimalRNN (Chen, Pennington & Schoenholz 2018).

    z = tanh(W_z x + b_z)
    u = sigmoid(U_h h + U_z z + b_u)
    h' = u*h + (1 - u)*z
"""

STATE = ("h",)


def step(x, h, ops):
    z = ops.tanh(ops.affine("z", x))
    u = ops.sigmoid(ops.affine("u", h, z=z))
    return u * h + (1 - u) * z
