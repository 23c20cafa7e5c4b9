"""Trainability maps on CPU (issue 13): LSTM and reset-after GRU, on padded digits and the adding problem,
through ``symmft.harness.trainability`` (a local dask cluster of 2 single-threaded workers).

Not a test: about 3-6 minutes of one core per map with the budget below, on the shared 2-core machine longer.
Writes benchmarks/results/trainability_maps/<cell>_<task>/ (points/, runs/, confirm.*, trainability.*) and
benchmarks/results/trainability_maps/<cell>_<task>.png (a copy of the figure for the report). Rerunning resumes:
finished runs are reused, so adding inits (``--inits``) only trains the new ones.

The budget is fixed before any run and equal for every init and grid cell: width 16, 150 Adam steps, lr 3e-3
(higher than the harness default 1e-3 because the budget is short), batch 32, clip 1.0, float32, seed 0 (``--seeds``
adds more: the seed-0 runs are reused).

    python benchmarks/trainability_maps.py                         # every map
    python benchmarks/trainability_maps.py gru_digits_padded       # one map
    python benchmarks/trainability_maps.py lstm_digits_padded --seeds 0 1   # a second seed for one map

The critical-vs-baseline table at T = 100, 300, 1000 is benchmarks/trainability_table.py (a longer budget).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "trainability_maps"
BUDGET = {"width": 16, "steps": 150, "lr": 3e-3, "batch": 32, "clip": 1.0}
POINTS = ("critical", "pytorch", "keras", "forget1", "chrono")
#: name -> (cell, task, axis, values, lengths): values chosen so xi spans the lengths (theory at the defaults)
MAPS = {
    "gru_digits_padded": ("gru", "digits_padded", "mu_z", (0, 2, 3.5, 5, 6.5), (10, 30, 100)),
    "lstm_digits_padded": ("lstm", "digits_padded", "mu_f", (-1, 1, 2, 3, 4), (10, 30, 100)),
    "gru_adding": ("gru", "adding", "mu_z", (0, 2, 3.5, 5, 6.5), (10, 30, 100)),
    "lstm_adding": ("lstm", "adding", "mu_f", (-1, 1, 2, 3, 4), (10, 30, 100)),
}


def main() -> None:
    from symmft.harness.confirm import Sweep
    from symmft.harness.trainability import constants_text, table as map_table, trainability

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("maps", nargs="*", default=list(MAPS))
    ap.add_argument("--inits", nargs="*", default=list(POINTS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of every run (default: 0)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--markdown", action="store_true", help="print the finished maps as markdown tables")
    args = ap.parse_args()
    if args.markdown:
        for name in args.maps:
            if (OUT / name / "trainability.json").exists():
                markdown(name, json.loads((OUT / name / "trainability.json").read_text()), map_table, constants_text)
        return
    for name in args.maps:
        cell, task, axis, values, lengths = MAPS[name]
        inits = [i if i in POINTS else str(Path(i).resolve()) for i in args.inits]
        if cell == "gru" and (OUT / "gru_T1000_rule.json").exists():
            inits.append(str(OUT / "gru_T1000_rule.json"))  # the leaky-integrator rule of the old criteria
        sweep = Sweep(cell, task, lengths, tuple(inits), tuple(args.seeds), **BUDGET)
        result = trainability(sweep, axis, values, OUT / name, workers=args.workers, progress=True)
        shutil.copy(OUT / name / "trainability.png", OUT / f"{name}.png")
        print(name)
        for line in constants_text(result):
            print(" ", line)


def markdown(name: str, result: dict, table, constants_text) -> None:
    """The map as a markdown table (* = trained), the predicted time scales per value, the constants."""
    header, rows = table(result)
    xi = dict(zip(result["values"], result["fits"]["xi"]["tau"]))
    back = dict(zip(result["values"], result["fits"]["backward"]["tau"]))
    print(f"\n**{name}** ({result['metric']}, chance {result['chance'][0]:.3f}; * = trained)\n")
    print("| " + " | ".join(header + ["xi", "1/abs(log m1)"]) + " |")
    print("|" + "---|" * (len(header) + 2))
    for r in rows:
        v = float(r[0]) if r[0][0].isdigit() or r[0][0] == "-" else None
        extra = [f"{xi[v]:.3g}", f"{back[v]:.3g}"] if v is not None else ["", ""]
        print("| " + " | ".join(r + extra) + " |")
    print()
    for line in constants_text(result):
        print(f"- {line}")


if __name__ == "__main__":
    main()
