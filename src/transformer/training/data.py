"""The trainer's datasets, built on the data pipeline (`transformer.data`).

`build_data(run, run_dir)` returns a `TrainData` (a seeded `TokenBatcher` over the training
pairs, a fixed-order one over the validation pairs) and the model config with the vocabulary
sizes the data needs:
- task "copy": synthetic pairs (`copy_task`), ids are symbols, no tokenizer;
- task "lm" / "mlm": `lm_data.lm_data` / `mlm_data.mlm_data` (their own data objects);
- task "multi30k": the Multi30k corpus, tokenized with RUN_DIR/tokenizer.json (a joint BPE
  trained on the training split's both sides on the first run, or `data.tokenizer` copied in),
  encoded once and cached under RUN_DIR/cache.

Batches follow `transformer.data.Batch`: src (B, S), tgt_in (B, T) = <s> y, tgt_out (B, T)
= y </s>; a data position is (epoch, next batch index) and each batch carries `next_position`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from transformer import durable
from transformer.config import ModelConfig
from transformer.data import (
    DataError,
    EncodedParallel,
    TokenBatcher,
    encode_parallel,
    load_multi30k,
    read_parallel,
)
from transformer.decoding.common import SpecialIds
from transformer.tokenizers import BPE
from transformer.training.config import RunConfig
from transformer.training.copy_task import BOS, EOS, PAD, split_copy
from transformer.training.lm_data import lm_data
from transformer.training.mlm_data import mlm_data
from transformer.training.val_bleu import BleuProbe


@dataclass
class TrainData:
    train: TokenBatcher
    val: TokenBatcher | None
    tokenizer_path: Path | None = None
    bleu_probe: BleuProbe | None = None  # validation BLEU sample (train.val_bleu > 0)

    def summary(self) -> dict[str, float | int]:
        """What the log records about the data: sizes, skipped pairs, epoch-0 padding."""
        counts = self.train.data.counts
        padding = self.train.padding(0)
        return {
            "train_pairs": len(self.train.data),
            "val_pairs": len(self.val.data) if self.val else 0,
            "lines": counts.lines,
            "skipped_empty": counts.empty,
            "skipped_too_long": counts.too_long,
            "skipped_too_many_tokens": counts.too_many_tokens,
            "batches_per_epoch": padding.n_batches,
            "padding": padding.fraction,
        }


def encoded_from_pairs(pairs: list[tuple[list[int], list[int]]]) -> EncodedParallel:
    """An `EncodedParallel` of in-memory (source ids, target ids) pairs (no <s>/</s>)."""
    if not pairs:
        raise ValueError("no pairs to encode")
    return EncodedParallel.from_lists([s for s, _ in pairs], [t for _, t in pairs])


def _batchers(run: RunConfig, train: EncodedParallel, val: EncodedParallel | None):
    pad = run.model.pad_id
    batcher = TokenBatcher(train, run.data.max_tokens, seed=run.train.seed, pad_id=pad)
    val_batcher = None
    if val is not None and len(val):
        val_batcher = TokenBatcher(val, run.data.max_tokens, shuffle=False, pad_id=pad)
    return batcher, val_batcher


def copy_data(run: RunConfig) -> TrainData:
    """The copy task: symbols 4 .. src_vocab_size-1, target = source."""

    d = run.data
    train, val = split_copy(
        d.copy_train_size,
        d.copy_val_size,
        run.model.src_vocab_size,
        d.copy_min_len,
        d.copy_max_len,
        seed=run.train.seed,
    )
    probe = None
    if run.train.val_bleu and val:

        def decode(ids: list[int]) -> str:
            return " ".join(str(i) for i in ids if i not in (BOS, EOS, PAD))

        refs = [" ".join(map(str, s)) for s in val]
        probe = BleuProbe.sample(
            [[*s, EOS] for s in val],
            refs,
            run.train.val_bleu,
            decode,
            SpecialIds(bos=BOS, eos=EOS, pad=PAD),
        )
    return TrainData(*_batchers(run, copy_encoded(train), copy_encoded(val)), bleu_probe=probe)


def copy_encoded(seqs: list[list[int]]) -> EncodedParallel:
    """Copy pairs: the source ends with </s> (as fairseq's sources do; it tells the decoder
    where the sequence ends), the target is the sequence (the batcher adds <s> / </s>)."""

    return encoded_from_pairs([([*s, EOS], s) for s in seqs])


def multi30k_data(run: RunConfig, run_dir: Path, progress: bool) -> tuple[TrainData, ModelConfig]:
    """Multi30k train/val, tokenized with the run's BPE (trained here on the first run)."""

    d = run.data
    data_dir = d.data_dir or None
    corpus = load_multi30k(
        "train", d.src_lang, d.tgt_lang, data_dir=data_dir, max_words=d.max_words, progress=progress
    )
    val_corpus = load_multi30k(
        "val", d.src_lang, d.tgt_lang, data_dir=data_dir, max_words=d.max_words, progress=progress
    )
    return tokenized_data(run, run_dir, corpus, val_corpus, progress)


