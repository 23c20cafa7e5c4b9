"""The spread judged on tied networks: what the tied check (``tied_criteria``) costs and decides now that its spread
is the exact Jacobian product of finite tied networks, and the measurements that set its defaults.

Sections (``--sections``):

* ``check``: per stored rule (tests/data) and input size, ``tied_criteria`` at its defaults (2 networks of width
  SPREAD_WIDTH; input size SPREAD_INPUT_DIM where the layer's is infinite): its CPU seconds, of which the
  networks' (``spread_networks["cpu_seconds"]``; the rest is what the check cost before, its code unchanged),
  the judged spread with its standard error, the free sum it judged before (``spread_free``), fails and
  uncertain;
* ``widths``: :func:`~symmft.init.tied_check.network_spread` at several widths (does the spread depend on the
  width the check builds? what does a network cost?);
* ``inputs``: the same at several input sizes (which input size stands for an infinite one?).

Run from the repository root: ``OMP_NUM_THREADS=1 python benchmarks/tied_spread_check.py --sections check
--rules lstm20 lstm200`` (seconds to a minute), ``--rules lstm1000`` (a few CPU minutes and 3 GB: the check's
T = 1000 transient at population 1000). Writes ``benchmarks/results/tied_spread_check.json`` (one list per
section, rows appended as they finish). CPU seconds are process_time; record the load, the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from symmft import Criteria  # noqa: E402
from symmft.init.tied_check import network_spread, tied_criteria  # noqa: E402

from tied_spread import load_rule  # noqa: E402  (benchmarks/tied_spread.py: the stored rules)

#: the check's population per rule length (T = 1000: the population the README's T = 1000 runs use)
POPULATION = {20: 2000, 200: 2000, 1000: 1000}


def check_row(name: str, input_dim: int | None) -> dict:
    cell, h, T, _ = load_rule(name)
    t0 = time.process_time()
    c = tied_criteria(cell, h, T, Criteria(T), input_dim=input_dim, population=POPULATION.get(T, 2000))
    total = time.process_time() - t0
    nets = c["spread_networks"] or {}
    return {"rule": name, "T": T, "input_dim": input_dim, "cpu_seconds": total,
            "networks_cpu_seconds": nets.get("cpu_seconds"),
            "before_cpu_seconds": total - nets.get("cpu_seconds", 0),
            "spread": c["values"]["spread"], "spread_error": c["standard_error"]["spread"],
            "spread_free": c["values"]["spread_free"], "spread_free_error": c["standard_error"]["spread_free"],
            "networks": nets, "fails": c["fails"], "uncertain": c["uncertain"], "load": os.getloadavg()[0]}


def sweep_row(name: str, width: int, input_dim: int | None, count: int) -> dict:
    cell, h, T, _ = load_rule(name)
    r = network_spread(cell, h, T, width=width, networks=count, input_dim=input_dim)
    v = np.array(r["values"])
    return {"rule": name, "T": T, "width": width, "input_dim": r["input_dim"], "spread": r["spread"],
            "scatter_error": float(v.std(ddof=1) / np.sqrt(len(v))), "values": r["values"],
            "cpu_seconds_per_network": r["cpu_seconds"] / count, "load": os.getloadavg()[0]}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="example: python benchmarks/tied_spread_check.py --sections check --rules lstm20")
    ap.add_argument("--sections", nargs="+", choices=("check", "widths", "inputs"), default=["check"])
    ap.add_argument("--rules", nargs="+", default=["lstm20", "gru20", "lstm200", "janet200"])
    ap.add_argument("--input-dims", nargs="+", default=["inf"],
                    help="check: the layer's input sizes ('inf' or an integer; default inf)")
    ap.add_argument("--widths", type=int, nargs="+", default=[200, 300, 500])
    ap.add_argument("--sweep-inputs", type=int, nargs="+", default=[1, 8, 100, 1000, 4096])
    ap.add_argument("--networks", type=int, default=4, help="networks per point of the sweeps (default 4)")
    ap.add_argument("--output", default=str(ROOT / "benchmarks/results/tied_spread_check.json"))
    args = ap.parse_args()
    out = {"machine": machine(), "source": source_version(), "options": vars(args), "load": os.getloadavg()}
    jobs = []
    if "check" in args.sections:
        jobs += [("check", lambda n=n, m=m: check_row(n, None if m == "inf" else int(m)))
                 for n in args.rules for m in args.input_dims]
    if "widths" in args.sections:
        jobs += [("widths", lambda n=n, w=w: sweep_row(n, w, None, args.networks))
                 for n in args.rules for w in args.widths]
    if "inputs" in args.sections:
        jobs += [("inputs", lambda n=n, m=m: sweep_row(n, 300, m, args.networks))
                 for n in args.rules for m in args.sweep_inputs]
    for section, job in jobs:
        row = job()
        out.setdefault(section, []).append(row)
        print(section, json.dumps({k: v for k, v in row.items() if k not in ("networks", "values")}), flush=True)
        Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    out["load_after"] = os.getloadavg()
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
