"""Punctuation splitting before BPE: against a character loop, hand cases and subword-nmt."""

from __future__ import annotations

import json
import random
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from test_tokenizers_bpe import multi30k_lines, subword_nmt_codes
from transformer.tokenizers import BPE, TokenizerError
from transformer.tokenizers.punct import JOINER, join_punct, split_punct

J = JOINER


def loop_split(text: str) -> str:
    """Reference: one character at a time, by Unicode category (letters, numbers, marks)."""
    tokens: list[str] = []
    for word in text.replace("\n", " ").replace("\r", " ").split(" "):
        pieces: list[str] = []
        for ch in word:
            wordy = unicodedata.category(ch)[0] in "LNM"
            if wordy and pieces and pieces[-1][-1:] and _wordy(pieces[-1]):
                pieces[-1] += ch
            else:
                pieces.append(ch)
        for i in range(1, len(pieces)):
            if _wordy(pieces[i]):
                pieces[i - 1] += J
            else:
                pieces[i] = J + pieces[i]
        tokens += pieces
    return " ".join(tokens)


def _wordy(piece: str) -> bool:
    return unicodedata.category(piece[-1])[0] in "LNM"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Ein T-Shirt.", f"Ein T {J}-{J} Shirt {J}."),
        ("a - b", "a - b"),
        ("(Büsche),", f"({J} Büsche {J}) {J},"),
        ("man's", f"man {J}'{J} s"),
        ("wait...", f"wait {J}. {J}. {J}."),
        ("120\u00a0cm", f"120 {J}\u00a0{J} cm"),
        ("  two  spaces ", "two spaces"),
        ("", ""),
    ],
)
def test_hand_cases(text, expected):
    assert split_punct(text) == expected


ALPHABET = "abcÄüß12 .,-'()\"!\u0308\u00a0"


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=ALPHABET, max_size=40))
def test_split_equals_character_loop(text):
    assert split_punct(text) == loop_split(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=ALPHABET.replace(" ", ""), min_size=1, max_size=8), max_size=8))
def test_join_inverts_split_on_single_spaced_text(words):
    text = " ".join(words)
    assert join_punct(split_punct(text)) == text


def test_bpe_with_split_punct_equals_subword_nmt_on_the_split_text(tmp_path):
    from subword_nmt.apply_bpe import BPE as SubwordNmtBPE

    lines = multi30k_lines("val", limit=400)
    bpe = BPE.train(lines, 500, split_punct=True)
    assert bpe.merges == subword_nmt_codes([split_punct(x) + "\n" for x in lines], 500)
    assert bpe.tokenize("Büsche.")[-1] == f"{J}.</w>"
    bpe.write_codes(tmp_path / "codes")
    with open(tmp_path / "codes", encoding="utf-8") as f:
        reference = SubwordNmtBPE(f)
    for line in multi30k_lines("test_2016_flickr", limit=200):
        assert bpe.segment(line) == reference.process_line(split_punct(line)), line


def test_bpe_round_trip_and_file_keep_the_setting(tmp_path):
    lines = multi30k_lines("val", limit=300)
    bpe = BPE.train(lines, 300, split_punct=True)
    for line in lines:  # (every character seen in training: no <unk>)
        line = " ".join(line.split())
        assert bpe.decode(bpe.encode(line)) == line
    bpe.save(tmp_path / "bpe.json")
    again = BPE.load(tmp_path / "bpe.json")
    assert again.split_punct and again.tokens == bpe.tokens
    payload = json.loads((tmp_path / "bpe.json").read_text())
    assert payload["version"] == 2 and payload["pre_tokenizer"] == ["whitespace", "punct"]
    for stages in (["punct"], ["whitespace", "other"], "punct"):
        payload["pre_tokenizer"] = stages
        (tmp_path / "bad.json").write_text(json.dumps(payload))
        with pytest.raises(TokenizerError, match=r"bad\.json.*pre_tokenizer"):
            BPE.load(tmp_path / "bad.json")
    del payload["pre_tokenizer"]
    (tmp_path / "bad.json").write_text(json.dumps(payload))
    with pytest.raises(TokenizerError, match=r"bad\.json.*missing field 'pre_tokenizer'"):
        BPE.load(tmp_path / "bad.json")


# Written by the code of ee89a8c (file format version 1, `split_punct` a field of its own) from
# BPE.train(OLD_LINES, 12, split_punct=True).
OLD_LINES = ["Ein T-Shirt, ein Hut.", "Ein Hut (rot).", "T-Shirt und Hut."]
OLD_FILE = (
    '{"format": "transformer.tokenizers.BPE", "version": 1, "end_of_word": "</w>", '
    '"split_punct": true, "vocab": ["<pad>", "<s>", "</s>", "<unk>", "(", "(</w>", ")", '
    '")</w>", ",", ",</w>", "-", "-</w>", ".", ".</w>", "E", "E</w>", "H", "H</w>", "S", '
    '"S</w>", "T", "T</w>", "d", "d</w>", "e", "e</w>", "h", "h</w>", "i", "i</w>", "n", '
    '"n</w>", "o", "o</w>", "r", "r</w>", "t", "t</w>", "u", "u</w>", "\uffed", "\uffed</w>", '
    '"\uffed.</w>", "ut</w>", "in</w>", "Hut</w>", "\uffed-", "\uffed-\uffed</w>", "rt</w>", '
    '"irt</w>", "hirt</w>", "Shirt</w>", "Ein</w>"], "merges": [["\uffed", ".</w>"], '
    '["u", "t</w>"], ["i", "n</w>"], ["H", "ut</w>"], ["\uffed", "-"], ["\uffed-", '
    '"\uffed</w>"], ["r", "t</w>"], ["i", "rt</w>"], ["h", "irt</w>"], ["S", "hirt</w>"], '
    '["E", "in</w>"]]}'
)


def test_version_1_files_still_load(tmp_path):
    path = tmp_path / "old.json"
    path.write_text(OLD_FILE, encoding="utf-8")
    old = BPE.load(path)
    assert old.split_punct
    assert old.merges == subword_nmt_codes([split_punct(x) + "\n" for x in OLD_LINES], 12)
    new = BPE.train(OLD_LINES, 12, split_punct=True)
    assert old.tokens == new.tokens
    assert old.encode("Ein Hut, rot.") == new.encode("Ein Hut, rot.") != []
    old.save(tmp_path / "again.json")  # (saved again: version 2)
    assert json.loads((tmp_path / "again.json").read_text())["version"] == 2
    payload = json.loads(OLD_FILE)
    del payload["split_punct"]  # a version 1 file written before the field existed
    (tmp_path / "older.json").write_text(json.dumps(payload))
    assert BPE.load(tmp_path / "older.json").split_punct is False
    payload["split_punct"] = "yes"
    (tmp_path / "bad.json").write_text(json.dumps(payload))
    with pytest.raises(TokenizerError, match=r"bad\.json.*split_punct"):
        BPE.load(tmp_path / "bad.json")


def test_random_text_round_trips_through_bpe():
    rng = random.Random(0)
    words = ["".join(rng.choices("abcde.,-'", k=rng.randint(1, 6))) for _ in range(60)]
    lines = [" ".join(rng.choices(words, k=rng.randint(1, 8))) for _ in range(300)]
    bpe = BPE.train(lines, 80, split_punct=True)
    for line in lines[:100]:
        assert bpe.decode(bpe.encode(line)) == line
    with pytest.raises(TokenizerError, match="split_punct must be True or False"):
        BPE([], "ab", split_punct="yes")
