"""``symmft train``: train a cell on an offline task from an init rule or a framework default (symmft.harness.train)."""

from __future__ import annotations

from symmft.init.search import BASELINES
from symmft.harness.tasks import TASKS
from symmft.harness.train import train
from symmft.cli.common import cell_argument, command, num, output_directory, print_json, print_table


def add_training_options(p) -> None:
    """Options a single run and a sweep share: task, width, budget, optimizer, backend."""
    p.add_argument("--task", required=True, choices=tuple(TASKS), help="the task (" + "; ".join(
        f"{k}: {v}" for k, v in TASKS.items()) + ")")
    p.add_argument("--width", "-H", type=int, default=64, metavar="H", help="units per state (default: %(default)s)")
    p.add_argument("--steps", type=int, default=1000, metavar="N", help="Adam steps (default: %(default)s)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: %(default)s)")
    p.add_argument("--batch", type=int, default=64, metavar="B", help="minibatch size (default: %(default)s)")
    p.add_argument("--clip", type=float, default=1.0,
                   help="clip the global gradient norm to this value; 0: no clipping (default: %(default)s)")
    p.add_argument("--padding", default="zeros", choices=("zeros", "noise"),
                   help="digits_padded's padding: zeros, or N(0, 1) noise (default: %(default)s)")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"), help="(default: %(default)s)")
    p.add_argument("--backend", default="numpy", choices=("numpy", "cupy"),
                   help="array library of the generated plan; cupy needs a CUDA GPU (default: %(default)s)")


def add_parsers(sub) -> None:
    """The ``train`` subcommand."""
    p = command(
        sub, "train", "train a cell on an offline task from an init rule or a framework default",
        "Train CELL on TASK with sequences of length T (digits_padded: 64 pixels + T padding steps; "
        "digits_repeated: T steps; copy: 10 symbols, T blanks, recall; adding: T steps) from --init: an init rule "
        "(RULE.json from 'symmft critical'), 'critical' (a rule searched for this cell, the task's sequence length "
        f"and input statistics, cached under $SYMMFT_CACHE or ~/.cache/symmft; a few seconds of CPU the first time), or a "
        f"framework default drawn as the framework draws it ({', '.join(BASELINES)}). Adam with global "
        "gradient-norm clipping on minibatches, a linear readout of the output state at the task's readout steps, "
        "deterministic given --seed. With -o DIR: DIR/metrics.jsonl (one JSON line per step: step, loss, "
        "accuracy or mse, grad_norm, time; test evaluations with \"split\": \"test\"), DIR/checkpoint.npz (every "
        "--checkpoint-every steps; rerunning the same command into DIR resumes from it, bit-identically) and "
        "DIR/result.json. Prints the final test metric, the chance level and the theory's xi and m1 for the init.",
        [
            "symmft train lstm --init critical --task digits_padded --length 300 --width 64 --steps 1000 -o runs/crit",
            "symmft train lstm --init pytorch --task digits_padded --length 300 --lr 3e-4 -o runs/torch",
            "symmft train lstm --init reports/lstm_T364.json --task digits_padded --length 300 --json",
            "symmft train gru --init keras --task adding --length 100 --steps 500",
            "symmft train lstm --init chrono --task copy --length 50 --backend cupy --width 256",
        ],
        ("xi", "m1, m2"),
    )
    cell_argument(p)
    p.add_argument("--init", required=True, metavar="RULE.json|critical|" + "|".join(BASELINES),
                   help="initialization: an init rule file, 'critical', or a framework default")
    p.add_argument("--length", "-T", type=int, required=True, metavar="T", help="task length T")
    add_training_options(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the draw and the minibatch order (default: 0)")
    p.add_argument("--checkpoint-every", type=int, default=100, metavar="N", help="(default: %(default)s)")
    p.add_argument("--eval-every", type=int, default=0, metavar="N",
                   help="also evaluate the test split every N steps (default: only at the end)")
    p.add_argument("-o", "--output", metavar="DIR", help="write metrics, checkpoints and the result here")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=_run)


def _run(args) -> int:
    output_directory(args.output, writes="metrics.jsonl, checkpoint.npz and result.json")
    result = train(args.cell, args.init, args.task, args.length, width=args.width, steps=args.steps, lr=args.lr,
                   batch=args.batch, clip=args.clip, seed=args.seed, padding=args.padding, out_dir=args.output,
                   backend=args.backend, dtype=args.dtype, checkpoint_every=args.checkpoint_every,
                   eval_every=args.eval_every, progress=True)
    if args.json:
        print_json(result.to_json())
        return 0
    c, m = result.config, result.metric
    print(f"{c['cell']} from {c['init']} on {c['task']} T={c['length']}: width {c['width']}, {c['steps']} Adam "
          f"steps, lr {c['lr']:g}, batch {c['batch']}, clip {c['clip']:g}, seed {c['seed']} "
          f"({result.seconds:.1f} s{', resumed at step %d' % result.resumed_from if result.resumed_from else ''})")
    rows = [[f"test {m}", num(result.test[m])], ["test loss", num(result.test["loss"])],
            [f"chance {m}", num(result.chance)], ["chance loss", num(result.chance_loss)],
            ["last train loss", num(result.final_train_loss)],
            ["xi (theory)", num(result.predicted.get("xi"))], ["m1 (theory)", num(result.predicted.get("m1"))]]
    print_table(["quantity", "value"], rows)
    for note in result.init.get("notes", []):
        print(f"note: {note}")
    if result.out_dir:
        print(f"wrote {result.out_dir}")
    return 0
