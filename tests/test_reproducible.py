"""The same numbers in every process: outputs do not depend on Python's string hashes (PYTHONHASHSEED).

sympy objects hash through their names' string hashes, so any iteration over a set of them, or a product sympy
cannot sort, changes order from process to process; the generated code then sums in another order and the
numbers change in the last digits (before the fix, seeds 0 and 1: the T = 10 and T = 100 LSTM rules' nu2_i in the
7th digit, the printed LSTM map's factor order). Each command runs in fresh processes under different
hash seeds, with the disk cache off and with a cache written under one seed and read under another, and the
outputs must be identical bytes, timings aside.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import sympy as sp

from symmft.theory.expectation import E1, E2, EL, sigmoid, u

ROOT = Path(__file__).resolve().parents[1]

#: A derivation printed (the LSTM map's text), the exact conditional law evaluated (GRU, two input sequences),
#: and a short criticality search (its rule's digits come from the Jacobian moments' generated code).
COMMANDS = [
    ["derive", "lstm"],
    ["analyze", "gru", "--set", "c_x=0.5", "--json"],
    ["critical", "lstm", "--length", "10", "--json"],
]

#: Runs every command in one process, outputs separated by a line that no output holds.
CHILD = """
import contextlib, io, sys
from symmft.cli.main import main
for argv in {commands!r}:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(argv)
    print(code, out.getvalue(), sep="\\n", end="\\n-----\\n")
"""


def _start(seed: int, cache: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONHASHSEED": str(seed), "SYMMFT_CACHE": cache, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", CHILD.format(commands=COMMANDS)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _outputs(process: subprocess.Popen) -> list:
    """Each command's output; JSON re-printed without its timings (``seconds``: wall-clock, never equal), floats
    in repr (every bit)."""
    stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
    out = []
    for part in stdout.split("\n-----\n")[:-1]:
        code, text = part.split("\n", 1)
        assert code == "0", text
        out.append(json.dumps(_without_timings(json.loads(text))) if text.lstrip().startswith("{") else text)
    assert len(out) == len(COMMANDS)
    return out


def _without_timings(d):
    if isinstance(d, dict):
        return {k: _without_timings(v) for k, v in d.items() if k != "seconds"}
    if isinstance(d, list):
        return [_without_timings(v) for v in d]
    return d


def _files(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def test_outputs_are_the_same_under_every_hash_seed_with_and_without_the_disk_cache(tmp_path):
    # (two processes at once: the machine's two cores; then one that reads what the second wrote)
    off, write = _start(0, "off"), _start(1, str(tmp_path))
    fresh, written = _outputs(off), _outputs(write)
    stored = _files(tmp_path)
    assert any(p.parent.name == "derivations" for p in stored)  # the maps' sympy work and generated code
    read = _outputs(_start(2, str(tmp_path)))
    assert _files(tmp_path) == stored  # every entry was read, none rebuilt (nor rewritten)
    for i, argv in enumerate(COMMANDS):
        assert written[i] == fresh[i], f"{' '.join(argv)}: hash seed 1 (cache written) differs from 0 (cache off)"
        assert read[i] == fresh[i], f"{' '.join(argv)}: hash seed 2 (cache read) differs from 0 (cache off)"


def test_a_product_of_expectations_is_the_same_expression_in_either_order():
    # the cause: a Lambda argument left the expectations non-commutative, so sympy kept a product in the order it
    # was built, and that order followed the iteration of frozensets of sympy objects (string hashes)
    m, v, k, T = sp.symbols("m v k T", real=True)
    a = E1(sp.Lambda(u, sigmoid(u)), m, v)
    b = E2(sp.Lambda(u, sp.tanh(u)), sp.Lambda(u, sp.tanh(u)), m, v, k)
    c = EL(sp.Lambda(u, sigmoid(u + m)), T)
    assert a.is_commutative and b.is_commutative and c.is_commutative
    assert (a * b * c).args == (c * b * a).args == (b * a * c).args
    assert a * b - b * a == 0
