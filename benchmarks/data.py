"""`transformer bench data`: the data pipeline on Multi30k (de-en train).

Measures, side by side in one run (medians of `--repeats`):
- encoding the corpus with a fresh BPE vs loading the encoded-corpus cache;
- planning + collating one epoch of token-budget batches (is the pipeline a bottleneck?);
- padding of length-bucketed token-budget batches vs plain fixed-size shuffled batches of the
  same mean batch size, for several `max_tokens`; "real/padded" is the share of tensor
  positions that hold real tokens, so its ratio bounds the throughput gain of bucketing at
  equal compute per position.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.common import median_seconds


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=None, help="root holding multi30k/ (default: env)")
    parser.add_argument("--merges", type=int, default=8000, help="BPE merges (joint de+en)")
    parser.add_argument("--repeats", type=int, default=3, help="timing repeats (median)")
    parser.add_argument(
        "--max-tokens", type=int, nargs="+", default=[1024, 4096, 8192, 25000], metavar="N"
    )
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from transformer.data import (
        FixedSizeBatcher,
        TokenBatcher,
        encode_parallel,
        load_multi30k,
    )
    from transformer.tokenizers import BPE

    corpus = load_multi30k("train", "de", "en", data_dir=args.data_dir)
    print(f"Multi30k train de-en: {corpus.counts.describe()}")
    with tempfile.TemporaryDirectory() as tmp:
        tok_file, cache = Path(tmp) / "bpe.json", Path(tmp) / "cache"
        start = time.perf_counter()
        BPE.train(corpus.src + corpus.tgt, args.merges).save(tok_file)
        print(f"joint BPE, {args.merges} merges: trained in {time.perf_counter() - start:.1f} s")
        fresh = [BPE.load(tok_file) for _ in range(args.repeats)]  # no warm word caches
        t_encode = median_seconds(
            lambda: encode_parallel(corpus, fresh.pop(), progress=False), args.repeats
        )
        kwargs = {"tokenizer_file": tok_file, "cache_dir": cache, "progress": False}
        data = encode_parallel(corpus, BPE.load(tok_file), **kwargs)
        t_load = median_seconds(lambda: encode_parallel(corpus, None, **kwargs), args.repeats)
        assert encode_parallel(corpus, None, **kwargs).from_cache
    print("\n| step | median s |\n|---|---|")
    print(f"| encode {2 * len(corpus):,} sentences (BPE) | {t_encode:.3f} |")
    print(f"| load encoded-corpus cache | {t_load:.4f} |")
    print(f"| speedup of the cache | {t_encode / t_load:.0f}x |")
    batcher = TokenBatcher(data, 4096, seed=args.seed)
    epochs = iter(range(1, 10_000))

    def one_epoch() -> None:
        for _ in batcher.epoch(next(epochs)):
            pass

    t_epoch = median_seconds(one_epoch, args.repeats)
    n = batcher.num_batches(1)
    print(f"| plan + collate one epoch, max_tokens=4096 ({n} batches) | {t_epoch:.3f} |")
    print(f"| batches/s from the pipeline | {n / t_epoch:,.0f} |")
    _padding_table(data, args.max_tokens, args.seed, TokenBatcher, FixedSizeBatcher)
    return 0


def _padding_table(data, max_tokens_list, seed, token_cls, fixed_cls) -> None:
    print(
        "\n| max_tokens | batches | mean B | bucketed pad (src/tgt/all) | fixed-size pad "
        "(src/tgt/all) | real/padded bucketed | real/padded fixed | ratio |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for max_tokens in max_tokens_list:
        bucketed = token_cls(data, max_tokens, seed=seed).padding(0)
        mean_b = round(bucketed.mean_batch_size)
        fixed = fixed_cls(data, mean_b, seed=seed).padding(0)
        real_b, real_f = 1 - bucketed.fraction, 1 - fixed.fraction
        print(
            f"| {max_tokens:,} | {bucketed.n_batches} | {mean_b} | "
            f"{bucketed.src_fraction:.3f}/{bucketed.tgt_fraction:.3f}/{bucketed.fraction:.3f} | "
            f"{fixed.src_fraction:.3f}/{fixed.tgt_fraction:.3f}/{fixed.fraction:.3f} | "
            f"{real_b:.3f} | {real_f:.3f} | {real_b / real_f:.2f}x |"
        )
