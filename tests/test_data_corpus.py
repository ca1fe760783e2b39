"""Corpus readers: plain/gzip text, parallel files, clear errors, skipped pairs counted."""

from __future__ import annotations

import gzip
import logging
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transformer.data import DataError, read_lines, read_parallel, read_text


def write(path, text: str | bytes, gz: bool = False):
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_read_lines_plain_and_gzip(tmp_path, gz):
    # CRLF, a BOM, inner U+2028 (not a line break here), surrounding spaces, no final newline.
    text = "\ufeffEin Hund.\r\n  Zwei\u2028Katzen  \n\nDrei Vögel"
    path = write(tmp_path / ("a.txt.gz" if gz else "a.txt"), text, gz)
    assert read_lines(path) == ["Ein Hund.", "Zwei\u2028Katzen", "", "Drei Vögel"]


def test_final_newline_adds_no_line_and_empty_file(tmp_path):
    assert read_lines(write(tmp_path / "a", "x\ny\n")) == ["x", "y"]
    assert read_lines(write(tmp_path / "b", "")) == []
    assert read_lines(write(tmp_path / "c", "\n")) == [""]


@pytest.mark.parametrize("gz", [False, True])
def test_invalid_utf8_names_file_and_line(tmp_path, gz):
    rng = random.Random(3)
    lines = [f"sentence {i} größer" for i in range(50)]
    bad = rng.randrange(50)
    data = "\n".join(lines).encode().split(b"\n")
    data[bad] = data[bad][:5] + b"\xff\xfe" + data[bad][5:]
    path = write(tmp_path / "bad.de", b"\n".join(data), gz)
    with pytest.raises(DataError, match=rf"bad\.de:{bad + 1}: invalid UTF-8"):
        read_lines(path)
    with pytest.raises(DataError, match=rf":{bad + 1}: "):
        read_text(path)


def test_corrupt_gzip_and_missing_file(tmp_path):
    data = gzip.compress(b"hello\nworld\n" * 100)
    path = write(tmp_path / "x.gz", data[: len(data) // 2])
    with pytest.raises(DataError, match=r"x\.gz: corrupt gzip"):
        read_lines(path)
    with pytest.raises(DataError, match="not found"):
        read_lines(tmp_path / "nope.txt")


def test_parallel_length_mismatch_names_both_files_and_counts(tmp_path):
    src = write(tmp_path / "train.de", "a\nb\nc\n")
    tgt = write(tmp_path / "train.en.gz", "a\nb\n", gz=True)
    with pytest.raises(DataError) as err:
        read_parallel(src, tgt)
    message = str(err.value)
    assert str(src) in message and str(tgt) in message
    assert "3 lines" in message and "2 lines" in message


def test_empty_and_long_pairs_are_skipped_and_counted(tmp_path, caplog):
    rng = random.Random(0)
    src_lines, tgt_lines = [], []
    for _ in range(300):
        src_lines.append(" ".join("w" * rng.randint(1, 3) for _ in range(rng.randint(0, 12))))
        tgt_lines.append(" ".join("v" for _ in range(rng.randint(0, 12))))
    src = write(tmp_path / "s.txt", "\n".join(src_lines) + "\n")
    tgt = write(tmp_path / "t.txt.gz", "\n".join(tgt_lines) + "\n", gz=True)
    max_words = 9
    # Reference: classify each pair by hand.
    expect_empty = [i for i in range(300) if not src_lines[i] or not tgt_lines[i]]
    expect_long = [
        i
        for i in range(300)
        if i not in expect_empty
        and (len(src_lines[i].split()) > max_words or len(tgt_lines[i].split()) > max_words)
    ]
    kept = [i for i in range(300) if i not in expect_empty and i not in expect_long]
    with caplog.at_level(logging.INFO, logger="transformer.data"):
        corpus = read_parallel(src, tgt, max_words=max_words)
    assert corpus.src == [src_lines[i] for i in kept]
    assert corpus.tgt == [tgt_lines[i] for i in kept]
    assert corpus.line_numbers == [i + 1 for i in kept]
    c = corpus.counts
    assert (c.lines, c.kept, c.empty, c.too_long) == (
        300,
        len(kept),
        len(expect_empty),
        len(expect_long),
    )
    assert len(expect_empty) > 0 and len(expect_long) > 0
    assert f"skipped {len(expect_empty)} empty, {len(expect_long)} over the word limit" in (
        caplog.text
    )


def test_empty_corpus_is_an_error(tmp_path):
    a = write(tmp_path / "a", "")
    b = write(tmp_path / "b", "")
    with pytest.raises(DataError, match="empty corpus"):
        read_parallel(a, b)
    a = write(tmp_path / "c", "x\n\n")
    b = write(tmp_path / "d", "\ny\n")
    with pytest.raises(DataError, match=r"empty corpus.*skipped 2 empty"):
        read_parallel(a, b)
    with pytest.raises(DataError, match="max_words"):
        read_parallel(a, b, max_words=0)


@settings(max_examples=30, deadline=None)
@given(
    # Lone surrogates (category Cs) cannot be written as UTF-8 at all: not a line a file holds.
    lines=st.lists(
        st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\n\r\ufeff")),
        max_size=8,
    ),
    gz=st.booleans(),
    final_newline=st.booleans(),
)
def test_property_round_trip(tmp_path_factory, lines, gz, final_newline):
    """Any text lines written one per line read back stripped, with nothing split or lost."""
    text = "\n".join(lines) + ("\n" if final_newline and lines else "")
    path = write(tmp_path_factory.mktemp("rt") / "x", text, gz)
    expected = [line.strip() for line in lines]
    if lines and not final_newline and lines[-1] == "":
        expected.pop()  # "a\n" + "" is the same file as ["a"] with a final newline
    assert read_lines(path) == expected
