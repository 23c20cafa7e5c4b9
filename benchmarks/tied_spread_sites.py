"""Where the tied network's spread lives: the units' own gains or their cross-correlations (issue 10).

What: the spread criterion judges m2/m1^2 - 1 of the squared singular values of the T-step memory-Jacobian
product P (docs/criteria.md). With A = P P^T, m2 = tr(A^2)/N = mean_i A_ii^2 + (1/N) sum_{i != j} A_ij^2: a
single-site part (A_ii is unit i's own squared gain, the variance of its tangent over isotropic probes) and a
cross-unit part (O(1/N) per pair, N^2 pairs). The single-site part is what the tangent DMFT
(``symmft.theory.tangent.TangentProcess``: one forward tangent per unit) can give directly: a unit's tangent is
Gaussian given the unit's own path, with variance A_ii, so mean_i A_ii^2 / (mean_i A_ii)^2 - 1 =
E[d^4] / (3 E[d^2]^2) - 1 over the population (its kurtosis). Measured here, per stored rule:

* the tied networks (``jacobian_product_spectrum``, orthogonal weights, input size = width): ``spread`` and
  ``spread_diagonal`` (the relative variance of A_ii over units); the cross-unit part is their difference;
* the tangent DMFT's single-site estimate (the kurtosis above, at the product's end, over the same primary
  states and the same product P = J_{T+1} ... J_2 as ``tied_gain``), mean and standard error over its PARTS
  independent parts;
* a lead, not a derivation: (n/2) Var(log G) over the DMFT's parts (n units each). For one network of width N
  and Gaussian probes u, Var_u(|P u|^2/|u|^2) / m1^2 ~ 2 (m2/m1^2 - 1) / N, so if a part of n units fluctuates
  as a width-n network does, this estimates the spread (plus the network-to-network variance of log m1, which
  a part's fluctuation also holds); averaged over ``--seeds`` runs.

Run from the repository root: ``python benchmarks/tied_spread_sites.py`` (the four T <= 200 rules, ~1 CPU
minute), ``--rules lstm1000 --networks 2 --fluctuation-population 1000 --seeds 6 --output
benchmarks/results/tied_spread_sites_T1000.json`` (~4 CPU minutes). Writes
``benchmarks/results/tied_spread_sites.json`` after every rule; CPU seconds are process_time (record the load).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

from provenance import machine, source_version  # benchmarks/provenance.py
from tied_spread import RULES, load_rule, networks  # benchmarks/tied_spread.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmft.theory.tangent import TangentProcess, tied_gain  # noqa: E402
from symmft.theory.transient import part_means  # noqa: E402


def single_site(cell, h: dict, T: int, input_dim: int, population: int, seed: int = 0) -> dict:
    """The tangent DMFT's E[d^4]/(3 E[d^2]^2) - 1 over the primary states after t = T/4, T/2, 3T/4, T Jacobians
    (the product ``tied_gain`` follows: isotropic delta on the primary states at step 1), with the standard error
    over the independent parts."""
    run = TangentProcess(cell, h, T + 1, population=population, seed=seed, input_dim=input_dim)
    states = {s: np.zeros(run.shape) for s in cell.states}
    delta = {s: run.draws.normal(run.shape[1:]) for s in run.primary}
    states, tangents = run.step(states, {}, seed=delta)
    marks, out = {max(1, T * k // 4) for k in (1, 2, 3, 4)}, {}
    for t in range(1, T + 1):
        states, tangents = run.step(states, tangents)
        d = np.stack([tangents[s] for s in run.primary])  # (state, group, unit)
        d2 = part_means(np.mean(d ** 2, axis=(0, 2)), 0)
        d4 = part_means(np.mean(d ** 4, axis=(0, 2)), 0)
        tangents = {s: x / math.sqrt(d2.mean()) for s, x in tangents.items()}  # linear map: one common factor
        if t in marks:
            parts = d4 / (3 * d2 ** 2) - 1
            out[t] = (float(d4.mean() / (3 * d2.mean() ** 2) - 1), float(parts.std(ddof=1) / math.sqrt(len(parts))))
    return out


def part_fluctuation(cell, h: dict, T: int, input_dim: int, population: int, seeds: int,
                     parts: int) -> tuple[float, float]:
    """(n/2) Var(log G) over the tied gain's ``parts`` parts (n units each), mean and standard error over
    ``seeds`` runs."""
    per_seed = []
    for seed in range(seeds):
        g = tied_gain(cell, h, T, input_dim=input_dim, population=population, seed=seed, parts=parts)
        # standard_error = std over the parts / sqrt(parts), so (n/2) Var = (population/2) standard_error^2
        per_seed.append(population * g.standard_error[-1] ** 2 / 2)
    v = np.array(per_seed)
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(seeds)) if seeds > 1 else math.nan


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rules", nargs="+", choices=sorted(RULES), default=["lstm20", "gru20", "lstm200", "janet200"])
    ap.add_argument("--width", type=int, default=500, help="the networks' width and input size (default 500)")
    ap.add_argument("--networks", type=int, default=3)
    ap.add_argument("--population", type=int, default=4000, help="the tangent DMFT's units (default 4000)")
    ap.add_argument("--fluctuation-population", type=int, default=None,
                    help="the part fluctuation's population (default --population)")
    ap.add_argument("--parts", type=int, default=8, help="the part fluctuation's parts per run (default 8)")
    ap.add_argument("--seeds", type=int, default=10, help="tied_gain runs for the part fluctuation (0: skip)")
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/tied_spread_sites.json"))
    args = ap.parse_args()
    out = {"machine": machine(), "source": source_version(), "options": vars(args), "load": os.getloadavg(),
           "rows": []}
    for name in args.rules:
        cell, h, T, _ = load_rule(name)
        t0 = time.process_time()
        nets = networks(cell, h, T, args.width, args.networks, tied=True)
        t1 = time.process_time()
        site = single_site(cell, h, T, args.width, args.population)
        t2 = time.process_time()
        fluct = part_fluctuation(cell, h, T, args.width, args.fluctuation_population or args.population,
                                 args.seeds, args.parts) if args.seeds else None
        t3 = time.process_time()
        cross = np.array(nets["spread"]) - np.array(nets["spread_diagonal"])
        row = {"rule": name, "T": T, "networks": nets,
               "network_cross_unit": [float(cross.mean()), float(cross.std(ddof=1) / math.sqrt(len(cross)))],
               "dmft_single_site": {str(t): v for t, v in site.items()}, "dmft_part_fluctuation": fluct,
               "cpu_seconds": {"networks": t1 - t0, "single_site": t2 - t1, "part_fluctuation": t3 - t2}}
        out["rows"].append(row)
        print(f"{name}: networks spread {nets['spread_mean']:.5g}({nets['spread_stderr']:.2g}), diagonal "
              f"{nets['spread_diagonal_mean']:.5g}({nets['spread_diagonal_stderr']:.2g}), cross-unit "
              f"{cross.mean():.5g}; DMFT single-site {site[T][0]:.4g}({site[T][1]:.2g})"
              + (f", part fluctuation {fluct[0]:.4g}({fluct[1]:.2g})" if fluct else "")
              + f"; CPU {t1 - t0:.0f} + {t2 - t1:.0f} + {t3 - t2:.0f} s", flush=True)
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    out["load_after"] = os.getloadavg()
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
