"""The language-model data of `data.task = "lm"`: one text, its tokenizer, two block streams.

    data, model_cfg = lm_data(run, run_dir)    # via training.data.build_data
    data.train  # LMStream over the first 90% (seeded, shuffled blocks; exact resume)
    data.val    # LMStream over the last 10% in order (the trainer's validation)

The text is `data.text_file` or Tiny Shakespeare. RUN_DIR/tokenizer.json is made on the first
run: `data.tokenizer` copied in, else a `CharTokenizer` of the whole text (nanoGPT's
vocabulary: every character of input.txt) or a `ByteBPE` with `data.bpe_merges` merges learnt
on the training part. Both parts are encoded once and cached under RUN_DIR/cache.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transformer.config import ConfigError, ModelConfig
from transformer.data import (
    DataError,
    LMStream,
    encode_split,
    read_text,
    split_text,
    tiny_shakespeare_path,
)
from transformer.tokenizers import ByteBPE, CharTokenizer, load_tokenizer
from transformer.training.config import DataConfig, RunConfig

VAL_FRACTION = 0.1  # nanoGPT's split of Tiny Shakespeare


@dataclass
class LMData:
    """What the trainer reads (`train`, `val`, `bleu_probe`, `summary`) and the validation
    ids for `transformer evaluate`."""

    train: LMStream
    val: LMStream | None
    tokenizer_path: Path
    val_ids: np.ndarray
    val_chars: int
    bleu_probe: None = None

    def summary(self) -> dict[str, float | int]:
        return {
            "train_tokens": len(self.train.ids),
            "val_tokens": len(self.val_ids),
            "val_chars": self.val_chars,
            "block_size": self.train.block_size,
            "batch_size": self.train.batch_size,
            "batches_per_epoch": self.train.num_batches(0),
        }


def lm_text_path(data: DataConfig, progress: bool = True) -> Path:
    """`data.text_file`, or Tiny Shakespeare found in `data.data_dir` (downloaded if missing)."""
    if data.text_file:
        path = Path(data.text_file)
        if not path.is_file():
            raise DataError(f"data.text_file: {path}: file not found")
        return path
    return tiny_shakespeare_path(data.data_dir or None, progress=progress)


def make_tokenizer(data: DataConfig, text_path: Path, tok_path: Path, progress: bool) -> None:
    """Write `tok_path`: `data.tokenizer` copied, or a char / byte-level BPE vocabulary."""
    if data.tokenizer:
        if not Path(data.tokenizer).is_file():
            raise DataError(f"data.tokenizer: {data.tokenizer}: file not found")
        shutil.copyfile(data.tokenizer, tok_path)
        return
    text = read_text(text_path)
    if data.tokenizer_kind == "char":
        CharTokenizer.train(text).save(tok_path)  # every character of the text, as nanoGPT
        return
    train_text, _ = split_text(text, VAL_FRACTION)
    vocab_size = 256 + data.bpe_merges + 1  # bytes + merges + <|endoftext|>
    ByteBPE.train(train_text, vocab_size, progress=progress).save(tok_path)


def lm_data(run: RunConfig, run_dir: Path, progress: bool = True) -> tuple[LMData, ModelConfig]:
    """(LMData, the model config with the tokenizer's vocabulary size)."""
    d = run.data
    if run.model.max_len < d.block_size:
        raise ConfigError(
            f"model.max_len ({run.model.max_len}) must be >= data.block_size ({d.block_size})"
        )
    text_path = lm_text_path(d, progress)
    tok_path = run_dir / "tokenizer.json"
    if not tok_path.exists():
        make_tokenizer(d, text_path, tok_path, progress)
    tokenizer = load_tokenizer(tok_path)
    ids = encode_split(
        text_path,
        tokenizer,
        tokenizer_file=tok_path,
        cache_dir=run_dir / "cache",
        val_fraction=VAL_FRACTION,
    )
    B, T = d.batch_size, d.block_size
    try:
        train = LMStream(ids.train, T, B, seed=run.train.seed)
        val = LMStream(ids.val, T, B, shuffle=False)
    except DataError as err:
        raise DataError(f"{text_path}: {err} (train or validation part)") from None
    vocab = tokenizer.vocab_size
    model = run.model.replace(src_vocab_size=vocab, tgt_vocab_size=vocab)
    return LMData(train, val, tok_path, ids.val, ids.val_chars), model
