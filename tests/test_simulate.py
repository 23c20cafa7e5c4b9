"""The finite-width simulator against independent truth: Gaussian integrals by scipy quadrature, exact matrix
identities, and reproducibility. From the zero state (or with no recurrence) every pre-activation at step 1 is
exactly Gaussian, so its moments are 1-D/2-D Gaussian integrals, whether the weights are tied or not."""

from __future__ import annotations

import ast
import json
import math
from pathlib import Path

import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import integrate
from scipy.special import erf, expit

from symmft import available_cells, load_cell, HyperparameterError, Network, simulate

# Tolerances, each with its reason.
#: Simulation vs integral: 5 standard errors -> a correct simulator fails with probability < 1e-6 per check
#: (the seeds are fixed, so the tests are deterministic; this sizes the margin honestly).
N_SE = 5
#: Exact identities in floating point (orthogonality of a QR factor at n <= 500).
EXACT = 1e-10

WIDTH, BATCH = 2000, 8
BOUND = 12.0  # Gaussian integrals over [-12, 12] standard deviations: the tails weigh < 1e-32


def gauss1(f, mean: float, var: float) -> float:
    """E[f(u)], u ~ N(mean, var)."""
    s = math.sqrt(var)
    return integrate.quad(lambda z: f(mean + s * z) * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
                          -BOUND, BOUND, epsabs=1e-13, epsrel=1e-11, limit=200)[0]


def gauss2(f, mean: float, var: float, cov: float) -> float:
    """E[f(u, v)], (u, v) Gaussian with common mean and variance and covariance ``cov``."""
    s = math.sqrt(var)
    k = cov / s
    r = math.sqrt(max(var - k * k, 0.0))
    phi = lambda z: math.exp(-z * z / 2) / math.sqrt(2 * math.pi)  # noqa: E731
    return integrate.dblquad(lambda z2, z1: f(mean + s * z1, mean + k * z1 + r * z2) * phi(z1) * phi(z2),
                             -BOUND, BOUND, -BOUND, BOUND, epsabs=1e-11, epsrel=1e-9)[0]


NODES, NODE_WEIGHTS = hermegauss(16)  # Gauss-Hermite, for error bars only (the truths above use quad)
NODE_WEIGHTS = NODE_WEIGHTS / NODE_WEIGHTS.sum()


def pair_of(gram, z0, z1):
    """Gaussian pair (a, b) with 2x2 covariance ``gram`` built from independent standard normals z0, z1."""
    k = gram[0, 1] / math.sqrt(gram[0, 0])
    return math.sqrt(gram[0, 0]) * z0, k * z0 + math.sqrt(max(gram[1, 1] - k * k, 0.0)) * z1


def tolerance(F, sources, n_bias: int, n_column: int, *, n: int = WIDTH, batch: int = BATCH) -> float:
    """N_SE standard errors of a step-1 average of F over n units x ``batch`` column pairs.

    ``F(grams, b, z)``: the averaged quantity of one unit and column pair, given standard normal noises ``b``
    (n_bias, fixed per unit: its biases) and ``z`` (n_column, fresh per column), and the per-coordinate 2x2
    second-moment matrices ``grams`` of the random vectors the weights multiply (x^a, x^b and, if drawn, the
    initial state). ``sources`` lists each nominal gram with its dimension. Error sources, in quadrature:
    (i) units are independent (own weight rows and biases); one unit's average over its columns has variance
    Var_b E[F|b] + E_b Var[F|b] / batch, columns seeing independent vectors; (ii) each unit's weight-row norm
    fluctuates by a relative sqrt(2/dim), scaling its gram; (iii) every column's empirical gram (shared by all
    units: the common mode) is Wishart, Cov(G_ij, G_kl) = (G_ik G_jl + G_il G_jk)/dim, which moves E[F]
    along each eigendirection of that covariance (delta method; derivatives by central differences).
    """
    axes = np.meshgrid(*[NODES] * (n_bias + n_column), indexing="ij")
    weight = np.ones_like(axes[0])
    for k in range(len(axes)):
        weight = weight * NODE_WEIGHTS.reshape([-1 if j == k else 1 for j in range(len(axes))])
    grams = [np.asarray(g, dtype=float) for g, _ in sources]

    def mean(s=None, direction=None):
        moved = [g + direction if i == s else g for i, g in enumerate(grams)]
        return float((weight * F(moved, axes[:n_bias], axes[n_bias:])).sum())

    def slope(s, direction):
        eps = 1e-3 / np.abs(direction).max()
        return (mean(s, eps * direction) - mean(s, -eps * direction)) / (2 * eps)

    values = F(grams, axes[:n_bias], axes[n_bias:])
    columns = tuple(range(n_bias, n_bias + n_column))
    bias_weight = weight.sum(axis=columns)
    conditional = (weight * values).sum(axis=columns) / bias_weight  # E[F | b]
    between = (bias_weight * conditional**2).sum() - float((weight * values).sum()) ** 2
    within = (weight * values**2).sum() - (bias_weight * conditional**2).sum()
    var = (between + within / batch) / n
    for s, (g, dim) in enumerate(zip(grams, (d for _, d in sources))):
        var += 2 / dim * slope(s, g) ** 2 / n  # (ii)
        entries = [(0, 0), (1, 1), (0, 1)]
        wishart = np.array([[g[i, k] * g[j, l] + g[i, l] * g[j, k] for k, l in entries] for i, j in entries]) / dim
        eigenvalues, eigenvectors = np.linalg.eigh(wishart)
        for lam, v in zip(eigenvalues, eigenvectors.T):
            if lam > 1e-12 * eigenvalues.max():
                var += lam * slope(s, np.array([[v[0], v[2]], [v[2], v[1]]])) ** 2 / batch  # (iii)
    return N_SE * math.sqrt(var)


