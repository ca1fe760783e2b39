"""LM streams: blocks are contiguous slices of the stream, every target once per epoch,
seeded, exactly resumable; the train/val split; Tiny Shakespeare end to end."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from conftest import corpus_dir
from transformer.data import (
    DataError,
    LMStream,
    encode_split,
    encode_text,
    split_text,
    split_train_val,
)
from transformer.tokenizers import CharTokenizer, TokenizerError


def test_blocks_are_contiguous_and_cover_every_target_once():
    ids = np.random.default_rng(0).integers(0, 1000, 1234)
    T, B = 16, 7
    stream = LMStream(ids, T, B, seed=4)
    for epoch in range(3):
        targets = []
        batches = list(stream.epoch(epoch))
        for batch in batches:
            assert batch.block.shape[1] == T + 1 and batch.block.shape[0] <= B
            for row, start in zip(batch.block, batch.starts.tolist()):
                assert row.tolist() == ids[start : start + T + 1].tolist()
            assert torch.equal(batch.inputs, batch.block[:, :T])
            assert torch.equal(batch.targets, batch.block[:, 1:])
            targets += [p for s in batch.starts.tolist() for p in range(s + 1, s + T + 1)]
        offset = min(targets) - 1
        assert 0 <= offset < T
        # Every position after the offset up to the last full window: a target exactly once.
        assert sorted(targets) == list(range(offset + 1, offset + 1 + len(targets)))
        assert len(targets) == (len(ids) - 1 - offset) // T * T
        assert all(b.block.shape[0] == B for b in batches[:-1])


def test_unshuffled_stream_is_in_order():
    ids = np.arange(100)
    batches = list(LMStream(ids, 10, 4, shuffle=False))
    starts = [s for b in batches for s in b.starts.tolist()]
    assert starts == list(range(0, 90, 10))
    assert batches[0].block[1].tolist() == list(range(10, 21))


def test_seeded_and_resumable():
    ids = np.arange(5000) % 97
    a = LMStream(ids, 32, 8, seed=1)

    def starts(stream, epoch):
        return [b.tolist() for b in stream.plan(epoch)]

    assert starts(a, 0) == starts(LMStream(ids, 32, 8, seed=1), 0)
    assert starts(a, 0) != starts(a, 1) and starts(a, 0) != starts(LMStream(ids, 32, 8, seed=2), 0)
    n0 = a.num_batches(0)
    it = a.iterate()
    run = [next(it) for _ in range(n0 + 3)]
    resumed = LMStream(ids, 32, 8, seed=1).iterate(run[n0 - 2].next_position)
    for expected in run[n0 - 1 :]:
        got = next(resumed)
        assert torch.equal(got.block, expected.block) and got.index == expected.index


def test_split_and_errors():
    ids = np.arange(1000)
    train, val = split_train_val(ids, 0.1)
    assert len(train) == 900 and np.array_equal(np.concatenate([train, val]), ids)
    with pytest.raises(DataError, match="val_fraction"):
        split_train_val(ids, 1.0)
    with pytest.raises(DataError, match="too short for block_size=10"):
        LMStream(np.arange(20), 10, 2)
    with pytest.raises(DataError, match="batch_size"):
        LMStream(ids, 10, 0)


def test_tiny_shakespeare_char_stream(tmp_path):
    path = corpus_dir("tinyshakespeare") / "input.txt.gz"
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    chars = sorted(set(text))

    lookup = {c: i for i, c in enumerate(chars)}

    class Chars:  # stand-in for a tokenizer: character vocabulary
        def encode(self, s):
            return [lookup[c] for c in s]

    (tmp_path / "tok.json").write_text("".join(chars), encoding="utf-8")
    ids = encode_text(path, Chars(), tokenizer_file=tmp_path / "tok.json", cache_dir=tmp_path)
    assert len(ids) == 1_115_394 == len(text)
    train, val = split_train_val(ids)
    batch = next(iter(LMStream(val, 64, 4, shuffle=False)))
    assert "".join(chars[i] for i in batch.block[0].tolist()) == text[len(train) :][:65]


def test_split_text_is_nanogpts_cut():
    text = "abcdefghij" * 7 + "xyz"  # 73 characters: int(73 * 0.9) = 65
    train, val = split_text(text)
    assert len(train) == 65 and train + val == text
    with pytest.raises(DataError, match="val_fraction"):
        split_text(text, 0.0)


def test_tiny_shakespeare_split_matches_nanogpt(tmp_path):
    # nanoGPT's prepare.py: "train has 1,003,854 tokens", "val has 111,540 tokens"
    path = corpus_dir("tinyshakespeare") / "input.txt.gz"
    tok = CharTokenizer.train(gzip.decompress(path.read_bytes()).decode("utf-8"))
    tok.save(tmp_path / "tok.json")
    ids = encode_split(path, tok, tokenizer_file=tmp_path / "tok.json", cache_dir=tmp_path)
    assert (len(ids.train), len(ids.val), ids.val_chars) == (1_003_854, 111_540, 111_540)


def test_encode_split_caches_memory_mapped(tmp_path):
    text = "".join(chr(97 + (i * 7) % 26) for i in range(500)) + "\n"
    (tmp_path / "t.txt").write_text(text, encoding="utf-8")
    tok = CharTokenizer.train(text)
    tok.save(tmp_path / "tok.json")

    def run():
        return encode_split(
            tmp_path / "t.txt", tok, tokenizer_file=tmp_path / "tok.json", cache_dir=tmp_path / "c"
        )

    first, second = run(), run()
    assert not first.from_cache and second.from_cache
    assert isinstance(second.train, np.memmap) and second.train.dtype == np.int32
    train_text, val_text = text[:450], text[450:]
    assert second.train.tolist() == tok.encode(train_text)
    assert second.val.tolist() == tok.encode(val_text) and second.val_chars == 51
    batch = next(iter(LMStream(second.train, 8, 2, shuffle=False)))
    assert batch.block.dtype == torch.int64
    assert tok.decode(batch.block[1].tolist()) == train_text[8:17]
    (tmp_path / "t.txt").write_text(text.upper(), encoding="utf-8")  # new text, new key
    with pytest.raises(TokenizerError, match="not in the"):
        run()
