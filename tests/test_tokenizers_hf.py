"""`to_hf_json`: the Hugging Face `tokenizers` library loads our files and encodes identically."""

from __future__ import annotations

import gzip
import unicodedata

import pytest

from conftest import corpus_dir
from transformer.tokenizers import BPE, ByteBPE
from transformer.tokenizers.punct import split_punct

hf = pytest.importorskip("tokenizers")


def lines_of(name: str, split: str, limit: int) -> list[str]:
    with gzip.open(corpus_dir(name) / f"{split}.gz", "rt", encoding="utf-8") as f:
        return f.read().splitlines(keepends=True)[:limit]


def test_bpe_tokenizer_json_encodes_identically(tmp_path):
    train = lines_of("multi30k", "train.en", 1500) + lines_of("multi30k", "train.de", 1500)
    bpe = BPE.train(train, 600)
    bpe.to_hf_json(tmp_path / "tokenizer.json")
    theirs = hf.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert theirs.get_vocab_size() == bpe.vocab_size
    assert [theirs.token_to_id(t) for t in ("<pad>", "<s>", "</s>", "<unk>")] == [0, 1, 2, 3]
    texts = [
        *lines_of("multi30k", "val.de", 300),
        "unseen: Ωmega ✓ 42",
        "  spaces   and\ttabs\r\n",
        "",
    ]
    for text in texts:
        got = theirs.encode(text, add_special_tokens=False)
        assert got.ids == bpe.encode(text), text
        assert got.tokens == [bpe.tokens[i] for i in bpe.encode(text)]
    text = texts[0]
    assert theirs.decode(bpe.encode(text)) == bpe.decode(bpe.encode(text))


def test_gpt2_tokenizer_json_encodes_identically(tmp_path):
    from test_tokenizers_bytebpe import HOSTILE, load_gpt2

    gpt2 = load_gpt2()
    gpt2.to_hf_json(tmp_path / "tokenizer.json")
    theirs = hf.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    assert theirs.get_vocab_size() == 50257
    shakespeare = lines_of("tinyshakespeare", "input.txt", 2000)
    texts = ["".join(shakespeare), *lines_of("multi30k", "val.de", 200), *HOSTILE]
    for text in texts:
        if "<|endoftext|>" in text:  # HF always matches special-token text (see hf.py)
            continue
        got = theirs.encode(text, add_special_tokens=False)
        assert got.ids == gpt2.encode(text), text
        assert theirs.decode(got.ids) == text


def test_trained_bytebpe_tokenizer_json_encodes_identically(tmp_path):
    text = "".join(lines_of("multi30k", "val.en", 600))
    tok = ByteBPE.train([text], 600)
    tok.to_hf_json(tmp_path / "tokenizer.json")
    theirs = hf.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for line in [*lines_of("multi30k", "test_2016_flickr.en", 200), "ünïcödé ☃"]:
        assert theirs.encode(line, add_special_tokens=False).ids == tok.encode(line)


def test_bpe_without_end_of_word_marker(tmp_path):
    lines = ["hug"] * 10 + ["pug"] * 5 + ["pun"] * 12 + ["bun"] * 4 + ["hugs"] * 5
    bpe = BPE.train(lines, 3, end_of_word=None)
    bpe.to_hf_json(tmp_path / "tokenizer.json")
    theirs = hf.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in ("hugs bun", "pun pug hug", "gush"):
        got = theirs.encode(text, add_special_tokens=False)
        assert got.ids == bpe.encode(text)
        assert theirs.decode(got.ids) == bpe.decode(got.ids)


def test_split_punct_bpe_tokenizer_json_encodes_identically(tmp_path):
    """The `punct` stage exports as a normalizer (joiners inserted) plus a decoder (removed)."""
    train = lines_of("multi30k", "train.en", 1500) + lines_of("multi30k", "train.de", 1500)
    train.append("Preis: 12,50€ (ca.) — «Ja!»/„nein“ [x]{y} #1 @a a\u00a0b ä\u0308 ￭ \t.\n")
    bpe = BPE.train(train, 600, split_punct=True)
    bpe.to_hf_json(tmp_path / "tokenizer.json")
    theirs = hf.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    texts = [
        *lines_of("multi30k", "val.de", 300),
        *lines_of("multi30k", "val.en", 300),
        "Ein T-Shirt. (Büsche), man's wait... 120\u00a0cm",
        "  spaces   and\ttabs\r\n.,;:!?",
        "a ￭ b￭c ￭d e￭ -x- 'q' \"r\" ä\u0308ö 3.14 Ωmega ✓ 🚲.",
        "",
    ]
    for text in texts:
        ids = bpe.encode(text)
        got = theirs.encode(text, add_special_tokens=False)
        assert got.ids == ids, text
        assert got.tokens == [bpe.tokens[i] for i in ids], text
        if bpe.unk_id not in ids:  # (HF drops <unk> when it decodes; we write it out)
            assert theirs.decode(ids) == bpe.decode(ids), text


def test_split_punct_without_end_of_word_marker(tmp_path):
    lines = ["hug, pug.", "pun-bun (hugs)"] * 6
    bpe = BPE.train(lines, 12, end_of_word=None, split_punct=True)
    bpe.to_hf_json(tmp_path / "tokenizer.json")
    theirs = hf.Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in ("hugs, bun.", "(pun-pug)", "gush"):
        got = theirs.encode(text, add_special_tokens=False)
        assert got.ids == bpe.encode(text)
        assert theirs.decode(got.ids) == bpe.decode(got.ids)


def normalizer_disagreements(tmp_path, keep) -> list[str]:
    """The characters `keep(code point)` of those Python's Unicode database knows (assigned,
    not surrogates) where the exported normalizer, on the character between two letters, does
    not place the joiners where `punct.split_punct` does."""
    bpe = BPE.train(["a, b."] * 2, 2, split_punct=True)
    bpe.to_hf_json(tmp_path / "tokenizer.json")
    normalizer = hf.Tokenizer.from_file(str(tmp_path / "tokenizer.json")).normalizer
    chars = [
        chr(c)
        for c in range(0x110000)
        if keep(c) and unicodedata.category(chr(c)) not in ("Cn", "Cs") and chr(c) not in " \r\n"
    ]
    theirs = normalizer.normalize_str("\n".join(f"a{ch}a" for ch in chars)).split("\n")
    assert len(theirs) == len(chars)
    return [
        f"U+{ord(ch):04X}"
        for ch, t in zip(chars, theirs, strict=True)
        if " ".join(w for w in t.split(" ") if w) != split_punct(f"a{ch}a")
    ]


def test_split_punct_normalizer_agrees_on_characters(tmp_path):
    """All of U+0000..U+2FFF (Latin, Greek, Cyrillic, ..., general punctuation), then every
    17th code point."""
    assert not normalizer_disagreements(tmp_path, lambda c: c < 0x3000 or c % 17 == 0)


@pytest.mark.slow
def test_split_punct_normalizer_agrees_on_every_assigned_character(tmp_path):
    assert not normalizer_disagreements(tmp_path, lambda c: True)