def gram(q: float, c: float) -> np.ndarray:
    return q * np.array([[1.0, c], [c, 1.0]])


def tanh2(u):
    return math.tanh(u) ** 2


# ---------------------------------------------------------------- step-1 moments vs Gaussian integrals


@pytest.mark.parametrize("tied, weights", [(False, "gaussian"), (True, "gaussian"), (False, "orthogonal")])
def test_vanilla_second_moment_without_recurrence_matches_gaussian_integral(tied, weights):
    hp = {"sigma2_h": 1.5, "nu2_h": 0.0, "mu_h": 0.3, "rho2_h": 0.2, "q_x": 0.8}
    r = simulate("vanilla_rnn", hp, width=WIDTH, steps=1, batch=BATCH, tied=tied, weights=weights, seed=3)
    h = r.states["h"]

    def u(grams, b, z):
        return 0.3 + math.sqrt(0.2) * b[0] + np.sqrt(1.5 * grams[0][0, 0]) * z[0]

    sources = [(gram(0.8, 1.0), WIDTH)]
    assert abs(h.second_moment[1] - gauss1(tanh2, 0.3, 1.5 * 0.8 + 0.2)) < tolerance(
        lambda *a: np.tanh(u(*a)) ** 2, sources, 1, 1)
    assert abs(h.mean[1] - gauss1(math.tanh, 0.3, 1.5 * 0.8 + 0.2)) < tolerance(
        lambda *a: np.tanh(u(*a)), sources, 1, 1)
    assert h.correlation[1] == pytest.approx(1.0, abs=1e-12)  # c_x = 1 and no recurrence: identical sequences


def test_vanilla_cross_moment_for_correlated_inputs_matches_2d_gaussian_integral():
    """Input dimension m != width n, so the input matrices must scale by 1/m, not 1/n."""
    m, c_x = 700, 0.6
    hp = {"sigma2_h": 2.0, "nu2_h": 0.0, "mu_h": -0.2, "rho2_h": 0.1, "c_x": c_x}
    r = simulate("vanilla_rnn", hp, width=WIDTH, input_dim=m, steps=1, batch=BATCH, seed=4)
    h = r.states["h"]

    def ha_hb(grams, b, z):
        a, b_ = pair_of(2.0 * grams[0], z[0], z[1])
        bias = -0.2 + math.sqrt(0.1) * b[0]
        return np.tanh(bias + a), np.tanh(bias + b_)

    sources = [(gram(1.0, c_x), m)]
    cross = gauss2(lambda u, v: math.tanh(u) * math.tanh(v), -0.2, 2.1, 2.0 * c_x + 0.1)
    assert abs(h.cross_moment[1] - cross) < tolerance(lambda *a: np.prod(ha_hb(*a), axis=0), sources, 1, 2)
    q = gauss1(tanh2, -0.2, 2.1)
    assert abs(h.second_moment[1] - q) < tolerance(lambda *a: ha_hb(*a)[0] ** 2, sources, 1, 2)
    assert h.correlation[1] == pytest.approx(h.cross_moment[1] / h.second_moment[1], rel=1e-12)
    # The ratio of two estimates: about 3x the cross moment's relative error (measured over 40 seeds: sd 0.008).
    assert abs(h.correlation[1] - cross / q) < 0.05


