"""The data pipeline: text files -> token ids (cached) -> padded batches by token budget.

Translation (Multi30k or any parallel text)::

    corpus = load_multi30k("train", "de", "en", data_dir=None)     # ParallelCorpus (+ SkipCounts)
    data = encode_parallel(corpus, bpe, tokenizer_file=run / "tokenizer.json",
                           cache_dir=run / "cache", max_len=256)   # EncodedParallel
    batches = TokenBatcher(data, max_tokens=4096, seed=1)          # the paper's batching (5.1)
    for batch in batches.iterate(position=(0, 0)):                 # forever; exact resume
        logits = model(batch.src, batch.tgt_in)                    # loss vs batch.tgt_out
        position = batch.next_position                             # save with the checkpoint

Language modelling (GPT on Tiny Shakespeare)::

    ids = encode_text(tiny_shakespeare_path(), bpe, tokenizer_file=..., cache_dir=...)
    train_ids, val_ids = split_train_val(ids, 0.1)
    for batch in LMStream(train_ids, block_size=256, batch_size=32, seed=1).iterate():
        logits = gpt(batch.inputs)                                 # loss vs batch.targets
"""

from transformer.data.batching import (
    Batch,
    Batcher,
    EpochPlan,
    FixedSizeBatcher,
    PaddingStats,
    TokenBatcher,
)
from transformer.data.cache import EncodedParallel, Encoder, encode_lines, encode_parallel
from transformer.data.corpus import (
    DataError,
    ParallelCorpus,
    SkipCounts,
    read_lines,
    read_parallel,
    read_text,
)
from transformer.data.download import data_root, download
from transformer.data.lm import (
    LMBatch,
    LMStream,
    SplitIds,
    encode_split,
    encode_text,
    split_text,
    split_train_val,
    tiny_shakespeare_path,
)
from transformer.data.multi30k import load_multi30k, multi30k_dir, multi30k_files

__all__ = [
    "Batch",
    "Batcher",
    "DataError",
    "EncodedParallel",
    "Encoder",
    "EpochPlan",
    "FixedSizeBatcher",
    "LMBatch",
    "LMStream",
    "PaddingStats",
    "ParallelCorpus",
    "SkipCounts",
    "SplitIds",
    "TokenBatcher",
    "data_root",
    "download",
    "encode_lines",
    "encode_parallel",
    "encode_split",
    "encode_text",
    "load_multi30k",
    "multi30k_dir",
    "multi30k_files",
    "read_lines",
    "read_parallel",
    "read_text",
    "split_text",
    "split_train_val",
    "tiny_shakespeare_path",
]
