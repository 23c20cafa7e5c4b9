"""Forward confirmation (docs/theory.md §4): how much of the digit survives T padding steps in the UNTRAINED network.

For each init and padding length T: draw the LSTM (width 64, the same draw as seed 0 of benchmarks/trainability.py),
run every digit through it with the generated plan in float32 (the training dtype), and fit a logistic regression
(scikit-learn, default L2 penalty C = 1) on the raw final output state h_T of the training split; report its test
accuracy. No optimizer is involved, so this isolates the initialization's signal propagation from training
dynamics. Raw, not standardized, features: standardizing would let the probe read differences at the 1e-9 level
that no float32 training step can use. Also reports the RMS of h_T and its spread across digits,
sqrt(mean over units of the variance over digits) / RMS: the theory's 1 - c, which falls like e^(-T/xi). Writes benchmarks/results/trainability/probe.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

HERE = Path(__file__).resolve().parent


def main() -> None:
    from sklearn.linear_model import LogisticRegression

    from symmft.cell.trace import load_cell
    from symmft.harness.plan import load_plan
    from symmft.harness.tasks import make_task
    from symmft.harness.train import initial_parameters, resolve_init

    out = HERE / "results" / "trainability"
    lengths = [int(a) for a in sys.argv[1:]] or [30, 100, 300, 1000]
    inits = ["critical", str(out / "lstm_T364_qx1_rule.json"), "pytorch", "keras", "chrono", "forget1"]
    cell, width = load_cell("lstm"), 64
    plan = load_plan(cell, dtype="float32")
    rows = []
    for T in lengths:
        task = make_task("digits_padded", T)
        for init in inits:
            start = time.perf_counter()
            info = resolve_init(cell, init, task, width)  # "critical": searched (or cached) for this T
            # the same parameter stream as train(seed=0)
            p_seed = int(np.random.SeedSequence(0).spawn(3)[0].generate_state(1)[0])
            params = initial_parameters(cell, info, width, 1, task.steps, p_seed)
            feats = {}
            for split in ("train", "test"):
                xs, y = task.batch(split, np.arange(task.size(split)))
                outputs, _ = plan.forward(params, xs)
                feats[split] = (np.asarray(outputs[-1]), y[0])
            h = feats["train"][0].astype(np.float64)
            rms = float(np.sqrt(np.mean(h ** 2)))
            spread = float(np.sqrt(np.mean(h.var(axis=0))) / rms) if rms > 0 else 0.0
            clf = LogisticRegression(max_iter=2000).fit(feats["train"][0], feats["train"][1])
            acc = float(clf.score(feats["test"][0], feats["test"][1]))
            rows.append({"T": T, "init": Path(init).stem, "probe_test_accuracy": acc, "rms_h_T": rms, "spread": spread,
                         "chance": task.chance, "seconds": round(time.perf_counter() - start, 2)})
            print(json.dumps(rows[-1]), flush=True)
    (out / "probe.json").write_text(json.dumps({"width": width, "seed": 0, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
