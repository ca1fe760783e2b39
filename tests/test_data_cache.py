"""Encoded-corpus cache: ids equal a direct per-sentence encoding; a second run does not
re-encode; a changed tokenizer or corpus does; a broken entry is rebuilt; no pickle."""

from __future__ import annotations

import json
import logging
import zipfile

import numpy as np
import pytest

from conftest import corpus_dir
from transformer.data import (
    DataError,
    TokenBatcher,
    encode_parallel,
    encode_text,
    load_multi30k,
    read_parallel,
)
from transformer.data.cache import take_ragged


class CharTokenizer:
    """Stand-in for the project's BPE: one id per character (shifted past 4 specials),
    counting how many strings it encoded."""

    def __init__(self, shift: int = 4) -> None:
        self.shift, self.calls = shift, 0

    def encode(self, text: str) -> list[int]:
        self.calls += 1
        return [ord(c) + self.shift for c in text]

    def save(self, path) -> None:
        path.write_text(json.dumps({"shift": self.shift}))


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    words = ["ein", "Hund", "läuft", "über", "die", "Wiese", "a", "dog", "runs"]
    src = ["\t".join(rng.choice(words, rng.integers(1, 8))) for _ in range(200)]
    tgt = [" ".join(rng.choice(words, rng.integers(1, 8))) for _ in range(200)]
    (tmp_path / "s.txt").write_text("\n".join(src) + "\n", encoding="utf-8")
    (tmp_path / "t.txt").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    tok = CharTokenizer()
    tok.save(tmp_path / "tok.json")
    return tmp_path, tok


def test_encoding_matches_direct_loop(files):
    tmp, tok = files
    corpus = read_parallel(tmp / "s.txt", tmp / "t.txt")
    data = encode_parallel(corpus, tok, progress=False)
    assert len(data) == len(corpus) == 200
    for i in range(len(corpus)):
        assert data.src(i).tolist() == [ord(c) + 4 for c in corpus.src[i]]
        assert data.tgt(i).tolist() == [ord(c) + 4 for c in corpus.tgt[i]]
    assert data.src_lengths.tolist() == [len(s) for s in corpus.src]
    assert data.src_ids.dtype == np.int32 and data.cache_path is None


def test_second_run_loads_without_encoding(files):
    tmp, tok = files
    corpus = read_parallel(tmp / "s.txt", tmp / "t.txt")
    kwargs = {"tokenizer_file": tmp / "tok.json", "cache_dir": tmp / "cache", "progress": False}
    first = encode_parallel(corpus, tok, **kwargs)
    assert tok.calls == 400 and not first.from_cache
    fresh = CharTokenizer()
    second = encode_parallel(read_parallel(tmp / "s.txt", tmp / "t.txt"), fresh, **kwargs)
    assert fresh.calls == 0 and second.from_cache and second.cache_path == first.cache_path
    for name in ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    # Plain arrays only: loadable without pickle.
    with np.load(first.cache_path, allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)


def test_changed_tokenizer_or_corpus_re_encodes(files):
    tmp, tok = files
    kwargs = {"tokenizer_file": tmp / "tok.json", "cache_dir": tmp / "cache", "progress": False}
    encode_parallel(read_parallel(tmp / "s.txt", tmp / "t.txt"), tok, **kwargs)
    other = CharTokenizer(shift=10)
    other.save(tmp / "tok.json")
    data = encode_parallel(read_parallel(tmp / "s.txt", tmp / "t.txt"), other, **kwargs)
    assert other.calls == 400 and data.src(0)[0] == ord(data_first_char(tmp)) + 10
    again = CharTokenizer(shift=10)
    encode_parallel(read_parallel(tmp / "s.txt", tmp / "t.txt"), again, **kwargs)
    assert again.calls == 0
    (tmp / "t.txt").write_text((tmp / "t.txt").read_text().replace("dog", "cat"))
    encode_parallel(read_parallel(tmp / "s.txt", tmp / "t.txt"), again, **kwargs)
    assert again.calls == 400
    assert len(list((tmp / "cache").glob("*.npz"))) == 3


def data_first_char(tmp):
    return (tmp / "s.txt").read_text(encoding="utf-8")[0]


def test_broken_cache_entry_is_rebuilt(files, caplog):
    tmp, tok = files
    corpus = read_parallel(tmp / "s.txt", tmp / "t.txt")
    kwargs = {"tokenizer_file": tmp / "tok.json", "cache_dir": tmp / "cache", "progress": False}
    path = encode_parallel(corpus, tok, **kwargs).cache_path
    path.write_bytes(path.read_bytes()[:100])  # truncated
    with caplog.at_level(logging.WARNING, logger="transformer.data"):
        data = encode_parallel(corpus, tok, **kwargs)
    assert "unreadable cache file" in caplog.text and not data.from_cache
    assert zipfile.is_zipfile(path)
    np.savez(path, src_ids=np.zeros(3, np.int32))  # well-formed but wrong contents
    assert not encode_parallel(corpus, tok, **kwargs).from_cache
    assert encode_parallel(corpus, tok, **kwargs).from_cache
    with pytest.raises(DataError, match="tokenizer_file"):
        encode_parallel(corpus, tok, cache_dir=tmp / "cache")


