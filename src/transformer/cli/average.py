"""`transformer average RUN_DIR --last K [--out FILE]`: average the last K checkpoints."""

from __future__ import annotations

import argparse
from pathlib import Path

from transformer.cli.errors import UserError, check_output
from transformer.training.checkpoint import CheckpointError, average, save_weights, step_dirs


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "average",
        help="average the weights of a run's last K checkpoints",
        description="Element-wise mean of the last K checkpoints' weights (the paper's base "
        "models average the last 5, Section 6.1). Writes RUN_DIR/model-avg-last{K}.safetensors "
        "unless --out is given.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR")
    parser.add_argument(
        "--last",
        type=int,
        default=5,
        metavar="K",
        help="number of most recent checkpoints (default 5)",
    )
    parser.add_argument("--out", default=None, help="output .safetensors file")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    if args.last < 1:
        raise UserError(f"--last must be >= 1, got {args.last}")
    check_output("--out", args.out)
    found = step_dirs(args.run_dir)
    if not found:
        raise UserError(f"{args.run_dir}: no checkpoints found (expected checkpoints/step-*/)")
    if len(found) < args.last:
        raise UserError(
            f"{args.run_dir}: asked for the last {args.last} checkpoints but only "
            f"{len(found)} are kept (train.keep_last)"
        )
    chosen = found[-args.last :]
    try:
        weights = average([path / "model.safetensors" for _, path in chosen])
    except CheckpointError as err:
        raise UserError(str(err)) from None
    default = Path(args.run_dir) / f"model-avg-last{args.last}.safetensors"
    out = Path(args.out) if args.out else default
    save_weights(weights, out)
    steps = ", ".join(str(s) for s, _ in chosen)
    print(f"averaged {len(chosen)} checkpoints (steps {steps}) into {out}")
    return 0
