"""How long ``symmft report`` takes: the quick LSTM report (goal < 3 min on 2 cores) and the full one (< 15 min).

Runs ``python -m symmft report CELL [--quick] -o OUT`` in a child process and records its wall time, its CPU time
(user + system of the child: on a shared machine this is the number that says what the report costs, the wall time
says what a user waited under that load) and the load average before and after. Writes
benchmarks/results/report_time.json.

    python benchmarks/report_time.py lstm --quick
    python benchmarks/report_time.py lstm
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import ROOT, machine, source_version  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "report_time.json"


def measure(cell: str, quick: bool) -> dict:
    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "symmft", "report", cell, "-o", out] + ["--quick"] * quick
        load_before = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        sections = json.loads((Path(out) / "results.json").read_text())["sections"]
    return {"cell": cell, "quick": quick, "command": f"symmft report {cell}" + " --quick" * quick,
            "wall_s": round(wall, 1), "cpu_s": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 1),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
            "failed_sections": [n for n, s in sections.items() if s["error"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cell")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    source = source_version()  # before the run: the code the report process loaded
    row = measure(args.cell, args.quick)
    print(json.dumps(row))
    rows = json.loads(RESULTS.read_text())["runs"] if RESULTS.exists() else []
    rows = [r for r in rows if (r["cell"], r["quick"]) != (args.cell, args.quick)] + [{**row, "source": source}]
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"machine": machine(), "runs": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