def parallel_files(run: RunConfig, prefix: str) -> tuple[Path, Path]:
    """`PREFIX.SRC_LANG` and `PREFIX.TGT_LANG` (each plain or with `.gz`); a relative prefix
    is read under `data.data_dir` when that is set."""
    d = run.data
    base = Path(prefix)
    if not base.is_absolute() and d.data_dir:
        base = Path(d.data_dir) / base
    found = []
    for lang in (d.src_lang, d.tgt_lang):
        plain = base.with_name(f"{base.name}.{lang}")
        gz = plain.with_name(plain.name + ".gz")
        if not plain.is_file() and not gz.is_file():
            raise DataError(f"{plain} (or {gz.name}): file not found")
        found.append(plain if plain.is_file() else gz)
    return found[0], found[1]


def parallel_data(run: RunConfig, run_dir: Path, progress: bool) -> tuple[TrainData, ModelConfig]:
    """Any sentence-aligned corpus (`data.train_prefix`, `data.val_prefix`), e.g. WMT14."""

    d = run.data
    corpus = read_parallel(*parallel_files(run, d.train_prefix), max_words=d.max_words)
    val_corpus = read_parallel(*parallel_files(run, d.val_prefix), max_words=d.max_words)
    return tokenized_data(run, run_dir, corpus, val_corpus, progress)


def tokenized_data(
    run: RunConfig, run_dir: Path, corpus, val_corpus, progress: bool
) -> tuple[TrainData, ModelConfig]:
    """Train/val `ParallelCorpus`es tokenized with the run's BPE (a joint BPE learnt from the
    training pairs on the first run, or `data.tokenizer` copied in), encoded once and cached."""

    d = run.data
    tok_path = run_dir / "tokenizer.json"
    if not tok_path.exists():
        if d.tokenizer:
            if not Path(d.tokenizer).is_file():
                raise DataError(f"data.tokenizer: {d.tokenizer}: file not found")
            durable.copy_file(d.tokenizer, tok_path)
        else:
            bpe = BPE.train(
                [*corpus.src, *corpus.tgt],
                d.bpe_merges,
                progress=progress,
                split_punct=d.split_punct,
            )
            bpe.save(tok_path)
    bpe = BPE.load(tok_path)
    cache = run_dir / "cache"
    limit = run.model.max_len - 1  # room for <s> / </s>
    train = encode_parallel(
        corpus, bpe, tokenizer_file=tok_path, cache_dir=cache, max_len=limit, progress=progress
    )
    val = encode_parallel(
        val_corpus, bpe, tokenizer_file=tok_path, cache_dir=cache, max_len=limit, progress=progress
    )
    model = run.model.replace(src_vocab_size=bpe.vocab_size, tgt_vocab_size=bpe.vocab_size)
    probe = None
    if run.train.val_bleu:
        sources = [bpe.encode(line)[:limit] for line in val_corpus.src]
        ids = SpecialIds(bos=bpe.bos_id, eos=bpe.eos_id, pad=bpe.pad_id)
        probe = BleuProbe.sample(sources, list(val_corpus.tgt), run.train.val_bleu, bpe.decode, ids)
    data = TrainData(*_batchers(run, train, val), tokenizer_path=tok_path, bleu_probe=probe)
    return data, model


def build_data(run: RunConfig, run_dir: str | Path, progress: bool = True):
    """(TrainData, ModelConfig) for the run's task; see the module docstring."""
    if run.data.task == "copy":
        return copy_data(run), run.model
    if run.data.task == "parallel":
        return parallel_data(run, Path(run_dir), progress)
    if run.data.task == "lm":
        return lm_data(run, Path(run_dir), progress)
    if run.data.task == "mlm":
        return mlm_data(run, Path(run_dir), progress)
    return multi30k_data(run, Path(run_dir), progress)
