"""symmft against the vectorized Gauss-Hermite LSTM an expert would write by hand, on the same grid, in one process.

The grid (as grid_throughput.py): the LSTM over mu_f in [-2, 6] x nu2_f in [0.1, 4] (256 x 256), c_x = 1, every
other hyperparameter at its default (sigma2_k = nu2_k = q_x = 1, mu_k = rho2_k = 0). Quantities: the fixed point
(M_c, Q_c, Q_h), lambda (leading eigenvalue of the cross map's Jacobian at c = 1) and xi = -1/log|lambda|.

The expert (``Expert``), written here from theory.md §2 (formulas in grid_throughput.py's comment block):
* closed forms given Q_h: with mu_i = mu_g = 0, E[tanh(u_g)] = 0, so M_c = 0, M_h = 0 and
  Q_c = E[i^2] E[g^2] / (1 - E[f^2]); gates i and o share their Gaussian, so E[o^2] = E[i^2];
* the fixed point is one equation Q_h = E[o^2] E[tanh(z)^2], z ~ N(0, Q_c), solved by a vectorized secant
  (start 1, then a plain step) to |F(Q_h) - Q_h| <= 1e-13 (1 + Q_h), symmft's tolerance; converged points leave;
* every 1-D expectation by Gauss-Hermite (scipy.special.roots_hermite) with its OWN node count, the smallest of a
  ladder whose worst relative error over every grid point (at the reference fixed point's Gaussian) is <= 1e-10;
* lambda from the 2x2 Price-theorem Jacobian at C = Q, all 1-D integrals (sigmoid' and tanh' squared), its
  leading eigenvalue in closed form; sigmoid = scipy.special.expit, products by matrix-vector with the weights.

The reference on EVERY grid point (``Reference``): the same closed forms and equation, solved by secant from the
expert's solution to |residual| <= 1e-15 (1 + Q_h), with every integral by the trapezoid rule in z on [-9.5, 9.5]
(mass outside 2e-21) at step h <= min(0.3, (pi/2)/(6 sigma)): tanh's poles lie pi/(2 sigma) from the real axis in
z, so the rule's error is ~exp(-2 pi d/h) <= exp(-12 pi) = 4e-17 — a different rule from both Gauss-Hermite and
symmft's graded sinh map. The reference itself is checked against 30-digit mpmath (grid_throughput.py's
``reference_point``: mpmath.quad, mpmath.findroot, the same Price Jacobian) on a subsample: the grid's corners,
random points and the points where symmft and the expert err most.

Run from the repository root: ``python benchmarks/expert_gh.py [--quick] [--repeat N]``; writes
``benchmarks/results/expert_gh.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy.special import expit, roots_hermite

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from grid_throughput import reference_point  # noqa: E402  (30-digit mpmath, independent of symmft)
from symmft.cell import params as params_mod  # noqa: E402
from symmft import load_cell  # noqa: E402
from symmft.theory.compile import compile_map  # noqa: E402
from symmft import analyze
from symmft.theory.fixedpoint import newton, stack  # noqa: E402
from symmft import derive  # noqa: E402

MU_RANGE, NU2_RANGE = (-2.0, 6.0), (0.1, 4.0)
TOLERANCE = 1e-13  # symmft's fixed-point tolerance (fixedpoint.TOLERANCE)
TARGET = 1e-10  # per-integral relative error the node counts are tuned to
LADDER = (8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512,
          640, 768, 896, 1024, 1280, 1536, 1792, 2048)


def sig2(u):
    return expit(u) ** 2


def dsig2(u):
    s = expit(u)
    return (s * (1 - s)) ** 2


def tanh2(u):
    return np.tanh(u) ** 2


def dtanh2(u):
    return (1 - np.tanh(u) ** 2) ** 2


#: the integrals: name -> (integrand, which Gaussian: "f" = N(mu_f, nu2_f Q_h + 1), "i" = N(0, Q_h + 1) (gates i, g,
#: o), "c" = N(0, Q_c))
INTEGRALS = {"f2": (sig2, "f"), "i2": (sig2, "i"), "g2": (tanh2, "i"), "c2": (tanh2, "c"),
             "df2": (dsig2, "f"), "di2": (dsig2, "i"), "dg2": (dtanh2, "i"), "dc2": (dtanh2, "c")}


def gaussians(Q_h, Q_c, mu_f, nu2_f):
    """(mean, sigma) of each Gaussian kind."""
    zero = np.zeros_like(Q_h)
    out = {"f": (mu_f, np.sqrt(nu2_f * Q_h + 1)), "i": (zero, np.sqrt(Q_h + 1))}
    if Q_c is not None:
        out["c"] = (zero, np.sqrt(Q_c))
    return out


class GaussHermite:
    """E[f(m + s z)] with n Gauss-Hermite nodes (weights normalized to the standard normal)."""

    def __init__(self, n: int):
        x, w = roots_hermite(n)
        self.z, self.w = x * math.sqrt(2), w / math.sqrt(math.pi)

    def __call__(self, f, m, s):
        return f(m[:, None] + s[:, None] * self.z) @ self.w


def trapezoid(f, m, s):
    """Reference rule (module docstring): trapezoid in z on [-9.5, 9.5], h <= min(0.3, pi/(12 sigma)), points
    grouped by node count (multiples of 32)."""
    h_max = np.minimum(0.3, (math.pi / 2) / (6 * np.maximum(s, 1e-300)))
    n = 32 * np.ceil((19 / h_max + 1) / 32).astype(int) + 1
    out = np.empty(m.shape)
    for k in np.unique(n):
        p = np.nonzero(n == k)[0]
        z = np.linspace(-9.5, 9.5, k)
        w = np.full(k, z[1] - z[0]) * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        w[[0, -1]] *= 0.5
        for lo in range(0, p.size, 4096):
            q = p[lo: lo + 4096]
            out[q] = f(m[q, None] + s[q, None] * z) @ w
    return out


class Solver:
    """The expert's algorithm with a given rule per integral (Gauss-Hermite at tuned counts, or the reference)."""

    def __init__(self, rules: dict):
        self.rules = rules  # integral name -> callable(f, m, s)

    def E(self, name, g):
        f, kind = INTEGRALS[name]
        m, s = g[kind]
        return self.rules[name](f, m, s)

    def residual(self, Q_h, mu_f, nu2_f):
        """F(Q_h) - Q_h and Q_c(Q_h)."""
        g = gaussians(Q_h, None, mu_f, nu2_f)
        Ei2 = self.E("i2", g)
        Q_c = Ei2 * self.E("g2", g) / (1 - self.E("f2", g))
        g["c"] = (np.zeros_like(Q_c), np.sqrt(Q_c))
        return Ei2 * self.E("c2", g) - Q_h, Q_c

    def fixed_point(self, mu_f, nu2_f, start=None, tol=TOLERANCE, max_iterations=100):
        """Secant on Q_h from ``start`` (default 1, then a plain step); returns (Q_c, Q_h, converged)."""
        x0 = np.ones_like(mu_f) if start is None else start.copy()
        r0, _ = self.residual(x0, mu_f, nu2_f)
        x1 = x0 + r0  # a plain step
        Q_h, Q_c = x1.copy(), np.full_like(x1, np.nan)
        ok = np.zeros(mu_f.shape, dtype=bool)
        act = np.arange(mu_f.size)
        for _ in range(max_iterations):
            r1, qc = self.residual(x1, mu_f[act], nu2_f[act])
            Q_h[act], Q_c[act] = x1, qc
            done = np.abs(r1) <= tol * (1 + np.abs(x1))
            ok[act[done]] = True
            keep = ~done
            act, x0, r0, x1, r1 = act[keep], x0[keep], r0[keep], x1[keep], r1[keep]
            if act.size == 0:
                break
            with np.errstate(divide="ignore", invalid="ignore"):
                x2 = x1 - r1 * (x1 - x0) / (r1 - r0)
            x2 = np.where(np.isfinite(x2) & (x2 > 0), x2, x1 + r1)  # safeguard: a plain step
            x0, r0, x1 = x1, r1, x2
        return Q_c, Q_h, ok

    def lam(self, Q_c, Q_h, mu_f, nu2_f):
        """lambda from the 2x2 Price Jacobian at C = Q (grid_throughput.price_jacobian, nu2_i = nu2_g = nu2_o = 1)."""
        g = gaussians(Q_h, Q_c, mu_f, nu2_f)
        Ef2, Ei2, Eg2, Etz2 = (self.E(k, g) for k in ("f2", "i2", "g2", "c2"))
        dsf, dsi, dtg, dtz = (self.E(k, g) for k in ("df2", "di2", "dg2", "dc2"))
        a = Ef2
        b = nu2_f * dsf * Q_c + dsi * Eg2 + Ei2 * dtg
        c = Ei2 * dtz * a
        d = dsi * Etz2 + Ei2 * dtz * b
        tr, det = a + d, a * d - b * c
        disc = tr * tr / 4 - det
        r = np.sqrt(np.maximum(disc, 0))
        hi, lo = tr / 2 + r, tr / 2 - r
        return np.where(disc < 0, np.sqrt(np.abs(det)), np.where(np.abs(hi) >= np.abs(lo), hi, lo))


