"""Why the tied check judges the spread on networks: a two-probe tied DMFT of the linear tied model is a network.

Model: x_{t+1} = a x_t + b U x_t with one Gaussian U (entries N(0, 1/N)) reused at every step (tied), so the
T-step Jacobian is P = (a I + b U)^T. Its spread m2/m1^2 - 1 of the squared singular values, with two
independent Gaussian probes v, w and q_vw = (P v . P w)/N, is m2/m1^2 - 1 = N E[q_vw^2] / E[q_vv]^2 - 1: an O(1/N)
fluctuation of the overlap of two tangents (docs/criteria.md, "Why no infinite-width quantity gives it").

* ``network``: the exact product of ``--networks`` width-``--width`` networks (matrix power, SVD-free:
  tr((P P^T)^2)/N over tr(P P^T)/N squared);
* ``two-probe DMFT``: the tied DMFT's causal sampler for a part of n units carrying two tangents x, y (the
  probes) with their joint empirical covariance: the field U h_t of every history vector h_t (x_0, y_0, x_1,
  y_1, ...) is L z with L the Cholesky factor of the history's empirical Gram matrix (from a QR: the history is
  a Krylov sequence, nearly dependent) and z fixed iid normals --
  for Gaussian U exactly the law of a width-n network (conditioning U on U X = G leaves G X^+ h plus fresh noise
  on the complement). Each part gives one q_xy; the spread is n mean(q_xy^2)/mean(q_xx)^2 - 1 over parts, its
  error from the parts' scatter.

Run: ``python benchmarks/two_probe_linear.py --a 0.7 --b 0.3 --steps 20`` (seconds). The session that moved the
check to networks measured a = 0.7, b = 0.3, T = 20: networks 27.9, two-probe DMFT 27.2(3.3) at n = 200; a = 0.9,
b = 0.1, T = 30: 9.88 against 10.6(1.3) (n = 200) and 9.9(1.1) (n = 800); benchmarks/RESULTS.md records this
script's own runs.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def network_spread(a: float, b: float, steps: int, width: int, rng: np.random.Generator) -> float:
    """m2/m1^2 - 1 of the squared singular values of (a I + b U)^T for one Gaussian U of ``width``."""
    U = rng.standard_normal((width, width)) / np.sqrt(width)
    P = np.linalg.matrix_power(a * np.eye(width) + b * U, steps)
    A = P @ P.T
    m1 = np.trace(A) / width
    return float(np.sum(A * A) / width / m1 ** 2 - 1)


def two_probe_part(a: float, b: float, steps: int, n: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """One part of n units of the two-probe tied DMFT: (q_xx, q_yy, q_xy) of the tangents after ``steps``."""
    x, y = rng.standard_normal(n), rng.standard_normal(n)
    z = rng.standard_normal((2 * steps, n))  # the part's fixed noises: one row per history vector
    history = np.empty((2 * steps, n))
    for t in range(steps):
        history[2 * t], history[2 * t + 1] = x, y
        k = 2 * t + 2
        # L: the Cholesky factor of the history's Gram matrix H H^T / n, from the QR of H^T (stable where the
        # history is nearly dependent, as a Krylov sequence is). With a positive diagonal it is unique, and the
        # factor of the leading block is the leading block of the factor: recomputing it is the incremental draw
        r = np.linalg.qr(history[:k].T, mode="r")
        L = (r * np.where(np.diag(r) < 0, -1.0, 1.0)[:, None]).T / np.sqrt(n)
        fields = L[k - 2:k] @ z[:k]
        x, y = a * x + b * fields[0], a * y + b * fields[1]
    return float(x @ x / n), float(y @ y / n), float(x @ y / n)


def two_probe_spread(a: float, b: float, steps: int, n: int, parts: int,
                     rng: np.random.Generator) -> tuple[float, float]:
    """n E[q_xy^2] / E[q_xx]^2 - 1 over ``parts`` independent parts, and its standard error (the parts' scatter)."""
    q = np.array([two_probe_part(a, b, steps, n, rng) for _ in range(parts)])
    m1 = q[:, :2].mean()
    spread = n * np.mean(q[:, 2] ** 2) / m1 ** 2 - 1
    return float(spread), float(n * np.std(q[:, 2] ** 2, ddof=1) / np.sqrt(parts) / m1 ** 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 epilog="example: python benchmarks/two_probe_linear.py --a 0.9 --b 0.1 --steps 30")
    ap.add_argument("--a", type=float, default=0.7)
    ap.add_argument("--b", type=float, default=0.3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--width", type=int, default=800, help="the networks' width (default 800)")
    ap.add_argument("--networks", type=int, default=3)
    ap.add_argument("--parts", type=int, default=400, help="DMFT parts per n (default 400)")
    ap.add_argument("--n", type=int, nargs="+", default=[200], help="units per DMFT part (default 200)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    t0 = time.process_time()
    nets = [network_spread(args.a, args.b, args.steps, args.width, rng) for _ in range(args.networks)]
    row = {"a": args.a, "b": args.b, "T": args.steps, "network_width": args.width, "networks": nets,
           "network_spread": float(np.mean(nets)), "network_cpu_seconds": time.process_time() - t0, "dmft": []}
    for n in args.n:
        t0 = time.process_time()
        spread, error = two_probe_spread(args.a, args.b, args.steps, n, args.parts, rng)
        row["dmft"].append({"n": n, "parts": args.parts, "spread": spread, "standard_error": error,
                            "cpu_seconds": time.process_time() - t0})
    print(json.dumps(row))


if __name__ == "__main__":
    main()