def test_max_len_skips_and_counts(files):
    tmp, tok = files
    corpus = read_parallel(tmp / "s.txt", tmp / "t.txt")
    max_len = 25
    keep = [i for i in range(len(corpus)) if max(len(corpus.src[i]), len(corpus.tgt[i])) <= max_len]
    data = encode_parallel(corpus, tok, max_len=max_len, progress=False)
    assert 0 < len(keep) < len(corpus) and len(data) == len(keep)
    assert data.line_numbers.tolist() == [corpus.line_numbers[i] for i in keep]
    for j, i in enumerate(keep):
        assert data.tgt(j).tolist() == [ord(c) + 4 for c in corpus.tgt[i]]
    assert data.counts.too_many_tokens == len(corpus) - len(keep)
    assert data.counts.kept == len(keep)
    with pytest.raises(DataError, match=r"empty corpus after tokenization \(max_len=1\)"):
        data.filter_lengths(1)


def test_pairs_encoding_to_nothing_are_skipped_and_counted(files):
    tmp, _ = files

    class NoVowels:  # stand-in that drops vowels: "a", "die", ... may encode to nothing
        def encode(self, text):
            return [ord(c) for c in text if c not in "aeiouäöü \t"]

    corpus = read_parallel(tmp / "s.txt", tmp / "t.txt")
    codes = [(NoVowels().encode(s), NoVowels().encode(t)) for s, t in zip(corpus.src, corpus.tgt)]
    keep = [i for i, (s, t) in enumerate(codes) if s and t]
    data = encode_parallel(corpus, NoVowels(), progress=False)
    assert 0 < len(keep) < len(corpus) and len(data) == data.counts.kept == len(keep)
    assert data.counts.empty == len(corpus) - len(keep)
    assert [data.src(j).tolist() for j in range(len(data))] == [codes[i][0] for i in keep]


def test_take_ragged_matches_lists():
    rng = np.random.default_rng(1)
    rows = [rng.integers(0, 100, rng.integers(0, 6)).tolist() for _ in range(40)]
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64)
    ids = np.array([x for r in rows for x in r], dtype=np.int32)
    keep = rng.permutation(40)[:25]
    out, out_offsets = take_ragged(ids, offsets, keep)
    got = [out[out_offsets[j] : out_offsets[j + 1]].tolist() for j in range(len(keep))]
    assert got == [rows[i] for i in keep]


def test_encode_text_cached(tmp_path):
    (tmp_path / "play.txt").write_text("ROMEO:\nBut soft!\n", encoding="utf-8")
    tok = CharTokenizer()
    tok.save(tmp_path / "tok.json")
    kwargs = {"tokenizer_file": tmp_path / "tok.json", "cache_dir": tmp_path / "c"}
    ids = encode_text(tmp_path / "play.txt", tok, **kwargs)
    assert ids.tolist() == [ord(c) + 4 for c in "ROMEO:\nBut soft!\n"] and tok.calls == 1
    again = encode_text(tmp_path / "play.txt", tok, **kwargs)
    assert tok.calls == 1 and again.tolist() == ids.tolist()


def test_real_bpe_round_trip_through_cache_and_batches(tmp_path):
    """Integration with the project's BPE: batch rows decode back to the original pairs."""
    tokenizers = pytest.importorskip("transformer.tokenizers")

    root = corpus_dir("multi30k").parent
    corpus = load_multi30k("val", "de", "en", data_dir=root, download_missing=False)
    bpe = tokenizers.BPE.train(corpus.src + corpus.tgt, 300)
    bpe.save(tmp_path / "bpe.json")
    kwargs = {"tokenizer_file": tmp_path / "bpe.json", "cache_dir": tmp_path, "progress": False}
    encode_parallel(corpus, bpe, **kwargs)
    data = encode_parallel(corpus, tokenizers.BPE.load(tmp_path / "bpe.json"), **kwargs)
    assert data.from_cache
    batch = next(iter(TokenBatcher(data, 2000, seed=0)))
    for row, i in enumerate(batch.indices.tolist()):
        src = batch.src[row][batch.src[row].ne(bpe.pad_id)].tolist()
        out = batch.tgt_out[row][batch.tgt_out[row].ne(bpe.pad_id)].tolist()
        assert out[-1] == bpe.eos_id and batch.tgt_in[row, 0] == bpe.bos_id
        assert bpe.decode(src) == corpus.src[i] and bpe.decode(out[:-1]) == corpus.tgt[i]
