"""The stationary solver where a multiplied vector has a nonzero mean without quenched biases (RESULTS.md §7.2e).

What: at the LSTM with mu_f = 4, c_x = 0.5 and a candidate bias mean mu_g (rho2 = 0 on every map), either
``solve_stationary`` (``solver``: lags 64, the given population and seed, 2^17 steps; every pass's Q printed) or
width-2000 tied networks (``net``: ``simulate(tied=True)``, 4 input pairs, each state's mean, Q, C averaged
over the second half of the run, and Q over its two quarters to show it has levelled off). Run it under the code
to be measured (PYTHONPATH) to compare versions. CPU seconds are process time (all threads); run under ``nice``
with OMP_NUM_THREADS=1.

Run: ``python benchmarks/stationary_mean.py 1.0 solver 1000 0`` or ``python benchmarks/stationary_mean.py 1.0 net 2000 3``
(mu_g, mode, population or steps, seed or number of seeds). Prints one ``RESULT`` line of JSON.
"""

from __future__ import annotations

import json
import os
import sys
import time

from symmft import load_cell, simulate
from symmft.cell.params import resolve
from symmft.theory.stationary import solve_stationary


def main(mu_g: float, mode: str, size: int, seed: int) -> dict:
    hp = {"mu_f": 4.0, "mu_g": mu_g, "c_x": 0.5}
    cell = load_cell("lstm")
    h = {k: float(v) for k, v in resolve(cell, hp).items()}
    out: dict = {"h": hp, "mode": mode}
    started = time.process_time()
    if mode == "solver":
        r = solve_stationary(cell, h, lags=64, population=size, seed=seed, max_steps=2 ** 17,
                             progress=lambda p: print(p["pass"], p["steps"], p["lags"], p["Q"], p["C"], flush=True))
        out.update(Q=r["mean"][:, 1].tolist(), C=r["mean"][:, 2].tolist(), M=r["mean"][:, 0].tolist(),
                   se=r["standard_error"][:, 1].tolist(), seC=r["standard_error"][:, 2].tolist(),
                   converged=r["converged"], reason=r["reason"], lags=r["lags"], steps=r["steps"],
                   static_fraction=r["static_fraction"], mean_source=r.get("mean_source"))
    else:
        per = []
        for s in range(seed):
            res = simulate("lstm", hp, width=2000, steps=size, tied=True, seed=s, batch=4)
            a, q = size // 2, size * 3 // 4
            per.append({name: [float(tr.mean[a:].mean()), float(tr.second_moment[a:].mean()),
                               float(tr.cross_moment[a:].mean()), float(tr.second_moment[a:q].mean()),
                               float(tr.second_moment[q:].mean())] for name, tr in res.states.items()})
            print(s, per[-1], flush=True)
        out["per_seed"] = per
    out["cpu_s"], out["load"] = time.process_time() - started, os.getloadavg()
    return out


if __name__ == "__main__":
    print("RESULT", json.dumps(main(float(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))))