def xi_of(lam):
    with np.errstate(divide="ignore"):
        return np.where(np.abs(lam) < 1, -1 / np.log(np.abs(lam)), np.inf)


def tune(reference: dict, mu_f, nu2_f) -> dict:
    """The smallest ladder count per integral with worst relative error <= TARGET over all points (at the
    reference's Gaussians), by bisection on the ladder."""
    g = gaussians(reference["Q_h"], reference["Q_c"], mu_f, nu2_f)
    counts, errors = {}, {}
    for name, (f, kind) in INTEGRALS.items():
        m, s = g[kind]
        exact = trapezoid(f, m, s)

        def err(n):
            return float(np.max(np.abs(GaussHermite(n)(f, m, s) - exact) / np.abs(exact)))

        lo, hi = 0, len(LADDER) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if err(LADDER[mid]) <= TARGET:
                hi = mid
            else:
                lo = mid + 1
        counts[name], errors[name] = LADDER[lo], err(LADDER[lo])
    return counts, errors


def symmft_fixed_point(cell, h):
    """symmft's diagonal solve alone (the first step of dynamics._analyze_array), for the fixed-point timing."""
    cm = compile_map(derive(cell))
    hx = {k: np.broadcast_to(np.asarray(v, dtype=float), np.shape(h["mu_f"])).ravel() for k, v in h.items()}
    names = [s.name for s in cm.map.diagonal]
    x0 = stack([1.0 if n.startswith("Q") else 0.0 for n in names], (hx["mu_f"].size,), np)
    at = lambda idx: {k: v[idx] for k, v in hx.items()}  # noqa: E731
    q = [i for i, n in enumerate(names) if n.startswith("Q")]
    return newton(lambda x, idx: cm.diagonal(x, at(idx)), lambda x, idx: cm.diagonal_jacobian(x, at(idx)), x0, np,
                   200, lambda x, idx: np.all(x[q] >= 0, axis=0))