def test_lstm_memory_after_one_step_from_zero_has_mean_Ei_Eg():
    hp = {"mu_i": -0.3, "mu_g": 0.5, "rho2_g": 0.1, "sigma2_o": 0.5, "mu_o": 1.0}
    r = simulate("lstm", hp, width=WIDTH, steps=1, batch=4, seed=5)
    Ei, Eg = gauss1(expit, -0.3, 1.0), gauss1(math.tanh, 0.5, 1.1)
    Ei2, Eg2 = gauss1(lambda u: expit(u) ** 2, -0.3, 1.0), gauss1(tanh2, 0.5, 1.1)

    def c(grams, b, z):  # z: input parts of u^i, u^g, u^o (independent rows, one x); b: bias noise of g
        s = np.sqrt(grams[0][0, 0])
        return expit(-0.3 + s * z[0]) * np.tanh(0.5 + math.sqrt(0.1) * b[0] + s * z[1])

    def h(grams, b, z):
        return expit(1.0 + np.sqrt(0.5 * grams[0][0, 0]) * z[2]) * np.tanh(c(grams, b, z))

    sources = [(gram(1.0, 1.0), WIDTH)]
    cs = r.states["c"]
    assert abs(cs.mean[1] - Ei * Eg) < tolerance(c, sources, 1, 3, batch=4)
    assert abs(cs.second_moment[1] - Ei2 * Eg2) < tolerance(lambda *a: c(*a) ** 2, sources, 1, 3, batch=4)
    # h = o tanh(i g): E[o^2] E[tanh(i g)^2], i and g independent -> a 2-D integral over their two Gaussians.
    Eo2 = gauss1(lambda u: expit(u) ** 2, 1.0, 0.5)
    E_tanh_c2 = integrate.dblquad(
        lambda zg, zi: tanh2(expit(-0.3 + zi) * math.tanh(0.5 + math.sqrt(1.1) * zg))
        * math.exp(-(zi * zi + zg * zg) / 2) / (2 * math.pi), -BOUND, BOUND, -BOUND, BOUND)[0]
    assert abs(r.states["h"].second_moment[1] - Eo2 * E_tanh_c2) < tolerance(
        lambda *a: h(*a) ** 2, sources, 1, 3, batch=4)


def test_gaussian_initial_state_sets_moments_and_drives_step_one_correlation():
    """c_x = 1 with a partly decorrelated initial state: step 1 is a 2-D integral with the recurrent covariance."""
    q0, c0, sigma2, nu2, rho2 = 0.6, 0.3, 0.5, 1.2, 0.1
    hp = {"sigma2_h": sigma2, "nu2_h": nu2, "rho2_h": rho2}
    r = simulate("vanilla_rnn", hp, width=WIDTH, steps=1, batch=BATCH, seed=6, initial={"h": (q0, c0)})
    h = r.states["h"]
    se0 = math.sqrt(2 * q0**2 / (WIDTH * BATCH))  # Var[z^2] = 2 for a Gaussian coordinate
    assert abs(h.second_moment[0] - q0) < N_SE * se0
    assert abs(h.cross_moment[0] - q0 * c0) < N_SE * se0

    def ha_hb(grams, b, z):  # u = W x + U h_0 + b: two independent Gaussian pairs plus the unit's bias
        xa, xb = pair_of(sigma2 * grams[0], z[0], z[1])
        ra, rb = pair_of(nu2 * grams[1], z[2], z[3])
        bias = math.sqrt(rho2) * b[0]
        return np.tanh(bias + xa + ra), np.tanh(bias + xb + rb)

    sources = [(gram(1.0, 1.0), WIDTH), (gram(q0, c0), WIDTH)]  # the input, then h_0
    var, cov = sigma2 + nu2 * q0 + rho2, sigma2 + nu2 * q0 * c0 + rho2
    cross = gauss2(lambda u, v: math.tanh(u) * math.tanh(v), 0.0, var, cov)
    assert abs(h.cross_moment[1] - cross) < tolerance(lambda *a: np.prod(ha_hb(*a), axis=0), sources, 1, 4)
    assert h.correlation[1] < 0.9  # identical inputs alone would give correlation 1


