"""Grid throughput: symmft (numpy) vs a hand-written scipy implementation of the same LSTM mean-field maps.

What is compared. The LSTM fixed point (M_c, Q_c, Q_h), the eigenvalue lambda of the cross map at c = 1 and
xi = -1/log|lambda| over a 256 x 256 grid of (mu_f in [-2, 6], nu2_f in [0.1, 4]), identical inputs (c_x = 1),
every other hyperparameter at its default (sigma2_k = nu2_k = q_x = 1, mu_k = rho2_k = 0):

* symmft: ``analyze(load_cell("lstm"), {"mu_f": MU, "nu2_f": NU})`` on the whole grid (one call, numpy);
* scipy: what a user would write by hand from docs/theory.md §2 (below, ``scipy_point``): gate expectations by
  ``scipy.integrate.quad`` over the real line, Gaussian closure for tanh(c), the fixed point by ten plain
  iterations then ``scipy.optimize.fsolve``, and lambda as the leading eigenvalue of the 2x2 Jacobian of the cross
  map over (C_c, C_h) at C = Q, written out by hand with Price's theorem (``price_jacobian``). It runs on a
  random subset of grid points; its time is extrapolated to the 65,536 points (mean time per point x 65,536).

Accuracy. Both are compared with a 30-digit mpmath evaluation of the same maps written here (``reference_point``:
the fixed point reduced to one equation in Q_h, mpmath.quad, Price's-theorem Jacobian), and with symmft's own
``analyze(backend="mpmath")``, at a handful of the sampled points plus the grid's corners. A one-sided
finite-difference Jacobian of the hand-written cross map (2-D Gaussian integrals, C slightly below Q) checks the
Price's-theorem formula at one point, so the hand derivation is not only checked against symmft.

Run from the repository root: ``python benchmarks/grid_throughput.py [--quick]``; writes
``benchmarks/results/grid_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import mpmath
import numpy as np
from scipy import integrate, optimize

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmft import load_cell  # noqa: E402
from symmft import analyze  # noqa: E402

GATES = ("i", "f", "g", "o")
MU_RANGE, NU2_RANGE = (-2.0, 6.0), (0.1, 4.0)


def hyperparameters(mu_f: float, nu2_f: float) -> dict:
    """LSTM defaults (as symmft's params.default) with the swept pair; c_x = 1."""
    h = {"q_x": 1.0, "c_x": 1.0}
    for k in GATES:
        h.update({f"sigma2_{k}": 1.0, f"nu2_{k}": 1.0, f"mu_{k}": 0.0, f"rho2_{k}": 0.0})
    h.update(mu_f=mu_f, nu2_f=nu2_f)
    return h


# ---------------------------------------------------------------- the maps, written once for any integrator
#
# E1(f, m, v) = E[f(u)], u ~ N(m, v). ``lib`` supplies tanh, sqrt and E1 (scipy/math floats or mpmath).
#
#   gate k:  u_k ~ N(mu_k, V_k),  V_k = sigma2_k q_x + nu2_k Q_h + rho2_k       (docs/theory.md §2, rule 1)
#   M_c' = E[f] M_c + E[i] E[g]
#   Q_c' = E[f^2] Q_c + 2 E[f] E[i] E[g] M_c + E[i^2] E[g^2]
#   Q_h' = E[o^2] E[tanh(z)^2],  z ~ N(M_c', Q_c' - M_c'^2)                    (Gaussian closure)
#
# Cross map (two input sequences, cross moments C_c, C_h; gate cross covariance K_k = sigma2 q_x c_x + nu2_k C_h
# + rho2_k; closure cross covariance K_z = C_c' - M_c'^2):
#   C_c' = E[f_a f_b] C_c + 2 E[f] E[i] E[g] M_c + E[i_a i_b] E[g_a g_b]
#   C_h' = E[o_a o_b] E[tanh(z_a) tanh(z_b)]
# Price's theorem, d/dK E[F(u_a) G(u_b)] = E[F'(u_a) G'(u_b)], evaluated at K = V (C = Q, the fixed point when
# c_x = 1) where the pair collapses to one variable:
#   dC_c'/dC_c = E[f^2]
#   dC_c'/dC_h = nu2_f E[s'(u_f)^2] Q_c + nu2_i E[s'(u_i)^2] E[g^2] + E[i^2] nu2_g E[tanh'(u_g)^2]
#   dC_h'/dC_c = E[o^2] E[tanh'(z)^2] dC_c'/dC_c
#   dC_h'/dC_h = nu2_o E[s'(u_o)^2] E[tanh(z)^2] + E[o^2] E[tanh'(z)^2] dC_c'/dC_h
# (s = sigmoid; at C = Q, C_c = Q_c). lambda = leading eigenvalue of [[dCc/dCc, dCc/dCh], [dCh/dCc, dCh/dCh]].


class ScipyLib:
    """Floats: math functions and scipy.integrate.quad over the real line, default tolerances."""

    tanh = staticmethod(math.tanh)
    sqrt = staticmethod(math.sqrt)
    log = staticmethod(math.log)

    @staticmethod
    def sigmoid(x):
        return 0.5 * (1.0 + math.tanh(0.5 * x))

    @staticmethod
    def E1(f, m, v):
        if v <= 0:
            return f(m)
        s = math.sqrt(v)
        val, _ = integrate.quad(lambda z: f(m + s * z) * math.exp(-0.5 * z * z), -np.inf, np.inf)
        return val / math.sqrt(2 * math.pi)

    @staticmethod
    def E2(f, g, m, v, k):
        """E[f(u_a) g(u_b)] by nested quad (only for the finite-difference check)."""
        s, rho = math.sqrt(v), k / v
        t = math.sqrt(max(1 - rho * rho, 0.0))
        opts = dict(epsabs=1e-14, epsrel=1e-13, limit=200)

        def inner(z1):
            mb = m + s * rho * z1
            val, _ = integrate.quad(lambda z2: g(mb + s * t * z2) * math.exp(-0.5 * z2 * z2), -12, 12, **opts)
            return val / math.sqrt(2 * math.pi)

        val, _ = integrate.quad(lambda z1: f(m + s * z1) * inner(z1) * math.exp(-0.5 * z1 * z1), -12, 12, **opts)
        return val / math.sqrt(2 * math.pi)


class MpLib:
    """mpmath at the working precision: mpmath.quad split at the integrand's kink."""

    tanh = staticmethod(mpmath.tanh)
    sqrt = staticmethod(mpmath.sqrt)
    log = staticmethod(mpmath.log)

    @staticmethod
    def sigmoid(x):
        return 1 / (1 + mpmath.exp(-x))

    @staticmethod
    def E1(f, m, v):
        if v <= 0:
            return f(m)
        s = mpmath.sqrt(v)
        z0 = -m / s
        pts = sorted({mpmath.mpf(-mpmath.inf), z0, mpmath.mpf(0), mpmath.mpf(mpmath.inf)})
        val = mpmath.quad(lambda z: f(m + s * z) * mpmath.exp(-z * z / 2), pts)
        return val / mpmath.sqrt(2 * mpmath.pi)


def gate_moments(Q_h, h, lib):
    """E[f], E[f^2], ... of every gate at recurrent second moment Q_h."""
    s, t = lib.sigmoid, lib.tanh
    out = {}
    for k in GATES:
        m, v = h[f"mu_{k}"], h[f"sigma2_{k}"] * h["q_x"] + h[f"nu2_{k}"] * Q_h + h[f"rho2_{k}"]
        phi = t if k == "g" else s
        out[k] = (lib.E1(phi, m, v), lib.E1(lambda x: phi(x) ** 2, m, v))
    return out


def diagonal_map(x, h, lib):
    """(M_c, Q_c, Q_h) -> next step (docs/theory.md §2)."""
    M_c, Q_c, Q_h = x
    g = gate_moments(Q_h, h, lib)
    (Ef, Ef2), (Ei, Ei2), (Eg, Eg2), (_, Eo2) = g["f"], g["i"], g["g"], g["o"]
    M = Ef * M_c + Ei * Eg
    Q = Ef2 * Q_c + 2 * Ef * Ei * Eg * M_c + Ei2 * Eg2
    Qh = Eo2 * lib.E1(lambda z: lib.tanh(z) ** 2, M, Q - M * M)
    return M, Q, Qh


def price_jacobian(M_c, Q_c, Q_h, h, lib):
    """2x2 Jacobian of the cross map over (C_c, C_h) at C = Q (formulas in the comment block above)."""
    s, t = lib.sigmoid, lib.tanh
    ds2 = lambda x: (s(x) * (1 - s(x))) ** 2  # noqa: E731
    dt2 = lambda x: (1 - t(x) ** 2) ** 2  # noqa: E731
    var = {k: h[f"sigma2_{k}"] * h["q_x"] + h[f"nu2_{k}"] * Q_h + h[f"rho2_{k}"] for k in GATES}
    g = gate_moments(Q_h, h, lib)
    Ef2, Ei2, Eg2, Eo2 = g["f"][1], g["i"][1], g["g"][1], g["o"][1]
    dsf = lib.E1(ds2, h["mu_f"], var["f"])
    dsi = lib.E1(ds2, h["mu_i"], var["i"])
    dso = lib.E1(ds2, h["mu_o"], var["o"])
    dtg = lib.E1(dt2, h["mu_g"], var["g"])
    vz = Q_c - M_c * M_c  # at the fixed point M_c' = M_c, Q_c' = Q_c
    Etz2 = lib.E1(lambda z: t(z) ** 2, M_c, vz)
    Edtz2 = lib.E1(dt2, M_c, vz)
    a = Ef2
    b = h["nu2_f"] * dsf * Q_c + h["nu2_i"] * dsi * Eg2 + Ei2 * h["nu2_g"] * dtg
    c = Eo2 * Edtz2 * a
    d = h["nu2_o"] * dso * Etz2 + Eo2 * Edtz2 * b
    return [[a, b], [c, d]]


def leading_eigenvalue_2x2(J, lib):
    (a, b), (c, d) = J
    tr, det = a + d, a * d - b * c
    disc = tr * tr / 4 - det
    if disc < 0:  # complex pair: its modulus (as symmft reports it)
        return lib.sqrt(det)
    r = lib.sqrt(disc)
    lo, hi = tr / 2 - r, tr / 2 + r
    return hi if abs(hi) >= abs(lo) else lo


def xi_of(lam, lib):
    return -1 / lib.log(abs(lam)) if abs(lam) < 1 else float("inf")


# ---------------------------------------------------------------- scipy: the user's alternative


def scipy_point(mu_f: float, nu2_f: float, method: str = "fsolve") -> dict:
    """Fixed point, lambda, xi at one point, in floats. ``method``: "fsolve" (10 plain iterations from (0, 1, 1),
    then scipy.optimize.fsolve) or "iterate" (plain iteration until |F(x) - x| <= 1e-13 (1 + |x|), at most
    ITERATE_MAX steps; it converges like E[f^2]^t, so slowly at large mu_f)."""
    h = hyperparameters(mu_f, nu2_f)
    x = (0.0, 1.0, 1.0)
    for _ in range(10):
        x = diagonal_map(x, h, ScipyLib)
    steps = 10
    if method == "fsolve":
        sol, info, ier, msg = optimize.fsolve(lambda y: np.subtract(diagonal_map(tuple(y), h, ScipyLib), y), x,
                                              full_output=True, xtol=1e-12)
        converged, steps = ier == 1, steps + info["nfev"]
    else:
        converged = False
        while steps < ITERATE_MAX:
            y = diagonal_map(x, h, ScipyLib)
            steps += 1
            done = max(abs(a - b) for a, b in zip(y, x)) <= 1e-13 * (1 + max(abs(b) for b in y))
            x = y
            if done:
                converged = True
                break
        sol = x
    M_c, Q_c, Q_h = (float(v) for v in sol)
    J = price_jacobian(M_c, Q_c, Q_h, h, ScipyLib)
    lam = leading_eigenvalue_2x2(J, ScipyLib)
    return {"M_c": M_c, "Q_c": Q_c, "Q_h": Q_h, "lambda": lam, "xi": xi_of(lam, ScipyLib), "converged": converged,
            "map_evaluations": steps}


ITERATE_MAX = 100_000


# ---------------------------------------------------------------- mpmath: the reference


def reference_point(mu_f: float, nu2_f: float, seed_Q_h: float, dps: int = 30) -> dict:
    """The same maps at ``dps`` digits. Given Q_h the memory's fixed point is explicit,
    M_c = E[i]E[g]/(1 - E[f]), Q_c = (2 E[f]E[i]E[g] M_c + E[i^2]E[g^2])/(1 - E[f^2]), so the fixed point is
    one equation Q_h = E[o^2] E[tanh(z)^2] (secant from a float seed; the seed only selects the root)."""
    with mpmath.workdps(dps):
        h = {k: mpmath.mpf(v) for k, v in hyperparameters(mu_f, nu2_f).items()}

        def memory(Q_h):
            g = gate_moments(Q_h, h, MpLib)
            (Ef, Ef2), (Ei, Ei2), (Eg, Eg2) = g["f"], g["i"], g["g"]
            M = Ei * Eg / (1 - Ef)
            return M, (2 * Ef * Ei * Eg * M + Ei2 * Eg2) / (1 - Ef2), g["o"][1]

        def residual(Q_h):
            M, Q, Eo2 = memory(Q_h)
            return Eo2 * MpLib.E1(lambda z: mpmath.tanh(z) ** 2, M, Q - M * M) - Q_h

        Q_h = mpmath.findroot(residual, mpmath.mpf(seed_Q_h), tol=mpmath.mpf(10) ** (-2 * dps + 10))
        M_c, Q_c, _ = memory(Q_h)
        lam = leading_eigenvalue_2x2(price_jacobian(M_c, Q_c, Q_h, h, MpLib), MpLib)
        return {"M_c": M_c, "Q_c": Q_c, "Q_h": Q_h, "lambda": lam, "xi": xi_of(lam, MpLib),
                "residual": abs(residual(Q_h))}


def finite_difference_check(mu_f: float, nu2_f: float, fp: dict, eps: float = 1e-3) -> dict:
    """One-sided (C below Q) finite-difference Jacobian of the hand-written cross map with 2-D integrals,
    Richardson-extrapolated (eps, eps/2), vs the Price's-theorem Jacobian. Independent of symmft."""
    h = hyperparameters(mu_f, nu2_f)
    L, s, t = ScipyLib, ScipyLib.sigmoid, ScipyLib.tanh
    M_c, Q_c, Q_h = fp["M_c"], fp["Q_c"], fp["Q_h"]
    g = gate_moments(Q_h, h, L)
    (Ef, _), (Ei, _), (Eg, _), _ = g["f"], g["i"], g["g"], g["o"]
    var = {k: h[f"sigma2_{k}"] * h["q_x"] + h[f"nu2_{k}"] * Q_h + h[f"rho2_{k}"] for k in GATES}

    def cross(C_c, C_h):
        cov = {k: h[f"sigma2_{k}"] * h["q_x"] * h["c_x"] + h[f"nu2_{k}"] * C_h + h[f"rho2_{k}"] for k in GATES}
        E2 = lambda k, phi: L.E2(phi, phi, h[f"mu_{k}"], var[k], cov[k])  # noqa: E731
        Cc = E2("f", s) * C_c + 2 * Ef * Ei * Eg * M_c + E2("i", s) * E2("g", t)
        Ch = E2("o", s) * L.E2(t, t, M_c, Q_c - M_c ** 2, Cc - M_c ** 2)
        return np.array([Cc, Ch])

    base = np.array([Q_c, Q_h])
    f0 = cross(*base)
    J = np.zeros((2, 2))
    for j in range(2):
        e = np.zeros(2)
        e[j] = base[j]
        d1 = (f0 - cross(*(base - eps * e))) / (eps * base[j])
        d2 = (f0 - cross(*(base - eps / 2 * e))) / (eps / 2 * base[j])
        J[:, j] = 2 * d2 - d1
    price = np.array(price_jacobian(M_c, Q_c, Q_h, h, L), dtype=float)
    return {"finite_difference": J.tolist(), "price": price.tolist(),
            "max_abs_difference": float(np.max(np.abs(J - price))),
            "fixed_point_of_cross_map": float(np.max(np.abs(f0 - base) / base))}


# ---------------------------------------------------------------- the benchmark



def rel(a, b):
    """|a - b| / |b|, in mpmath at 40 digits (so two 30-digit values are not both rounded to float first)."""
    with mpmath.workdps(40):
        a, b = mpmath.mpf(a if isinstance(a, mpmath.mpf) else float(a)), mpmath.mpf(b if isinstance(b, mpmath.mpf) else float(b))
        return float(abs(a - b) / abs(b)) if b != 0 else float(abs(a - b))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="64x64 grid, 8 (3) scipy points, 3 reference points")
    p.add_argument("--grid", type=int, default=None, help="points per axis (default 256; 64 with --quick)")
    p.add_argument("--scipy-points", type=int, default=None, help="random grid points for scipy/fsolve (default 100)")
    p.add_argument("--iterate-points", type=int, default=None, help="... of them for scipy/iterate (default 64)")
    p.add_argument("--reference-points", type=int, default=None, help="mpmath points (default 8)")
    p.add_argument("--repeat", type=int, default=3, help="symmft grid timings (best is reported)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default=str(Path(__file__).parent / "results" / "grid_throughput.json"))
    a = p.parse_args(argv)
    n = a.grid or (64 if a.quick else 256)
    n_scipy = a.scipy_points or (8 if a.quick else 100)
    n_iter = min(n_scipy, a.iterate_points or (3 if a.quick else 64))
    n_ref = a.reference_points or (3 if a.quick else 8)
    repeat = 1 if a.quick else a.repeat

    mu = np.linspace(*MU_RANGE, n)
    nu2 = np.linspace(*NU2_RANGE, n)
    MU, NU = np.meshgrid(mu, nu2, indexing="ij")
    cell = load_cell("lstm")

    # symmft: the first call derives and compiles (cached in memory afterwards)
    t0 = time.perf_counter()
    analyze(cell, {"mu_f": 0.0, "nu2_f": 1.0})
    t_cold = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        res = analyze(cell, {"mu_f": MU, "nu2_f": NU})
        times.append(time.perf_counter() - t0)
    t_symmft = min(times)
    n_ok = int(np.sum(res.status == 0))
    print(f"symmft numpy: {n}x{n} grid in {t_symmft:.2f} s (best of {repeat}; all runs {[round(x, 2) for x in times]}), "
          f"{n_ok}/{n * n} points OK; first call (derive + compile + 1 point) {t_cold:.2f} s")

    # scipy on a random subset: fsolve (the fast variant) on n_scipy points, plain iteration on the first n_iter
    rng = np.random.default_rng(a.seed)
    flat = rng.choice(n * n, size=n_scipy, replace=False)
    idx = [np.unravel_index(k, MU.shape) for k in flat]
    variants = {}
    for method, count in (("fsolve", n_scipy), ("iterate", n_iter)):
        rows, t_pts = [], []
        for ij in idx[:count]:
            t0 = time.perf_counter()
            r = scipy_point(float(MU[ij]), float(NU[ij]), method)
            t_pts.append(time.perf_counter() - t0)
            rows.append(r)
        t_pts = np.array(t_pts)
        mean, se = t_pts.mean(), t_pts.std(ddof=1) / math.sqrt(len(t_pts))
        total = mean * n * n
        agree = {k: max(rel(r[k], (res.lambda_ if k == "lambda" else res.fixed_point[k])[ij])
                        for r, ij in zip(rows, idx)) for k in ("Q_c", "Q_h", "lambda")}
        variants[method] = {
            "points": count, "seconds_per_point_mean": mean, "seconds_per_point_se": se,
            "seconds_per_point": t_pts.tolist(), "extrapolated_seconds": total,
            "speed_ratio": total / t_symmft, "speed_ratio_2se": [(mean - 2 * se) * n * n / t_symmft,
                                                                 (mean + 2 * se) * n * n / t_symmft],
            "speed_ratio_including_first_call": total / (t_symmft + t_cold),
            "not_converged": sum(not r["converged"] for r in rows),
            "max_rel_diff_vs_symmft": agree,
            "sampled": [{"mu_f": float(MU[ij]), "nu2_f": float(NU[ij]), "seconds": float(t),
                         "map_evaluations": r["map_evaluations"],
                         **{k: float(r[k]) for k in ("Q_c", "Q_h", "lambda", "xi")}}
                        for r, ij, t in zip(rows, idx, t_pts)],
        }
        v = variants[method]
        print(f"scipy/{method}: {mean * 1e3:.1f} +- {se * 1e3:.1f} ms/point over {count} random points "
              f"(min {t_pts.min() * 1e3:.1f}, max {t_pts.max() * 1e3:.1f}; {v['not_converged']} not converged); "
              f"extrapolated to {n * n} points: {total:.0f} s; speed ratio {v['speed_ratio']:.0f}x "
              f"(+-2 se: {v['speed_ratio_2se'][0]:.0f}-{v['speed_ratio_2se'][1]:.0f}; "
              f"{v['speed_ratio_including_first_call']:.0f}x counting symmft's first call); max rel diff vs symmft: "
              + ", ".join(f"{k} {x:.1e}" for k, x in agree.items()))

    # accuracy vs mpmath at a few sampled points plus the corners
    corners = [(0, 0), (n - 1, n - 1), (n - 1, 0), (0, n - 1)]
    ref_idx = corners[: max(1, min(4, n_ref // 2))] + [tuple(int(v) for v in ij) for ij in idx[: n_ref - min(4, n_ref // 2)]]
    table = []
    hdr = f"{'mu_f':>6} {'nu2_f':>6} | {'Q_c ref':>10} {'Q_h ref':>10} {'lambda ref':>12} {'xi ref':>8} | " \
          f"{'symmft Qc':>9} {'Qh':>8} {'lam':>8} | {'fsolve Qc':>9} {'Qh':>8} {'lam':>8} | " \
          f"{'iter Qc':>8} {'Qh':>8} {'lam':>8} | {'sym-mp vs ref':>13}"
    print("\nrelative errors vs the 30-digit mpmath reference of this script:")
    print(hdr)
    for ij in ref_idx:
        m, v = float(MU[ij]), float(NU[ij])
        sc = scipy_point(m, v)
        si = scipy_point(m, v, "iterate")
        ref = reference_point(m, v, sc["Q_h"])
        sm = analyze(cell, {"mu_f": m, "nu2_f": v}, backend="mpmath")
        sym = {"Q_c": res.fixed_point["Q_c"][ij], "Q_h": res.fixed_point["Q_h"][ij], "lambda": res.lambda_[ij],
               "xi": res.xi[ij]}
        smp = {"Q_c": sm.fixed_point["Q_c"], "Q_h": sm.fixed_point["Q_h"], "lambda": sm.lambda_, "xi": sm.xi}
        row = {"mu_f": m, "nu2_f": v, "reference": {k: float(ref[k]) for k in ("M_c", "Q_c", "Q_h", "lambda", "xi")},
               "reference_residual": float(ref["residual"])}
        for name, vals in (("symmft_numpy", sym), ("scipy_fsolve", sc), ("scipy_iterate", si), ("symmft_mpmath", smp)):
            row[name] = {k: rel(vals[k], ref[k]) for k in ("Q_c", "Q_h", "lambda", "xi")}
        # symmft's own mpmath vs ours: agreement at ~1e-25 means both derive the same maps
        table.append(row)
        e1, e2, e4, e3 = row["symmft_numpy"], row["scipy_fsolve"], row["scipy_iterate"], row["symmft_mpmath"]
        print(f"{m:6.2f} {v:6.2f} | {float(ref['Q_c']):10.6f} {float(ref['Q_h']):10.6f} {float(ref['lambda']):12.9f} "
              f"{float(ref['xi']):8.2f} | {e1['Q_c']:9.1e} {e1['Q_h']:8.1e} {e1['lambda']:8.1e} | "
              f"{e2['Q_c']:9.1e} {e2['Q_h']:8.1e} {e2['lambda']:8.1e} | "
              f"{e4['Q_c']:8.1e} {e4['Q_h']:8.1e} {e4['lambda']:8.1e} | "
              f"{max(e3[k] for k in ('Q_c', 'Q_h', 'lambda')):13.1e}")
    worst = {name: {k: max(r[name][k] for r in table) for k in ("Q_c", "Q_h", "lambda", "xi")}
             for name in ("symmft_numpy", "scipy_fsolve", "scipy_iterate", "symmft_mpmath")}
    print("max relative error: " + "; ".join(
        f"{name}: " + ", ".join(f"{k} {v:.1e}" for k, v in w.items()) for name, w in worst.items()))

    # Price's theorem vs finite differences of the hand-written cross map: the largest-memory corner, one sample
    fds = []
    for ij in ([(n - 1, n - 1)] if a.quick else [(n - 1, n - 1), tuple(int(v) for v in idx[0])]):
        m, v = float(MU[ij]), float(NU[ij])
        ref = reference_point(m, v, scipy_point(m, v)["Q_h"])
        fd = finite_difference_check(m, v, {k: float(ref[k]) for k in ("M_c", "Q_c", "Q_h")})
        fds.append({"mu_f": m, "nu2_f": v, **fd})
        print(f"Price Jacobian {np.array(fd['price']).round(6).tolist()} vs one-sided finite differences (2-D quad, "
              f"Richardson) at mu_f={m:.3f}, nu2_f={v:.3f}: max abs diff {fd['max_abs_difference']:.1e}")

    out = {
        "benchmark": "grid_throughput", "machine": machine(), "source": source_version(),
           "command": " ".join(["python"] + sys.argv),
        "grid": {"mu_f": list(MU_RANGE), "nu2_f": list(NU2_RANGE), "points_per_axis": n},
        "symmft": {"seconds_best": t_symmft, "seconds_all": times, "first_call_seconds": t_cold, "points_ok": n_ok},
        "scipy": variants,
        "accuracy": {"points": table, "max_relative_error": worst},
        "price_vs_finite_difference": fds,
    }
    path = Path(a.output)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=float))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