def best_of(repeat: int, fn):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), times, out


def rel(a, b):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)) / np.abs(np.asarray(b, dtype=float))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 x 64 grid, 8 mpmath points")
    parser.add_argument("--repeat", type=int, default=2, help="timing repeats (best of)")
    parser.add_argument("--mp-points", type=int, default=16, help="random points of the mpmath check (+ corners, worst)")
    args = parser.parse_args()
    n = 64 if args.quick else 256
    MU, NU = np.meshgrid(np.linspace(*MU_RANGE, n), np.linspace(*NU2_RANGE, n), indexing="ij")
    mu_f, nu2_f = MU.ravel(), NU.ravel()
    cell = load_cell("lstm")
    h = params_mod.resolve(cell, {"mu_f": MU, "nu2_f": NU})
    analyze(cell, {"mu_f": 0.0})  # derive and compile outside the timings

    # 1. reference on every point: secant from a coarse GH solution, trapezoid integrals
    t0 = time.perf_counter()
    coarse = Solver({k: GaussHermite(200) for k in INTEGRALS})
    _, seed, _ = coarse.fixed_point(mu_f, nu2_f, tol=1e-8)
    ref_solver = Solver({k: trapezoid for k in INTEGRALS})
    Q_c, Q_h, ok = ref_solver.fixed_point(mu_f, nu2_f, start=seed, tol=1e-15)
    lam = ref_solver.lam(Q_c, Q_h, mu_f, nu2_f)
    reference = {"Q_c": Q_c, "Q_h": Q_h, "lambda": lam, "xi": xi_of(lam)}
    print(f"reference on {mu_f.size} points: {time.perf_counter() - t0:.1f} s, all converged: {bool(ok.all())}")

    # 2. the expert's node counts, tuned against the reference
    counts, tune_err = tune(reference, mu_f, nu2_f)
    print("Gauss-Hermite nodes per integral (worst rel. error):",
          ", ".join(f"{k} {counts[k]} ({tune_err[k]:.1e})" for k in INTEGRALS))
    expert = Solver({k: GaussHermite(c) for k, c in counts.items()})

    # 3. timings, alternating in one process
    def expert_fp():
        return expert.fixed_point(mu_f, nu2_f)

    def expert_all():
        Q_c, Q_h, ok = expert.fixed_point(mu_f, nu2_f)
        lam = expert.lam(Q_c, Q_h, mu_f, nu2_f)
        return {"Q_c": Q_c, "Q_h": Q_h, "lambda": lam, "xi": xi_of(lam), "ok": ok}

    timing = {}
    timing["expert_fixed_point"], runs_ef, _ = best_of(args.repeat, expert_fp)
    timing["symmft_fixed_point"], runs_sf, _ = best_of(args.repeat, lambda: symmft_fixed_point(cell, h))
    timing["expert_all"], runs_ea, ex = best_of(args.repeat, expert_all)
    timing["symmft_all"], runs_sa, a = best_of(args.repeat, lambda: analyze(cell, {"mu_f": MU, "nu2_f": NU}))
    sy = {"Q_c": a.fixed_point["Q_c"].ravel(), "Q_h": a.fixed_point["Q_h"].ravel(), "lambda": a.lambda_.ravel(),
          "xi": a.xi.ravel()}

    # 4. worst errors over every point
    errors = {}
    for who, res in (("symmft", sy), ("expert", ex)):
        errors[who] = {}
        for k in ("Q_c", "Q_h", "lambda", "xi"):
            e = rel(res[k], reference[k])
            i = int(np.nanargmax(e))
            errors[who][k] = {"max": float(e[i]), "at": [float(mu_f[i]), float(nu2_f[i])],
                              "non_finite": int(np.count_nonzero(~np.isfinite(e)))}

    # 5. the reference against 30-digit mpmath on a subsample: corners, random points, each worst point
    rng = np.random.default_rng(0)
    corners = [0, n - 1, n * (n - 1), n * n - 1]
    worst = {int(np.nanargmax(rel(r[k], reference[k]))) for r in (sy, ex) for k in ("Q_c", "Q_h", "lambda")}
    sample = sorted(set(corners) | worst | set(rng.choice(mu_f.size, 8 if args.quick else args.mp_points, replace=False).tolist()))
    mp_err = {k: 0.0 for k in ("Q_c", "Q_h", "lambda", "xi")}
    for i in sample:
        r = reference_point(float(mu_f[i]), float(nu2_f[i]), float(Q_h[i]))
        for k in mp_err:
            mp_err[k] = max(mp_err[k], float(abs(reference[k][i] - float(r[k])) / abs(float(r[k]))))
    print(f"reference vs 30-digit mpmath on {len(sample)} points: " + ", ".join(f"{k} {v:.1e}" for k, v in mp_err.items()))

    ratio_fp = timing["expert_fixed_point"] / timing["symmft_fixed_point"]
    ratio_all = timing["expert_all"] / timing["symmft_all"]
    print(f"\n{n} x {n} grid ({mu_f.size} points), best of {args.repeat}, seconds:")
    print(f"  fixed point only:        symmft {timing['symmft_fixed_point']:.2f}  expert GH {timing['expert_fixed_point']:.2f}"
          f"  (symmft faster by {ratio_fp:.2f}x)")
    print(f"  fixed point + lambda, xi: symmft {timing['symmft_all']:.2f}  expert GH {timing['expert_all']:.2f}"
          f"  (symmft faster by {ratio_all:.2f}x)")
    print("worst relative error over every point (vs the reference):")
    for who in errors:
        print(f"  {who:7s} " + "  ".join(f"{k} {v['max']:.1e} at {v['at'][0]:.3g},{v['at'][1]:.3g}" for k, v in errors[who].items()))
    print(f"symmft status OK: {int(np.count_nonzero(a.status == 0))}/{a.status.size}; expert converged: {int(ex['ok'].sum())}")

    out = {"grid": [n, n], "ranges": {"mu_f": MU_RANGE, "nu2_f": NU2_RANGE}, "timing_best": timing,
           "timing_runs": {"expert_fixed_point": runs_ef, "symmft_fixed_point": runs_sf, "expert_all": runs_ea,
                           "symmft_all": runs_sa},
           "ratio_fixed_point": ratio_fp, "ratio_all": ratio_all, "gh_nodes": counts, "gh_tuning_error": tune_err,
           "worst_error": errors, "reference_vs_mpmath": {"points": len(sample), "max_rel": mp_err},
           "machine": machine(), "source": source_version(), "command": " ".join(sys.argv)}
    path = ROOT / "benchmarks" / "results" / ("expert_gh_quick.json" if args.quick else "expert_gh.json")
    path.write_text(json.dumps(out, indent=2, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
