"""Does cross-fitting remove the population closure's finite-P bias? (benchmarks/RESULTS.md §7e'').

The tied transient (docs/tied.md §2) lost most of its small-population bias when each half of a part drew its
fields from the *other* half's covariance. This script applies the same idea to the untied population closure
(symmft/theory/population.py), where every unit's law is one average over all P units: with ``--laws crossfit``
the first GROUPS/2 groups draw from the second half's moments and vice versa; ``stratified`` keeps the pooled law
and stratifies the draws (less law noise). Each is swapped in for the run by replacing a ``_PopulationOps`` method
(nothing in the package changes). Truth: scipy quadrature (tests/test_population.py's ``vanilla_truth``), exact
for the vanilla RNN; for the vanilla points the second-order bias of both laws is printed too.

Prints, per (P, law): C*, Q*, lambda deviations from the truth (seeds' mean +- its error, in units of 1/P and
relative), rms reported error / seeds' spread for each, runs OK, CPU seconds per run. Answer: cross-fitting
doubles the bias (RESULTS §7e'').

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/population_crossfit.py --units 1600 3200 --seeds 64
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import ndtri

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from symmft import Status, analyze, analyze_population, load_cell  # noqa: E402
from symmft.cell.params import resolve  # noqa: E402
from symmft.theory import population  # noqa: E402
from test_population import vanilla_truth  # noqa: E402


def _second_crossfit(self, v: np.ndarray) -> tuple:
    """Moments for each half of the groups from the other half's units: (R, 1, GROUPS, 1) each."""
    if id(v) not in self._moments:
        a, b = v[:, 0], v[:, 1]  # (R, GROUPS, units)
        half = population.GROUPS // 2
        out = []
        for x in ((a * a + b * b) / 2, a * b):
            per_half = np.stack([x[:, :half].mean(axis=(-2, -1)), x[:, half:].mean(axis=(-2, -1))], axis=-1)
            other = np.repeat(per_half[:, ::-1], half, axis=-1)  # groups of half 0 get half 1's mean
            out.append(other[:, None, :, None])
        self._moments[id(v)] = (v, *out)
    return self._moments[id(v)][1:]


