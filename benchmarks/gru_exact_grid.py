"""The exact conditional law of the reset-after GRU on grids and in searches (docs/laws.md, *Cost*): CPU seconds of
the default against the moment closure, for one source tree.

Run with a tree on PYTHONPATH (this one, or an export of an older commit) and one BLAS thread:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 SYMMFT_CACHE=/tmp/bench-cache PYTHONPATH=TREE \\
        python benchmarks/gru_exact_grid.py [--cli] [--exact]

Prints one line per measurement: the 256-point GRU grid (16 x 16, nu2_hn x mu_z) under each closure at c_x = 1
and c_x = 0.5 (whole analysis, CPU seconds, sympy derivation and compilation excluded by a warm-up on one corner
of the grid), and with ``--cli`` the commands ``symmft critical gru
--length 100`` and ``symmft phase gru`` (16 x 16) as subprocesses (children's CPU seconds, second run: the first
fills the on-disk derivation cache), each also with the grids' default forced to the moment closure (the old
default); ``--exact`` adds the full two-sequence law (``closure="exact"``) on the c_x = 0.5 grid. Times are CPU
seconds (time.process_time), not wall time: the machine is shared.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time

import numpy as np


def cpu(f):
    start = time.process_time()
    out = f()
    return out, time.process_time() - start


def grid(closures: list[str], c_x: float) -> None:
    from symmft import analyze_grid, load_cell

    cell = load_cell("gru")
    axes = {"nu2_hn": np.linspace(0.5, 2.0, 16), "mu_z": np.linspace(-1.0, 2.0, 16)}
    mesh = dict(zip(axes, np.meshgrid(*axes.values(), indexing="ij")))
    for closure in closures:
        try:
            analyze_grid(cell, {"c_x": c_x}, {k: v[:1, :2] for k, v in mesh.items()}, closure=closure, progress=False)
            a, seconds = cpu(lambda: analyze_grid(cell, {"c_x": c_x}, mesh, closure=closure, progress=False))
        except Exception as e:  # an old tree may lack a closure
            print(f"grid c_x={c_x} closure={closure}: {type(e).__name__}: {e}")
            continue
        ok = int(np.sum(a.status == 0))
        print(f"grid c_x={c_x} closure={closure}: {seconds:.2f} s CPU, {ok}/256 OK, "
              f"laws {sorted(set(a.laws.values()))}, mean lambda {np.nanmean(a.lambda_):.12f}", flush=True)


#: Runs the command line with the default closure on grids forced to the moment closure (the old default), for a
#: same-tree comparison.
MOMENT_CLOSURE = """
import sys
from symmft.theory import dynamics
exact = dynamics.map_closure
dynamics.map_closure = lambda closure, grid, *rest: (
    "gaussian" if grid and closure == "auto" else exact(closure, grid, *rest))
from symmft.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def cli(args: list[str], moment_closure: bool = False) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = ["-c", MOMENT_CLOSURE] if moment_closure else ["-m", "symmft"]
    subprocess.run([sys.executable, *command, *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


if __name__ == "__main__":
    print(f"load average {os.getloadavg()}", flush=True)
    grid(["gaussian", "exact-diagonal", "auto"], 1.0)
    grid(["gaussian", "exact-diagonal", "auto", *(["exact"] if "--exact" in sys.argv else [])], 0.5)
    if "--cli" in sys.argv:
        for args in (["critical", "gru", "--length", "100", "-o", "/tmp/bench_gru_rule.json"],
                     ["phase", "gru", "--x", "mu_z=-1:4:16", "--y", "nu2_hn=0.25:3:16", "-o", "/tmp/bench_gru_phase"]):
            for moment_closure in (False, True):
                cli(args, moment_closure)  # fills the derivation cache
                print(f"symmft {' '.join(args[:2])}{' (grids: moment closure)' if moment_closure else ''}: "
                      f"{cli(args, moment_closure):.2f} s CPU (children)", flush=True)
    print(f"load average {os.getloadavg()}", flush=True)
