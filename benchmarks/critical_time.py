"""Time of ``symmft critical lstm --length 1000`` (and, optionally, of ``train --init critical`` before its first
step), this tree against an earlier one, in one run: CPU seconds of back-to-back processes, alternating.

What is measured. Each command runs in a fresh process with its own derivation cache folder (``SYMMFT_CACHE``),
once per tree into an empty folder (**cold**: sympy derives the maps and the Jacobian moments and writes them)
and then ``--repeat`` times into the filled one (**warm**: a second process, the usual case). CPU time is the
children's user + system time (``resource.getrusage``), which on a shared machine moves far less than the wall
time; the wall time and the load average are recorded too. The earlier tree is a ``git archive`` of ``--before``
(default ``main``) unpacked into a temporary folder; the rules both trees print are compared (the search's
results must agree to its tolerance).

``train --init critical`` (``--train``): what a user waits before training starts. A fresh process runs
``train("lstm", "critical", "copy", 1000, width=32)`` (what ``symmft train lstm --init critical --task copy
--length 1000 --width 32`` calls) and reports its CPU time when the first training step begins: imports, the
critical search for the task's length and input statistics, the parameters' draw. Its rule cache is removed
before each run, so that the search runs.

Run from the repository root: ``python benchmarks/critical_time.py [--before REV] [--repeat N] [--train]``;
writes ``benchmarks/results/critical_time.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import machine, source_version  # benchmarks/provenance.py

ROOT = Path(__file__).resolve().parents[1]
CRITICAL = ["critical", "lstm", "--length", "1000", "--json"]
# Runs in the fresh process: CPU seconds since the process began, at the start of the first training step.
TRAIN_CHILD = r"""
import json, time
from symmft.harness import train as harness

def first_step(*args):
    print(json.dumps({"cpu_to_first_step": time.process_time()}), flush=True)
    raise SystemExit(0)

harness.Model.loss_and_grads = first_step
harness.train("lstm", "critical", "copy", 1000, width=32, steps=1)
"""
TRAIN = ["-c", TRAIN_CHILD]


def run(tree: Path, cache: Path, args: list[str]) -> dict:
    """One fresh process of ``python -m symmft ARGS`` (or ``python -c CODE`` for ``["-c", CODE]``) in ``tree``:
    CPU and wall seconds, and its stdout."""
    env = dict(os.environ, PYTHONPATH=str(tree), SYMMFT_CACHE=str(cache), OMP_NUM_THREADS="1",
               OPENBLAS_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1")
    if args is TRAIN:
        shutil.rmtree(cache / "rules", ignore_errors=True)  # the search must run, not the stored rule
    command = [sys.executable, *args] if args[0] == "-c" else [sys.executable, "-m", "symmft", *args]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise SystemExit(f"{tree}: {' '.join(command)[:200]} failed:\n{proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if args is TRAIN:  # the CPU time up to the first step, not the whole process
        cpu = json.loads(proc.stdout.strip().splitlines()[-1])["cpu_to_first_step"]
    return {"cpu": round(cpu, 2), "wall": round(wall, 2), "load": round(os.getloadavg()[0], 1), "stdout": proc.stdout}


def unpack(rev: str, into: Path) -> Path:
    """The tree of commit ``rev`` (git archive), unpacked under ``into``."""
    target = into / "before"
    target.mkdir()
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def rule_difference(a: str, b: str) -> dict:
    """Largest relative difference between two ``critical --json`` outputs: hyperparameters, predictions."""
    ra, rb = json.loads(a)["rule"], json.loads(b)["rule"]
    out = {}
    for key in ("hyperparameters", "criteria"):
        numbers = [k for k, v in rb[key].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
                   and not k.startswith("M_")]  # the means are 0 up to rounding (1e-15)
        out[key] = max(abs(ra[key][k] - rb[key][k]) / max(abs(rb[key][k]), 1e-12) for k in numbers)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", default="main", help="the earlier tree: a git revision (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=2, help="warm runs per tree (default: %(default)s)")
    p.add_argument("--train", action="store_true", help="also time train --init critical up to its first step")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="critical_time_") as tmp:
        tmp = Path(tmp)
        trees = {"before": unpack(args.before, tmp), "after": ROOT}
        caches = {name: tmp / f"cache_{name}" for name in trees}
        commands = {"critical": CRITICAL, **({"train": TRAIN} if args.train else {})}
        runs: dict = {name: {c: {"cold": None, "warm": []} for c in commands} for name in trees}
        for name, tree in trees.items():  # cold: the first process of each tree fills its cache
            runs[name]["critical"]["cold"] = run(tree, caches[name], CRITICAL)
            print(f"{name:6s} critical cold: {runs[name]['critical']['cold']['cpu']:.2f} s CPU", flush=True)
        for _ in range(args.repeat):  # warm, alternating, so that a change of load hits both trees alike
            for command, argv_ in commands.items():
                for name, tree in trees.items():
                    r = run(tree, caches[name], argv_)
                    runs[name][command]["warm"].append(r)
                    print(f"{name:6s} {command} warm: {r['cpu']:.2f} s CPU, {r['wall']:.2f} s wall, load {r['load']}",
                          flush=True)
    difference = rule_difference(runs["after"]["critical"]["warm"][0]["stdout"],
                                 runs["before"]["critical"]["warm"][0]["stdout"])
    for name in runs:
        for command in runs[name]:
            for r in [runs[name][command]["cold"], *runs[name][command]["warm"]]:
                if r:
                    r.pop("stdout")
    best = {name: {c: min(r["cpu"] for r in runs[name][c]["warm"]) for c in commands} for name in runs}
    summary = {c: {"before_cpu": best["before"][c], "after_cpu": best["after"][c],
                   "faster_by": round(best["before"][c] / best["after"][c], 2)} for c in commands}
    summary["critical"]["cold_before_cpu"] = runs["before"]["critical"]["cold"]["cpu"]
    summary["critical"]["cold_after_cpu"] = runs["after"]["critical"]["cold"]["cpu"]
    before_commit = subprocess.run(["git", "rev-parse", args.before], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    result = {"machine": machine(), "source": source_version(), "before": f"{args.before} ({before_commit})", "summary": summary,
              "rule_relative_difference": difference, "runs": runs}
    out = ROOT / "benchmarks" / "results" / "critical_time.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    for c, s in summary.items():
        print(f"{c}: before {s['before_cpu']:.2f} s CPU, after {s['after_cpu']:.2f} s CPU (best warm): "
              f"{s['faster_by']:.2f}x")
    print(f"rules differ by at most {difference['hyperparameters']:.2g} (hyperparameters), "
          f"{difference['criteria']:.2g} (predictions), relative; wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