class _StratifiedNormals:
    """A generator whose (groups, units) standard normals are stratified within each group: unit i of a group gets
    Phi^-1((k_i + U_i) / units), k a random permutation of 0..units-1 -- a Latin hypercube across the calls. The
    empirical moments of a smooth function of one draw then fluctuate far less than 1/sqrt(units) (an experiment:
    less law noise, so less of the bias it causes)."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def standard_normal(self, shape):
        # the jitter U_i matters: the strata's midpoints instead (each draw no longer exactly N(0, 1), their
        # variance short by O(log(units)/units)) put C* +19/P off at the chaotic point (P = 1600, 4 seeds)
        groups, units = shape
        strata = self.rng.permuted(np.broadcast_to(np.arange(units), shape), axis=1)
        return ndtri((strata + self.rng.random(shape)) / units)

    def __getattr__(self, name):  # permutation etc. as the wrapped generator's
        return getattr(self.rng, name)


@contextlib.contextmanager
def law(name: str):
    """Run the population closure with the pooled (package) or the cross-fitted law, or pooled with stratified
    draws."""
    second, init = population._PopulationOps._second, population._PopulationOps.__init__
    if name == "crossfit":
        population._PopulationOps._second = _second_crossfit
    if name == "stratified":
        def stratified_init(self, cell, h, rng, per_group):
            init(self, cell, h, _StratifiedNormals(rng), per_group)
        population._PopulationOps.__init__ = stratified_init
    try:
        yield
    finally:
        population._PopulationOps._second, population._PopulationOps.__init__ = second, init


def predicted_bias(h: dict, truth: dict) -> tuple[np.ndarray, np.ndarray]:
    """P x the second-order bias of (Q*, C*) for the vanilla RNN, pooled and cross-fitted, from the maps alone.

    The population's moments x = (Q, C) follow x' = F(x) + e, e the mean of P independent units' contributions
    (covariance Sigma / P). To second order the stationary mean is off by (I - J)^-1 H[Cov] / 2, J and H F's
    Jacobian and Hessian at x*, Cov = J Cov J^T + Sigma / P. Cross-fitted, halves A and B with x_A' = F(x_B) +
    e_A (covariance 2 Sigma / P): the reported mean S = (x_A + x_B) / 2 gets noise Sigma / P as before, and
    D = (x_A - x_B) / 2 follows D' = -J D + noise Sigma / P, so H[Cov_D] adds a second, equal term: twice the bias.
    Gauss-Hermite quadrature (120^2 nodes) and central differences; shares no code with symmft."""
    s2, n2, r2, mu, qx, cx = (h[k] for k in ("sigma2_h", "nu2_h", "rho2_h", "mu_h", "q_x", "c_x"))
    z, w = np.polynomial.hermite_e.hermegauss(120)
    z1, z2 = np.meshgrid(z, z, indexing="ij")
    weight = np.outer(w, w) / w.sum() ** 2

    def contributions(x):  # one unit's ((t_a^2 + t_b^2) / 2, t_a t_b) on the nodes
        V, K = s2 * qx + n2 * x[0] + r2, s2 * qx * cx + n2 * x[1] + r2
        r = K / V
        ta = np.tanh(mu + np.sqrt(V) * z1)
        tb = np.tanh(mu + np.sqrt(V) * (r * z1 + np.sqrt(1 - r * r) * z2))
        return np.stack([(ta * ta + tb * tb) / 2, ta * tb])

    F = lambda x: np.einsum("kij,ij->k", contributions(x), weight)  # noqa: E731
    x, eye, e = np.array([truth["Q"], truth["C"]]), np.eye(2), 1e-3
    J = np.array([(F(x + e * d) - F(x - e * d)) / (2 * e) for d in eye]).T
    H = np.array([[(F(x + e * (a + b)) - F(x + e * (a - b)) - F(x - e * (a - b)) + F(x - e * (a + b))) / (4 * e * e)
                   for b in eye] for a in eye]).transpose(2, 0, 1)
    c = contributions(x) - F(x)[:, None, None]
    sigma = np.einsum("kij,lij,ij->kl", c, c, weight)
    cov = np.linalg.solve(np.eye(4) - np.kron(J, J), sigma.ravel()).reshape(2, 2)  # J Cov J^T + Sigma; (-J) alike
    pooled = np.linalg.solve(eye - J, np.einsum("kij,ij->k", H, cov) / 2)
    return pooled, 2 * pooled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--units", type=int, nargs="+", default=[1600, 3200])
    parser.add_argument("--seeds", type=int, default=32)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--laws", nargs="+", default=["pooled", "crossfit"])
    parser.add_argument("--point", default="chaotic", choices=["chaotic", "calm", "minimal", "lstm"])
    args = parser.parse_args()
    cell = load_cell({"minimal": "minimal_rnn", "lstm": "lstm"}.get(args.point, "vanilla_rnn"))
    hp = {"chaotic": {"nu2_h": 3.0, "sigma2_h": 0.5},  # lambda = 0.972, c* < 1 (tests' chaotic point)
          "calm": {"mu_h": 0.3, "rho2_h": 0.2, "c_x": 0.5},
          "minimal": {"mu_u": 4.0, "c_x": 0.5},  # lambda = 0.957
          "lstm": {"mu_f": 2.0, "c_x": 0.5}}[args.point]  # no exact law (tanh(c')): means and spreads only
    h = resolve(cell, hp)
    if args.point == "lstm":
        truth = {"C": math.nan, "Q": math.nan, "lambda": math.nan}
    elif args.point == "minimal":  # every law exact Gaussian there (docs/laws.md): the deterministic map is exact
        a = analyze(cell, h, closure="exact")
        truth = {"C": float(a.cross_fixed_point["C_h"]), "Q": float(a.fixed_point["Q_h"]), "lambda": float(a.lambda_)}
    else:
        truth = vanilla_truth(h)
    print(f"point {args.point} {hp}: truth C* {truth['C']:.6f} Q* {truth['Q']:.6f} lambda {truth['lambda']:.6f}")
    if args.point in ("chaotic", "calm"):
        pooled, crossfit = predicted_bias(h, truth)
        print(f"second-order bias x P (Q*, C*): pooled {pooled[0]:+.3f}, {pooled[1]:+.3f}; "
              f"cross-fitted {crossfit[0]:+.3f}, {crossfit[1]:+.3f}")
    keys = (("C", lambda a: a.cross_fixed_point["C_h"], "C_h"), ("Q", lambda a: a.fixed_point["Q_h"], "Q_h"),
            ("lambda", lambda a: a.lambda_, "lambda"))
    for units in args.units:
        # the laws alternate seed by seed, so that the load on the shared machine touches both alike
        runs, cpu = {n: [] for n in args.laws}, {n: 0.0 for n in args.laws}
        for s in range(args.first_seed, args.first_seed + args.seeds):
            for name in args.laws:
                with law(name):
                    t0 = time.process_time()
                    runs[name].append(analyze_population(cell, h, population=units, seed=s))
                    cpu[name] += time.process_time() - t0
        for name in args.laws:
            ok = [a for a in runs[name] if int(a.status) == Status.OK]
            line = [f"P {units:6d} {name:8s} OK {len(ok)}/{args.seeds} cpu {cpu[name] / args.seeds:.3f} s/run"]
            for key, get, extra in keys:
                values = np.array([float(get(a)) for a in ok])
                errors = np.array([float(a.extras[f"standard_error_{extra}"]) for a in ok])
                spread = values.std(ddof=1)
                dev, dev_se = values.mean() - truth[key], spread / math.sqrt(len(values))
                ratio = math.sqrt(np.mean(errors ** 2)) / spread
                if math.isnan(truth[key]):
                    line.append(f"{key} mean {values.mean():.6f} +- {dev_se:.1e} spread {spread:.1e} "
                                f"err/spread {ratio:.2f}")
                    continue
                line.append(f"{key} dev {dev:+.2e} +- {dev_se:.1e} ({dev * units:+.2f} +- {dev_se * units:.2f} /P, "
                            f"{dev / truth[key]:+.2%} +- {dev_se / truth[key]:.2%})"
                            f" spread {spread:.1e} err/spread {ratio:.2f}")
            print("\n    ".join(line), flush=True)


if __name__ == "__main__":
    main()