def test_erf_cell_cross_moment_matches_arcsine_closed_form(tmp_path):
    """ops.erf, against E[erf(u) erf(v)] = (2/pi) arcsin(2 cov / (1 + 2 var)) for zero-mean (u, v)."""
    path = tmp_path / "erf_rnn.py"
    path.write_text('STATE = ("h",)\n\n\ndef step(x, h, ops):\n    return ops.erf(ops.affine("h", x, h))\n')
    c_x, rho2 = 0.4, 0.2
    r = simulate(path, {"nu2_h": 0.0, "rho2_h": rho2, "c_x": c_x}, width=WIDTH, steps=1, batch=BATCH, seed=8)

    def product(grams, b, z):
        xa, xb = pair_of(grams[0], z[0], z[1])
        return erf(math.sqrt(rho2) * b[0] + xa) * erf(math.sqrt(rho2) * b[0] + xb)

    exact = 2 / math.pi * math.asin(2 * (c_x + rho2) / (1 + 2 * (1 + rho2)))
    assert abs(r.states["h"].cross_moment[1] - exact) < tolerance(product, [(gram(1.0, c_x), WIDTH)], 1, 2)


# ---------------------------------------------------------------- tied vs untied, weights, seeds


def test_untied_redraws_biases_and_tied_keeps_them():
    # No weights at all (sigma2 = nu2 = 0): h_t = tanh(b) is constant in time iff the bias is not redrawn.
    hp = {"sigma2_h": 0.0, "nu2_h": 0.0, "rho2_h": 1.0}
    tied = simulate("vanilla_rnn", hp, width=500, steps=2, tied=True).states["h"].second_moment
    untied = simulate("vanilla_rnn", hp, width=500, steps=2, tied=False).states["h"].second_moment
    assert tied[1] == tied[2] and untied[1] != untied[2]


@pytest.mark.parametrize("name, weights, hp", [
    ("gru_reset_before", "gaussian", {"nu2_n": 2.0, "nu2_z": 1.5, "mu_z": 0.5, "rho2_n": 0.3, "c_x": 0.5}),
    ("vanilla_rnn", "orthogonal", {"nu2_h": 2.0, "sigma2_h": 0.5, "rho2_h": 0.3, "c_x": 0.5}),  # one QR a step
])
def test_untied_products_have_the_law_of_fresh_explicit_matrices(name, weights, hp):
    """simulate(tied=False) never forms its matrices (it samples M v from the gram of v); a fresh explicit
    Network per step is the definition. Compare Q and Q^ab after 3 recurrent steps over independent replicates."""
    cell, n, batch, steps, replicates = load_cell(name), 200, 4, 3, 16
    sampled = np.array([[simulate(cell, hp, width=n, steps=steps, batch=batch, weights=weights, seed=s)
                         .states["h"].final[k] for k in ("second_moment", "cross_moment")] for s in range(replicates)])
    explicit = []
    rng = np.random.default_rng(99)
    for _ in range(replicates):
        h = np.zeros((n, 2 * batch))
        for _ in range(steps):
            z1, z2 = rng.standard_normal((n, batch)), rng.standard_normal((n, batch))
            x = np.concatenate([z1, 0.5 * z1 + math.sqrt(0.75) * z2], axis=1)
            h = Network(cell, hp, width=n, weights=weights, rng=rng).step(x, {"h": h})["h"]
        explicit.append([(h * h).mean(), (h[:, :batch] * h[:, batch:]).mean()])
    explicit = np.array(explicit)
    se = np.sqrt(sampled.var(axis=0, ddof=1) / replicates + explicit.var(axis=0, ddof=1) / replicates)
    assert np.all(np.abs(sampled.mean(axis=0) - explicit.mean(axis=0)) < N_SE * se)


def test_orthogonal_recurrent_matrix_is_scaled_haar_and_input_matrix_stays_gaussian():
    n, nu2, sigma2 = 500, 0.7, 1.3
    net = Network("vanilla_rnn", {"nu2_h": nu2, "sigma2_h": sigma2}, width=n, weights="orthogonal", rng=0)
    U, W = net.matrices["h", "h"], net.matrices["h", "x"]
    assert np.allclose(U @ U.T, nu2 * np.eye(n), atol=EXACT)
    # Haar: tr(O) -> N(0, 1) (Diaconis-Shahshahani); QR without the sign fix gives about -12 at n = 500.
    assert abs(np.trace(U) / math.sqrt(nu2)) < N_SE
    entry_var = sigma2 / n  # mean of n*m squared N(0, sigma2/m) entries: SE entry_var * sqrt(2/(n m))
    assert abs((W**2).mean() - entry_var) < N_SE * entry_var * math.sqrt(2) / n
    assert not np.allclose(W @ W.T, sigma2 * np.eye(n), atol=0.1)


