"""`transformer evaluate RUN_DIR` on a masked-language-model run (data.task = "mlm"): masked-
token accuracy and perplexity on the validation split, plus the most-frequent-token baseline
(`transformer.evaluation.mlm`).

The masks are the run's fixed validation masking (`training.mlm_data.VAL_SEED`, the one the
trainer's validations score), another seed with `--mask-seed N`, or those of a
`--masked-val FILE` written by `scripts/hf_bert_peer.py` (its vocabulary fingerprint must be
the run's), so that ours and the Hugging Face peer score identical masks.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from transformer.cli.errors import UserError
from transformer.cli.evaluate_lm import load_model
from transformer.config import ConfigError
from transformer.data import DataError
from transformer.evaluation.mlm import mlm_scores, read_masked_val
from transformer.tokenizers import TokenizerError
from transformer.training.config import RunConfig
from transformer.training.mlm_data import (
    VAL_SEED,
    Masking,
    MLMBatcher,
    mask_split,
    mlm_data,
    most_frequent_token,
)


def is_mlm_run(run_dir: str) -> bool:
    """Whether RUN_DIR/config.toml says data.task = "mlm" (False when unreadable)."""

    try:
        return RunConfig.from_toml(Path(run_dir) / "config.toml").data.task == "mlm"
    except (ConfigError, OSError):
        return False


def _ragged(rows: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return np.fromiter((t for r in rows for t in r), np.int64, int(offsets[-1])), offsets


def _val_batcher(args, data, tokenizer, cfg, max_tokens: int):
    """(the validation batcher, a description of its masks)."""

    pad = tokenizer.pad_id
    if args.masked_val:
        inputs, labels, meta = read_masked_val(args.masked_val, tokenizer, cfg.max_len)
        (x, offsets), (y, _) = _ragged(inputs), _ragged(labels)
        seed = meta.get("seed")
        what = f"{args.masked_val} ({len(inputs)} sentences, the peer's masking, seed {seed})"
    else:
        seed = VAL_SEED if args.mask_seed is None else args.mask_seed
        ids, offsets = data.val_ids
        x, y = mask_split(ids, offsets, Masking.of(tokenizer), seed, pad)
        what = f"validation split ({len(offsets) - 1} sentences, fixed masking, seed {seed})"
    tokens = max(max_tokens, int(np.diff(offsets).max()))
    return MLMBatcher(x, offsets, tokens, labels=y, shuffle=False, pad_id=pad), what


def run(args: argparse.Namespace) -> int:

    if args.src or args.ref or args.split or args.choose:
        raise UserError(
            "a masked-LM run is evaluated on its validation split (or --masked-val FILE): "
            "drop --src/--ref/--split/--choose"
        )

    model, tokenizer, cfg, run_cfg = load_model(args)  # on the fast engine unless --reference
    data_cfg = run_cfg.data
    if args.data_dir:
        data_cfg = dataclasses.replace(data_cfg, data_dir=args.data_dir)
    try:
        data, _ = mlm_data(RunConfig(cfg, data_cfg, run_cfg.train), Path(args.run_dir), False)
        batcher, what = _val_batcher(args, data, tokenizer, cfg, data_cfg.max_tokens)
    except (ConfigError, DataError, TokenizerError, ValueError) as err:
        raise UserError(str(err)) from None
    top = most_frequent_token(data.train.ids, tokenizer.special_ids)
    device = next(model.parameters()).device
    start = time.perf_counter()
    try:
        batches = ((b.inputs, b.labels) for b in batcher)
        scores = mlm_scores(model, batches, baseline_token=top, device=device)
    except ValueError as err:  # ids outside the vocabulary
        raise UserError(f"{args.masked_val or args.run_dir}: {err}") from None
    seconds = time.perf_counter() - start
    token = tokenizer.tokens[top]
    if args.json:
        print(json.dumps({"run_dir": str(args.run_dir), "masks": what, **scores.to_dict(),
                          "baseline_token": token, "seconds": round(seconds, 3)},
                         indent=1))  # fmt: skip
        return 0
    print(f"{args.run_dir}: {what}, {scores.masked} masked positions, {seconds:.1f} s")
    print(f"masked-token accuracy  {scores.accuracy:.4f}")
    print(f"perplexity             {scores.perplexity:.3f}  ({scores.nats_per_token:.4f} nats)")
    print(f"baseline accuracy      {scores.baseline_accuracy:.4f}  (always {token!r}, the most "
          "frequent training token)")  # fmt: skip
    return 0
