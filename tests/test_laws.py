"""The law each nonlinearity gets by default (docs/laws.md), against independent truth.

* The reset-after GRU's tanh(u_n + r*u_hn) is Gaussian given r: the default is its exact conditional law. The
  reference below is written from the cell's equations by hand, not from the derivation: nested quadrature, sums
  in float64 -- Gauss-Hermite (nodes and weights from mpmath at 30 digits) over the gate pair (u_r^a, u_r^b),
  whose sigmoid has its poles far from the real axis, and given it a uniform trapezoid over the Gaussian pair
  (X_a, X_b), whose tanh has poles at distance ~pi/(2 sigma) (Gauss-Hermite converges too slowly there: 64 nodes
  left 2e-9); its own convergence is asserted at two node counts.
* A nonlinearity of a non-Gaussian sum (h' = tanh(3 tanh(u) + h)) has no exact quadrature: the default is the
  moment closure, labelled, and at a point a population check reports its error (12% here), held to the untied
  finite network.
* Every built-in cell's nonlinearities get the law the cell file implies.
"""

from __future__ import annotations

import json
import math

import mpmath
import numpy as np
import pytest
from scipy import optimize

from symmft import load_cell, simulate, analyze, analyze_point
from symmft.cli.main import main
from symmft.theory.conditional import EXACT_CONDITIONAL, EXACT_FIXED_POINT, EXACT_GAUSSIAN, MOMENT_CLOSURE

from tolerances import EXACT_LAW, FINITE_WIDTH_BIAS, SIMULATION_SIGMAS


def hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal Gauss-Hermite rule: E[f(z)] = sum w f(z), from mpmath at 30 digits."""
    with mpmath.workdps(30):
        nodes = mpmath.mp.gauss_quadrature(n, "hermite")
        z = np.array([float(mpmath.sqrt(2) * x) for x in nodes[0]])
        w = np.array([float(v / mpmath.sqrt(mpmath.pi)) for v in nodes[1]])
    return z, w


def trapezoid(step: float) -> tuple[np.ndarray, np.ndarray]:
    """Uniform trapezoid for the standard normal on [-9, 9]: error ~exp(-2 pi d / step) for an integrand analytic
    within d of the real axis, plus the tail beyond 9 (2e-19)."""
    z = np.arange(-9.0, 9.0 + step / 2, step)
    w = step * np.exp(-z * z / 2) / math.sqrt(2 * math.pi)
    return z, w / w.sum()


def sigmoid(x):
    return 0.5 * (1 + np.tanh(0.5 * x))


class GruReference:
    """The reset-after GRU's untied map, h' = (1 - z) n + z h, n = tanh(u_n + r u_hn), by hand.

    With r fixed, X = u_n + r u_hn ~ N(mu_n + r mu_hn, V_n + r^2 V_hn); between the two sequences
    Cov(X_a, X_b | r_a, r_b) = K_n + r_a r_b K_hn. z, n and h are independent at a unit (untied weights).
    """

    def __init__(self, h: dict, outer: int, step: float):
        self.h, (self.zo, self.wo), (self.zi, self.wi) = h, hermite(outer), trapezoid(step)

    def gate(self, k, Q, C):  # (mean, variance, cross covariance) of u_k for a gate reading x and h
        h = self.h
        V = h[f"sigma2_{k}"] * h["q_x"] + h[f"nu2_{k}"] * Q + h[f"rho2_{k}"]
        return h[f"mu_{k}"], V, V - h[f"sigma2_{k}"] * h["q_x"] * (1 - h["c_x"]) - h[f"nu2_{k}"] * (Q - C)

    def candidate(self, r, Q):  # law of X given r, one sequence
        h = self.h
        return h["mu_n"] + r * h["mu_hn"], h["sigma2_n"] * h["q_x"] + h["rho2_n"] + r**2 * (h["nu2_hn"] * Q + h["rho2_hn"])

    def one(self, f, m, V):
        return float(np.sum(self.wo * f(m + math.sqrt(V) * self.zo)))

    def pair(self, f, m, V, K):
        rho = K / V
        a = m + math.sqrt(V) * self.zo[:, None]
        b = m + math.sqrt(V) * (rho * self.zo[:, None] + math.sqrt(1 - rho * rho) * self.zo[None, :])
        return float(np.einsum("i,j,ij->", self.wo, self.wo, f(a) * f(b)))

    def n_moments(self, Q):  # E[n], E[n^2]: outer over u_r, inner over X | r
        m_r, V_r, _ = self.gate("r", Q, Q)
        r = sigmoid(m_r + math.sqrt(V_r) * self.zo)
        m, V = self.candidate(r, Q)
        X = m[:, None] + np.sqrt(V)[:, None] * self.zi[None, :]
        return (float(np.einsum("i,j,ij->", self.wo, self.wi, np.tanh(X))),
                float(np.einsum("i,j,ij->", self.wo, self.wi, np.tanh(X) ** 2)))

    def n_cross(self, Q, C):  # E[n_a n_b]: (u_r^a, u_r^b) correlated, then (X_a, X_b | r_a, r_b)
        h = self.h
        m_r, V_r, K_r = self.gate("r", Q, C)
        rho_r = K_r / V_r
        total = 0.0
        for z1, w1 in zip(self.zo, self.wo):  # one row of the outer pair at a time: arrays (outer, inner, inner)
            r_a = sigmoid(m_r + math.sqrt(V_r) * z1)
            r_b = sigmoid(m_r + math.sqrt(V_r) * (rho_r * z1 + math.sqrt(1 - rho_r**2) * self.zo))
            (ma, va), (mb, vb) = self.candidate(r_a, Q), self.candidate(r_b, Q)
            cov = h["sigma2_n"] * h["q_x"] * h["c_x"] + h["rho2_n"] + r_a * r_b * (h["nu2_hn"] * C + h["rho2_hn"])
            rho = np.minimum(cov / np.sqrt(va * vb), 1.0)[:, None, None]  # <= 1 (Cauchy-Schwarz) up to rounding
            xa = ma + math.sqrt(va) * self.zi[None, :, None]
            xb = mb[:, None, None] + np.sqrt(vb)[:, None, None] * (
                rho * self.zi[None, :, None] + np.sqrt(1 - rho**2) * self.zi[None, None, :])
            total += w1 * np.einsum("k,i,j,kij->", self.wo, self.wi, self.wi, np.tanh(xa) * np.tanh(xb))
        return float(total)

    def diagonal(self, M, Q):
        m_z, V_z, _ = self.gate("z", Q, Q)
        Ez, Ez2 = self.one(sigmoid, m_z, V_z), self.one(lambda x: sigmoid(x) ** 2, m_z, V_z)
        En, En2 = self.n_moments(Q)
        return (1 - Ez) * En + Ez * M, (1 - 2 * Ez + Ez2) * En2 + 2 * (Ez - Ez2) * En * M + Ez2 * Q

    def cross(self, M, Q, C):
        m_z, V_z, K_z = self.gate("z", Q, C)
        Ez, Ezz = self.one(sigmoid, m_z, V_z), self.pair(sigmoid, m_z, V_z, K_z)
        En, _ = self.n_moments(Q)
        return (1 - 2 * Ez + Ezz) * self.n_cross(Q, C) + 2 * (Ez - Ezz) * En * M + Ezz * C

    def slope_identical(self, M, Q):
        """lambda = dC'/dC at C = Q with identical inputs (c_x = 1), by Price's theorem written out by hand: with the
        copies coinciding, d/dK of E[f(u_a) g(u_b)] over a gate pair is E[f'(u) g'(u)], so
        dE[n_a n_b]/dC = nu2_r E[sigmoid'(u_r)^2 u_hn^2 tanh'(X)^2] + nu2_hn E[sigmoid(u_r)^2 tanh'(X)^2] and
        dE[z_a z_b]/dC = nu2_z E[sigmoid'(u_z)^2]. Given r, u_hn | X is Gaussian, so E[u_hn^2 | X, r] is closed form."""
        h = self.h
        m_r, V_r, _ = self.gate("r", Q, Q)
        r = sigmoid(m_r + math.sqrt(V_r) * self.zo)
        m, V = self.candidate(r, Q)
        X = m[:, None] + np.sqrt(V)[:, None] * self.zi[None, :]
        dtanh2 = (1 - np.tanh(X) ** 2) ** 2
        V_hn = h["nu2_hn"] * Q + h["rho2_hn"]
        mean_hn = h["mu_hn"] + (r * V_hn / V)[:, None] * (X - m[:, None])  # E[u_hn | X, r]
        var_hn = (V_hn - r**2 * V_hn**2 / V)[:, None]
        A = np.einsum("i,j,ij->", self.wo, self.wi, (r * (1 - r))[:, None] ** 2 * (mean_hn**2 + var_hn) * dtanh2)
        B = np.einsum("i,j,ij->", self.wo, self.wi, (r**2)[:, None] * dtanh2)
        m_z, V_z, _ = self.gate("z", Q, Q)
        Ez, Ezz = self.one(sigmoid, m_z, V_z), self.one(lambda x: sigmoid(x) ** 2, m_z, V_z)
        dEzz = h["nu2_z"] * self.one(lambda x: (sigmoid(x) * (1 - sigmoid(x))) ** 2, m_z, V_z)
        En, En2 = self.n_moments(Q)
        return (1 - 2 * Ez + Ezz) * (h["nu2_r"] * A + h["nu2_hn"] * B) + dEzz * (En2 - 2 * En * M + Q) + Ezz

    def fixed_point(self):
        """(M*, Q*) of the diagonal map."""
        return optimize.fsolve(lambda x: np.subtract(self.diagonal(*x), x), [0.0, 0.5], xtol=1e-15)

    def solve(self):
        """(Q*, c*, lambda): the diagonal fixed point, then C* by bracketing, lambda = dC'/dC by Richardson."""
        M, Q = self.fixed_point()
        C = optimize.brentq(lambda c: self.cross(M, Q, c) - c, 0.0, Q, xtol=1e-15, rtol=1e-15)
        step = 1e-3 * Q
        slope = lambda d: (self.cross(M, Q, C + d) - self.cross(M, Q, C - d)) / (2 * d)  # noqa: E731
        return Q, C / Q, (4 * slope(step / 2) - slope(step)) / 3


def test_gru_exact_conditional_law_matches_independent_nested_quadrature(capsys):
    """`symmft analyze gru --set c_x=0.5` (the default closure) equals the hand-written nested quadrature: Q*, c*
    and lambda to 1e-8 (the moment closure is off by 3e-4 on Q and 1.2e-3 on lambda here)."""
    assert main(["analyze", "gru", "--set", "c_x=0.5", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["status"] == "OK" and got["laws"]["gru.py:15 tanh(u_hn*sigmoid(u_r) + u_n)"] == EXACT_CONDITIONAL
    h = {**got["hyperparameters"]}
    ref = GruReference(h, outer=48, step=0.25)
    Q, c, lam = ref.solve()
    finer = GruReference(h, outer=64, step=0.18)  # the reference itself has converged far below the tolerance
    assert abs(finer.cross(0.0, Q, c * Q) - ref.cross(0.0, Q, c * Q)) < 1e-11
    assert abs(finer.diagonal(0.0, Q)[1] - ref.diagonal(0.0, Q)[1]) < 1e-11
    assert abs(got["fixed_point"]["h"]["second_moment"] - Q) <= EXACT_LAW * Q
    assert abs(got["correlation"]["h"] - c) <= EXACT_LAW
    assert abs(got["lambda"] - lam) <= EXACT_LAW
    gaussian = analyze(load_cell("gru"), {"c_x": 0.5}, closure="gaussian")  # the old default: measurably off
    assert abs(float(gaussian.lambda_) - lam) > 100 * EXACT_LAW


#: Grid points of the reset-after GRU (one per column): a gate bias, the candidate's recurrent variance and bias
#: mean (mu_hn != 0 gives a nonzero state mean M*)
GRID = {"mu_z": np.array([-1.0, 0.5, 2.0]), "nu2_hn": np.array([0.5, 1.5, 2.0]), "mu_hn": np.array([0.0, 0.5, -0.3])}


def test_gru_grid_of_identical_inputs_gets_the_exact_law_by_default():
    """A grid with c_x = 1 (the criteria's, searches' and phase diagrams' inputs) gets the exact conditional law
    by default, labelled so: Q* and lambda at each point equal the hand-written nested quadrature (lambda by Price's
    theorem written out at C = Q) to 1e-8; the moment closure, the old default on grids, is off by more."""
    cell = load_cell("gru")
    got = analyze(cell, GRID)
    assert got.laws["gru.py:15 tanh(u_hn*sigmoid(u_r) + u_n)"] == EXACT_CONDITIONAL
    moment = analyze(cell, GRID, closure="gaussian")
    assert moment.laws["gru.py:15 tanh(u_hn*sigmoid(u_r) + u_n)"] == MOMENT_CLOSURE
    worst_moment = 0.0
    for i in range(3):
        h = {**got.hyperparameters, **{k: float(v[i]) for k, v in GRID.items()}}
        ref = GruReference(h, outer=48, step=0.25)
        M, Q = ref.fixed_point()
        lam = ref.slope_identical(M, Q)
        if i == 2:  # the reference itself has converged far below the tolerance
            assert abs(GruReference(h, outer=64, step=0.18).slope_identical(M, Q) - lam) < 1e-11
        assert int(got.status[i]) == 0 and float(got.correlation["h"][i]) == 1.0
        assert abs(float(got.fixed_point["M_h"][i]) - M) <= EXACT_LAW
        assert abs(float(got.fixed_point["Q_h"][i]) - Q) <= EXACT_LAW * Q
        assert abs(float(got.lambda_[i]) - lam) <= EXACT_LAW
        worst_moment = max(worst_moment, abs(float(moment.lambda_[i]) - lam))
    assert worst_moment > 100 * EXACT_LAW


@pytest.mark.slow
def test_gru_grid_exact_two_sequence_law_matches_independent_nested_quadrature():
    """``closure="exact"`` on a grid with c_x != 1: the full two-sequence law (4 nested levels), vectorized over
    the grid in slices, equals the hand-written reference at each point to 1e-8; a point with c_x = 1 on the same
    grid takes the identical-copies law (one sequence's) for its lambda (~10 s of reference on 2 cores)."""
    cell = load_cell("gru")
    grid = {"c_x": np.array([1.0, 0.5, -0.3]), "mu_z": GRID["mu_z"], "mu_hn": GRID["mu_hn"]}
    got = analyze(cell, grid, closure="exact")
    assert got.laws["gru.py:15 tanh(u_hn*sigmoid(u_r) + u_n)"] == EXACT_CONDITIONAL
    for i in range(3):
        h = {**got.hyperparameters, **{k: float(v[i]) for k, v in grid.items()}}
        ref = GruReference(h, outer=48, step=0.25)
        if h["c_x"] == 1:
            M, Q = ref.fixed_point()
            c, lam = 1.0, ref.slope_identical(M, Q)
        else:
            Q, c, lam = ref.solve()
        assert abs(float(got.fixed_point["Q_h"][i]) - Q) <= EXACT_LAW * Q
        assert abs(float(got.correlation["h"][i]) - c) <= EXACT_LAW
        assert abs(float(got.lambda_[i]) - lam) <= EXACT_LAW


@pytest.mark.slow
def test_gru_grid_chaotic_point_solves_the_full_law_by_default():
    """At c_x = 1 a chaotic point (chi_1 > 1: nu2_hn = 16, mu_z = -3) has c* < 1, solved by the default with the full
    two-sequence law: Q* and c* equal the hand-written reference to 1e-8 (measured 6e-13, 7e-12; the reference needs
    a finer rule at this variance, V_hn ~ 8: step 0.25 leaves 3e-5 on c*, 0.12 and 0.08 agree to 5e-12), where
    the moment closure is off by 0.2 on c* (0.732 against 0.931). ~40 s of reference on 2 cores."""
    cell = load_cell("gru")
    grid = {"nu2_hn": np.array([2.0, 16.0]), "mu_z": np.array([-3.0, -3.0])}
    got = analyze(cell, grid)
    assert got.laws["gru.py:15 tanh(u_hn*sigmoid(u_r) + u_n)"] == EXACT_CONDITIONAL
    assert float(got.extras["chi_1"][1]) > 1 and int(got.status[1]) == 0
    ref = GruReference({**got.hyperparameters, "nu2_hn": 16.0, "mu_z": -3.0}, outer=64, step=0.12)
    M, Q = ref.fixed_point()
    C = optimize.brentq(lambda c: ref.cross(M, Q, c) - c, 0.0, 0.99 * Q, xtol=1e-15, rtol=1e-15)
    assert abs(float(got.fixed_point["Q_h"][1]) - Q) <= EXACT_LAW * Q
    assert abs(float(got.correlation["h"][1]) - C / Q) <= EXACT_LAW
    moment = analyze(cell, grid, closure="gaussian")
    assert abs(float(moment.correlation["h"][1]) - C / Q) > 0.1


def test_one_sequence_law_derivative_by_price_theorem_matches_finite_differences():
    """The diagonal Jacobian of the exact map (EC1's Price's-theorem derivative, one integrand per derivative)
    against central differences of the map itself (Richardson, step 1e-3: truncation ~1e-12, rounding ~1e-13/h)
    at a point with a nonzero mean: 1e-8."""
    from symmft.cell import params
    from symmft.theory.compile import compile_map
    from symmft.theory.meanfield import derive

    cell = load_cell("gru")
    cm = compile_map(derive(cell, "exact"), "numpy")
    h = params.resolve(cell, {"mu_hn": 0.5, "nu2_r": 1.5, "mu_r": 0.3})
    x = np.array([0.05, 0.3])  # (M_h, Q_h)
    _, J = cm.diagonal_jacobian(tuple(x), h)

    def slope(j, step):
        e = np.eye(2)[j] * step
        up, down = (np.array(cm.diagonal(tuple(x + s * e), h), dtype=float) for s in (1, -1))
        return (up - down) / (2 * step)

    for j in range(2):
        fd = (4 * slope(j, 5e-4) - slope(j, 1e-3)) / 3
        assert np.max(np.abs(np.array([J[i][j] for i in range(2)], dtype=float) - fd)) <= 1e-8


SUM_CELL = '''
STATE = ("h",)


def step(x, h, ops):
    return ops.tanh(3 * ops.tanh(ops.affine("u", x, h)) + h)
'''


def test_nonlinearity_of_a_non_gaussian_sum_is_labelled_and_its_error_measured_against_untied_simulation(tmp_path):
    """h' = tanh(3 tanh(u) + h): no exact quadrature. The default at a point is the moment closure (Q* 0.670),
    labelled approximate, with a population check that measures its error (Q* 0.764): the check agrees with the
    untied finite network, so the default plus its reported error does too, and the error is not small."""
    path = tmp_path / "tanh_sum.py"
    path.write_text(SUM_CELL)
    cell = load_cell(str(path))
    point = analyze_point(cell, {"c_x": 0.5})
    law = point.laws["tanh_sum.py:6 tanh(h + 3*tanh(u_u))"]
    assert int(point.status) == 0 and law == MOMENT_CLOSURE and "population check" in point.notes[0]
    width, burn_in = 2000, 30
    sim = simulate(cell, {"c_x": 0.5}, width=width, steps=burn_in + 120, batch=4, seed=11, tied=False)
    series = np.asarray(sim.states["h"].second_moment[burn_in:], dtype=float)
    blocks = np.array([b.mean() for b in np.array_split(series, 6)])
    q_sim, q_se = float(series.mean()), float(blocks.std(ddof=1) / math.sqrt(len(blocks)))
    q, error = float(point.fixed_point["Q_h"]), float(point.extras["moment_closure_error_Q_h"])
    check_se = float(point.extras["standard_error_population_Q_h"])
    assert abs((q - error) - q_sim) <= SIMULATION_SIGMAS * math.hypot(q_se, check_se) + FINITE_WIDTH_BIAS * q / width
    assert error < -0.05 and abs(q - q_sim) > 0.05  # the moment closure really is that far off, and says so
    assert analyze(cell, {"c_x": np.array([0.5, 0.9])}).laws["tanh_sum.py:6 tanh(h + 3*tanh(u_u))"] == MOMENT_CLOSURE


#: The law every built-in cell's nonlinearities get by default, read off the cell files: a function of one affine
#: output is exact; the GRU's candidate is Gaussian given r; the LSTM's tanh(c') holds the previous memory.
EXPECTED = {
    "vanilla_rnn": {"tanh(u_h)": EXACT_GAUSSIAN},
    "minimal_rnn": {"tanh(u_z)": EXACT_GAUSSIAN, "sigmoid(u_u)": EXACT_GAUSSIAN},
    "gru_reset_before": {"sigmoid(u_r)": EXACT_GAUSSIAN, "sigmoid(u_z)": EXACT_GAUSSIAN, "tanh(u_n)": EXACT_GAUSSIAN},
    "gru": {"sigmoid(u_r)": EXACT_GAUSSIAN, "sigmoid(u_z)": EXACT_GAUSSIAN,
            "tanh(u_hn*sigmoid(u_r) + u_n)": EXACT_CONDITIONAL},
    "lstm": {"sigmoid(u_i)": EXACT_GAUSSIAN, "sigmoid(u_f)": EXACT_GAUSSIAN, "tanh(u_g)": EXACT_GAUSSIAN,
             "sigmoid(u_o)": EXACT_GAUSSIAN, "tanh(c*sigmoid(u_f) + tanh(u_g)*sigmoid(u_i))": MOMENT_CLOSURE},
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_builtin_cell_reports_the_law_of_each_nonlinearity(name):
    from symmft.theory.meanfield import derive

    laws = {k.split(" ", 1)[1]: v for k, v in derive(load_cell(name), "exact").nonlinearity_laws.items()}
    assert laws == EXPECTED[name]
    # the default on a grid of identical inputs: exact; with c_x != 1, exact for the fixed point only
    on_grid = analyze(load_cell(name), {"q_x": np.array([0.5, 1.0])}).laws
    assert {k.split(" ", 1)[1]: v for k, v in on_grid.items()} == EXPECTED[name]
    on_grid = analyze(load_cell(name), {"c_x": np.array([0.5, 0.9])}).laws
    on_grid = {k.split(" ", 1)[1]: v for k, v in on_grid.items()}
    assert on_grid == {k: EXACT_FIXED_POINT if v == EXACT_CONDITIONAL else v for k, v in EXPECTED[name].items()}
    partly = {k.split(" ", 1)[1]: v for k, v in derive(load_cell(name), "exact-diagonal").nonlinearity_laws.items()}
    assert partly == {k: EXACT_FIXED_POINT if v == EXACT_CONDITIONAL else v for k, v in EXPECTED[name].items()}


def test_grid_command_labels_the_law_it_used(capsys):
    """`symmft analyze gru --grid ... --json` names the law of each nonlinearity: exact conditional by default on a
    grid of identical inputs, the moment closure under --closure gaussian (kept as an option)."""
    law = "gru.py:15 tanh(u_hn*sigmoid(u_r) + u_n)"
    assert main(["analyze", "gru", "--grid", "mu_z=-1:2:3", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["closure"] == "exact" and got["laws"][law] == EXACT_CONDITIONAL
    assert main(["analyze", "gru", "--grid", "mu_z=-1:2:3", "--closure", "gaussian", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert got["closure"] == "gaussian" and got["laws"][law] == MOMENT_CLOSURE
