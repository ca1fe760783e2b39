"""The character vocabulary: nanoGPT's 65 Tiny Shakespeare characters in its order, round
trips, a clear error naming an unknown character, versioned JSON, `load_tokenizer`."""

from __future__ import annotations

import gzip
import json

import pytest

from conftest import corpus_dir
from transformer.tokenizers import CharTokenizer, TokenizerError, load_tokenizer

# nanoGPT's data/shakespeare_char/prepare.py prints these (its comment at the end of the file).
NANOGPT_CHARS = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def test_tiny_shakespeare_vocabulary_is_nanogpts():
    path = corpus_dir("tinyshakespeare") / "input.txt.gz"
    text = gzip.decompress(path.read_bytes()).decode("utf-8")
    tok = CharTokenizer.train(text)
    assert tok.vocab_size == 65 and "".join(tok.chars) == NANOGPT_CHARS
    stoi = {c: i for i, c in enumerate(sorted(set(text)))}  # prepare.py's own mapping
    sample = text[:5000]
    assert tok.encode(sample) == [stoi[c] for c in sample]
    assert tok.decode(tok.encode(sample)) == sample


def test_round_trip_save_load(tmp_path):
    tok = CharTokenizer.train(["héllo wörld\n", "ünïcode ✓"])
    assert tok.chars == sorted(set("héllo wörld\nünïcode ✓"))
    assert tok.tokenize("hello") == list("hello")
    path = tmp_path / "char.json"
    tok.save(path)
    payload = json.loads(path.read_text(encoding="utf-8"))
    assert payload["format"] == "transformer.tokenizers.Char" and payload["version"] == 1
    for loaded in (CharTokenizer.load(path), load_tokenizer(path)):
        assert isinstance(loaded, CharTokenizer) and loaded.chars == tok.chars
        assert loaded.decode(loaded.encode("wörld ✓")) == "wörld ✓"


def test_unknown_character_is_named():
    tok = CharTokenizer.train("abc ")
    with pytest.raises(TokenizerError, match=r"character 'Z' \(U\+005A\) at position 3"):
        tok.encode("ab Z")
    with pytest.raises(TokenizerError, match="ids must be integers in"):
        tok.decode([0, 4])


def test_bad_inputs_and_files(tmp_path):
    with pytest.raises(TokenizerError, match="empty"):
        CharTokenizer.train("")
    with pytest.raises(TokenizerError, match="not one character"):
        CharTokenizer(["a", "bc"])
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "transformer.tokenizers.Char", "version": 1,
                               "vocab": ["a", "a"]}))  # fmt: skip
    with pytest.raises(TokenizerError, match="repeats"):
        CharTokenizer.load(bad)
    bad.write_text(json.dumps({"format": "transformer.tokenizers.Char", "version": 1}))
    with pytest.raises(TokenizerError, match="missing field 'vocab'"):
        load_tokenizer(bad)


def test_tokenizer_cli_trains_and_applies_a_char_vocabulary(tmp_path, capsys, monkeypatch):
    import io

    from transformer.cli import main

    path = corpus_dir("tinyshakespeare") / "input.txt.gz"
    out = tmp_path / "chars.json"
    assert main(["tokenizer", "train", "--kind", "char", "-o", str(out), str(path)]) == 0
    assert "vocabulary 65 characters" in capsys.readouterr().err
    assert "".join(CharTokenizer.load(out).chars) == NANOGPT_CHARS
    monkeypatch.setattr("sys.stdin", io.StringIO("ROMEO:\n"))
    assert main(["tokenizer", "encode", "-t", str(out)]) == 0
    ids = capsys.readouterr().out.split()
    assert [NANOGPT_CHARS[int(i)] for i in ids] == list("ROMEO:")
    monkeypatch.setattr("sys.stdin", io.StringIO("ROMEO: é\n"))
    assert main(["tokenizer", "encode", "-t", str(out)]) == 2
    assert "'é' (U+00E9) at position 7" in capsys.readouterr().err
    assert main(["tokenizer", "train", "--kind", "char", "--merges", "3", "-o", str(out)]) == 2