def test_gaussian_weights_have_the_hyperparameter_variances_matched_by_vector():
    """minimalRNN's map u takes h positionally and z by keyword: each gets its own nu2_u_*."""
    n = 400
    net = Network("minimal_rnn", {"nu2_u_h": 0.0, "nu2_u_z": 2.0, "mu_u": 1.5, "rho2_u": 0.25}, width=n,
                  input_dim=300, rng=1)
    assert not net.matrices["u", "h"].any()
    assert abs((net.matrices["u", "z"] ** 2).mean() - 2.0 / n) < N_SE * (2.0 / n) * math.sqrt(2) / n
    assert net.matrices["z", "x"].shape == (n, 300)
    b = net.biases["u"]
    assert abs(b.mean() - 1.5) < N_SE * 0.5 / math.sqrt(n)


def test_same_seed_reproduces_exactly_and_another_seed_differs():
    kw = dict(width=300, steps=4, batch=2, tied=True)
    one, two = simulate("gru", {"c_x": 0.5}, seed=11, **kw), simulate("gru", {"c_x": 0.5}, seed=11, **kw)
    assert one.to_json() == two.to_json()
    other = simulate("gru", {"c_x": 0.5}, seed=12, **kw)
    assert other.states["h"].second_moment[-1] != one.states["h"].second_moment[-1]


@pytest.mark.parametrize("name", available_cells())
def test_every_builtin_cell_simulates_and_serializes(name):
    cell = load_cell(name)
    r = simulate(cell, {"c_x": 0.5}, width=200, steps=3, batch=2, tied=True, weights="orthogonal")
    out = json.loads(json.dumps(r.to_json()))
    assert set(out) >= {"hyperparameters", "width", "steps", "tied", "weights", "seed", "states"}
    assert set(out["states"]) == set(cell.states)
    for s in cell.states:
        tr = out["states"][s]
        assert len(tr["second_moment"]) == 4 and tr["correlation"][0] is None  # zero state: c undefined
        assert all(np.isfinite(tr[k][-1]) for k in ("mean", "second_moment", "cross_moment", "correlation"))
        assert tr["final"]["second_moment"] == tr["second_moment"][-1]


def test_explicit_initial_arrays_are_used():
    n = 100
    a, b = np.linspace(-1, 1, n), np.ones(n)
    r = simulate("vanilla_rnn", width=n, steps=1, batch=3, initial={"h": (a, b)})
    h = r.states["h"]
    assert h.second_moment[0] == pytest.approx((np.mean(a**2) + 1.0) / 2, rel=1e-12)
    assert h.cross_moment[0] == pytest.approx(np.mean(a), abs=1e-12)


def test_simulator_never_imports_the_theory():
    # (tests/test_layering.py also checks everything the network package reaches, transitively)
    import symmft.network.simulate as simulate

    tree = ast.parse(Path(simulate.__file__).read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    imported |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    ours = {m for m in imported if m and m.startswith("symmft")}
    allowed = {"symmft", "symmft.cell.graph", "symmft.cell.trace", "symmft.cell.params", "symmft.backend", "symmft.errors"}
    assert ours <= allowed, ours


# ---------------------------------------------------------------- bad options


@pytest.mark.parametrize("kwargs, match", [
    (dict(width=0), "width"), (dict(width=10.5), "width"), (dict(steps=-1), "steps"), (dict(batch=0), "batch"),
    (dict(weights="haar"), "weights"), (dict(tied="yes"), "tied"), (dict(seed=1.5), "seed"),
    (dict(input_dim=0), "input_dim"), (dict(initial={"c": (1.0, 0.5)}), "initial"),
    (dict(initial={"h": (1.0, 1.5)}), "initial"), (dict(initial={"h": (np.ones(3), np.ones(3))}), "shape"),
    (dict(initial={"h": 1.0}), "pair"),
])
def test_bad_options_raise_errors_naming_the_option(kwargs, match):
    with pytest.raises(HyperparameterError, match=match):
        simulate("vanilla_rnn", width=kwargs.pop("width", 20), steps=kwargs.pop("steps", 1), **kwargs)


def test_bad_hyperparameters_raise_errors_naming_the_parameter():
    with pytest.raises(HyperparameterError, match="nu2_h.*one value"):
        simulate("vanilla_rnn", {"nu2_h": [0.5, 1.0]}, width=20, steps=1)
    with pytest.raises(HyperparameterError, match="nu2_h"):
        simulate("vanilla_rnn", {"nu2_hh": 1.0}, width=20, steps=1)
    with pytest.raises(HyperparameterError, match="c_x"):
        simulate("vanilla_rnn", {"c_x": 1.5}, width=20, steps=1)
