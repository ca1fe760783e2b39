"""`transformer evaluate RUN_DIR` on a language-model run (data.task = "lm"): the validation
loss in nats per token, the perplexity and the bits per character, over the whole validation
split (the last 10% of the text, every token but the first scored once;
`transformer.evaluation.lm`). `transformer evaluate` hands LM runs to this module.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from transformer.cli.errors import UserError
from transformer.cli.translate import _user_error, open_run
from transformer.config import ConfigError
from transformer.data import DataError
from transformer.evaluation.lm import lm_scores
from transformer.fast import optimize
from transformer.rundir import RunOpenError
from transformer.tokenizers import TokenizerError
from transformer.training.config import RunConfig
from transformer.training.lm_data import lm_data


def is_lm_run(run_dir: str) -> bool:
    """Whether RUN_DIR/config.toml says data.task = "lm" (False when unreadable: the
    translation path then reports the problem)."""

    try:
        return RunConfig.from_toml(Path(run_dir) / "config.toml").data.task == "lm"
    except (ConfigError, OSError):
        return False


def load_model(args: argparse.Namespace):
    """(model in eval mode on its device, tokenizer, ModelConfig, RunConfig) from RUN_DIR,
    with --weights / --average (default: the latest weights) and --device / --threads, on the
    fast engine unless --reference."""

    run_dir, device = open_run(args)
    try:
        model = run_dir.load_model(args.weights or "latest", args.average or 0, device)
    except RunOpenError as err:
        raise _user_error(str(err)) from None
    if not args.reference:
        optimize(model)  # the fast engine: same weights and function, faster
    return model, run_dir.tokenizer, run_dir.model_config, run_dir.config


def run(args: argparse.Namespace) -> int:

    if args.src or args.ref or args.split:
        raise UserError("an LM run is evaluated on its validation split: drop --src/--ref/--split")
    model, tokenizer, cfg, run_cfg = load_model(args)
    device = next(model.parameters()).device
    data_cfg = run_cfg.data
    if args.data_dir:
        data_cfg = dataclasses.replace(data_cfg, data_dir=args.data_dir)
    try:
        data, _ = lm_data(RunConfig(cfg, data_cfg, run_cfg.train), Path(args.run_dir), False)
    except (ConfigError, DataError, TokenizerError) as err:
        raise UserError(str(err)) from None
    ids = data.val_ids
    context = min(cfg.max_len, data_cfg.block_size)
    start = time.perf_counter()
    first = len(tokenizer.decode([int(ids[0])]))
    scores = lm_scores(model, ids, data.val_chars, first, context, data_cfg.batch_size, device)
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({"run_dir": str(args.run_dir), **scores.to_dict(),
                          "context": context, "seconds": round(seconds, 3)}, indent=1))  # fmt: skip
        return 0
    print(
        f"{args.run_dir}: validation split, {scores.tokens} tokens ({scores.chars} characters), "
        f"context {context}, {seconds:.1f} s"
    )
    print(f"loss            {scores.nats_per_token:.4f} nats/token")
    print(f"perplexity      {scores.perplexity:.3f}")
    print(f"bits/character  {scores.bits_per_char:.4f}")
    return 0
