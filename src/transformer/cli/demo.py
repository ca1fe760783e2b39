"""`transformer demo`: train a small Transformer on the copy task, then decode held-out
sequences greedily and print the exact-copy accuracy (expected: 100%) and examples."""

from __future__ import annotations

import argparse
import tempfile
import time

from transformer.cli.errors import UserError
from transformer.config import ConfigError, apply_overrides
from transformer.decoding import SpecialIds, greedy_decode, pad_ids
from transformer.models import Transformer
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig
from transformer.training.copy_task import (
    BOS,
    DEMO_CONFIG,
    EOS,
    PAD,
    exact_copy_accuracy,
    split_copy,
)
from transformer.training.errors import TrainingError
from transformer.training.run import train


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "demo",
        help="train on the synthetic copy task and show greedy decoding (about a minute on CPU)",
        description="Trains a 2+2-layer Transformer on random symbol sequences (target = "
        "source) with the real training pipeline, decodes held-out sequences greedily and "
        "prints the exact-copy accuracy and a few examples. No data files needed.",
    )
    parser.add_argument(
        "--out",
        default=None,
        metavar="RUN_DIR",
        help="keep the run directory here (default: a temporary directory)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override a value of the demo's config (see configs/copy-task.toml)",
    )
    parser.add_argument("--examples", type=int, default=5, help="examples to print (default 5)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:

    try:
        config = RunConfig.from_dict(apply_overrides(DEMO_CONFIG, args.set))
    except ConfigError as err:
        raise UserError(str(err)) from None

    try:
        if args.out:
            return _demo(config, args.out, args.examples)
        with tempfile.TemporaryDirectory(prefix="transformer-demo-") as tmp:
            return _demo(config, tmp, args.examples)
    except (TrainingError, ConfigError) as err:
        raise UserError(str(err)) from None


def _demo(config, run_dir: str, n_examples: int) -> int:

    start = time.perf_counter()
    result = train(config, run_dir, tensorboard=False)
    seconds = time.perf_counter() - start
    d = config.data
    _, held_out = split_copy(
        d.copy_train_size,
        d.copy_val_size,
        config.model.src_vocab_size,
        d.copy_min_len,
        d.copy_max_len,
        seed=config.train.seed,
    )
    print(
        f"trained {result.step} steps in {seconds:.1f} s; greedy exact-copy accuracy on "
        f"{len(held_out)} held-out sequences:"
    )
    model = Transformer(config.model)
    ckpt.load_into(model, f"{run_dir}/model.safetensors")  # what the run directory keeps
    latest, _ = _copy_accuracy(model, held_out)
    print(f"  last checkpoint (step {result.step}): {latest:.1%}")
    kept = ckpt.step_dirs(run_dir)
    model.load_state_dict(ckpt.average([path / "model.safetensors" for _, path in kept]))
    accuracy, outputs = _copy_accuracy(model, held_out)
    steps = ", ".join(str(s) for s, _ in kept)
    print(
        f"  average of the last {len(kept)} checkpoints (steps {steps}; the paper's "
        f"Section 6.1): {accuracy:.1%}"
    )
    for seq, out in list(zip(held_out, outputs))[:n_examples]:
        mark = "ok" if out == seq else "WRONG"
        print(f"  source {seq}\n  output {out}  {mark}")
    return 0 if accuracy == 1.0 else 1


def _copy_accuracy(model, held_out: list[list[int]]) -> tuple[float, list[list[int]]]:
    """Greedy-decode each held-out sequence (source = symbols + </s>); the exact-copy
    accuracy and the outputs without their </s>."""

    model.eval()
    sources = [[*seq, EOS] for seq in held_out]
    src = pad_ids(sources, PAD)  # (B, S)
    hyps = greedy_decode(model, src, SpecialIds(bos=BOS, eos=EOS, pad=PAD))
    outputs = [h.tokens for h in hyps]
    stripped = [out[:-1] if out[-1:] == [EOS] else out for out in outputs]
    return exact_copy_accuracy(outputs, held_out), stripped
