"""`transformer train CONFIG.toml --out RUN_DIR [--set section.key=value ...] [--resume]`."""

from __future__ import annotations

import argparse
import sys

from transformer.cli.errors import UserError
from transformer.config import ConfigError
from transformer.data import DataError
from transformer.tokenizers import TokenizerError
from transformer.training.checkpoint import CheckpointError
from transformer.training.config import RunConfig
from transformer.training.distributed import World
from transformer.training.errors import RunDirError, TrainingError
from transformer.training.run import train


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "train",
        help="train a Transformer from a TOML config into a run directory",
        description="Train a Transformer (Adam + warm-up schedule + label smoothing). The run "
        "directory gets config.toml, tokenizer.json, model.safetensors, checkpoints/, "
        "log.jsonl and tb/ (TensorBoard). Ctrl-C saves a checkpoint and exits. Data-parallel "
        "over N processes: torchrun --nproc_per_node N -m transformer train CONFIG --out "
        "RUN_DIR (train.accum_steps a multiple of N; --max-restarts K restarts a failed job "
        "from its last checkpoint).",
    )
    parser.add_argument("config", help="TOML file with [model], [data], [train] sections")
    parser.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a config value (repeatable), e.g. train.max_steps=100",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from the run directory's last checkpoint"
    )
    parser.add_argument(
        "--reference",
        action="store_true",
        help="run the plain reference core, no fast engine",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    try:
        config = RunConfig.from_toml(args.config, args.set)
    except ConfigError as err:
        raise UserError(str(err)) from None
    try:
        result = train(config, args.out, resume=args.resume, fast=not args.reference)
    except (ConfigError, DataError, CheckpointError, TokenizerError, RunDirError) as err:
        raise UserError(str(err)) from None
    except TrainingError as err:
        print(f"transformer train: stopped: {err}", file=sys.stderr)
        return 1
    world = World.from_env()
    if not world.is_main:  # rank 0 reports the run; the others say where they stopped
        print(f"rank {world.rank} of {world.size}: training {result.status} at step "
              f"{result.step}", file=sys.stderr)  # fmt: skip
        return 130 if result.status == "interrupted" else 0
    val = result.val
    summary = f"; val loss {val['val_loss']:.4f}, ppl {val['val_ppl']:.3f}" if val else ""
    if val and "val_bleu" in val:
        summary += f", greedy BLEU {val['val_bleu']:.2f}"
    print(f"training {result.status} at step {result.step}{summary}; run directory {args.out}")
    return 130 if result.status == "interrupted" else 0
