"""The synthetic copy task of the demo: random symbol sequences whose target equals the source.

Ids follow the tokenizer's specials (pad 0, bos 1, eos 2, unk 3); symbols are 4 .. V-1.
The batcher adds <s> / </s> to the target (`transformer.data.Batch`). Generation is seeded
and independent of the global RNG, so a run is reproducible.
"""

from __future__ import annotations

import torch

from transformer.tokenizers.specials import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID

PAD, BOS, EOS, UNK = PAD_ID, BOS_ID, EOS_ID, UNK_ID  # the tokenizers' specials (0-3)
FIRST_SYMBOL = len(SPECIALS)  # 4: the first id after the specials


def copy_sequences(
    n: int, vocab_size: int, min_len: int, max_len: int, seed: int
) -> list[list[int]]:
    """`n` symbol sequences of lengths min_len..max_len, symbols drawn uniformly from
    FIRST_SYMBOL .. vocab_size-1 with a generator seeded by `seed`."""
    if vocab_size <= FIRST_SYMBOL:
        raise ValueError(f"copy task needs vocab_size > {FIRST_SYMBOL}, got {vocab_size}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(min_len, max_len + 1, (n,), generator=gen).tolist()
    symbols = torch.randint(FIRST_SYMBOL, vocab_size, (n, max_len), generator=gen).tolist()
    return [row[:length] for length, row in zip(lengths, symbols)]


def split_copy(
    n_train: int, n_val: int, vocab_size: int, min_len: int, max_len: int, seed: int
) -> tuple[list[list[int]], list[list[int]]]:
    """Training and held-out sequences; no held-out sequence occurs in the training set."""
    train = copy_sequences(n_train, vocab_size, min_len, max_len, seed)
    seen = {tuple(s) for s in train}
    val: list[list[int]] = []
    for extra_seed in range(seed + 1, seed + 101):
        for seq in copy_sequences(2 * n_val, vocab_size, min_len, max_len, extra_seed):
            if tuple(seq) not in seen and len(val) < n_val:
                seen.add(tuple(seq))
                val.append(seq)
        if len(val) == n_val:
            return train, val
    raise ValueError(
        "copy task: too few distinct sequences for a held-out set; raise vocab_size or max_len"
    )


# The demo's run (`transformer demo`); configs/copy-task.toml holds the same values (a test
# checks), so `transformer train configs/copy-task.toml` repeats it. One layer each side is
# enough to copy and twice as fast per step as two; the demo decodes with the average of the
# last `keep_last` checkpoints (Section 6.1), which smooths out the last steps' noise.
DEMO_CONFIG: dict[str, dict[str, object]] = {
    "model": {
        "preset": "tiny",
        "src_vocab_size": 20,
        "tgt_vocab_size": 20,
        "d_model": 64,
        "n_heads": 4,
        "d_ff": 128,
        "n_encoder_layers": 1,
        "n_decoder_layers": 1,
        "dropout": 0.0,
        "max_len": 64,
    },
    "data": {
        "task": "copy",
        "copy_min_len": 4,
        "copy_max_len": 10,
        "copy_train_size": 20000,
        "copy_val_size": 200,
        "max_tokens": 1024,
    },
    "train": {
        "seed": 0,
        "label_smoothing": 0.0,
        "max_steps": 1000,
        "warmup": 100,
        "lr_scale": 0.2,
        "clip_norm": 1.0,
        "log_every": 50,
        "val_every": 250,
        "save_every": 50,
        "keep_last": 4,
        "threads": 1,
    },
}


def exact_copy_accuracy(outputs: list[list[int]], sources: list[list[int]]) -> float:
    """Fraction of outputs equal to their source followed by </s> (the whole sequence)."""
    if len(outputs) != len(sources):
        raise ValueError(f"{len(outputs)} outputs for {len(sources)} sources")
    hits = sum(out == [*src, EOS] for out, src in zip(outputs, sources))
    return hits / max(len(sources), 1)
