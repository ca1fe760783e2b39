"""Text corpora: plain or gzip files, one sentence per line, and sentence-aligned pairs of them.

Bad input gets a clear `DataError` and nothing is silently lost:
- invalid UTF-8 names the file and the 1-based line number;
- parallel files of different lengths name both files and both line counts;
- empty pairs (either side blank) and over-long pairs (either side over `max_words`
  whitespace-separated words) are skipped and *counted* in `SkipCounts` (also logged);
- a corpus with no usable pair is an error, never an empty dataset.

Lines are split on b"\\n" only (not on U+2028 or other Unicode separators that
`str.splitlines` would also split on), so line numbers match `wc -l` / `sed -n Np`.
A trailing "\\r", surrounding whitespace and a UTF-8 byte-order mark are removed.
"""

from __future__ import annotations

import gzip
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("transformer.data")

GZIP_MAGIC = b"\x1f\x8b"


class DataError(ValueError):
    """Bad input data (corpus files, cache, download); the message names the file and line."""


def read_bytes(path: str | os.PathLike[str]) -> bytes:
    """The decompressed bytes of a plain or gzip file (detected by its magic number)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a text file") from None
    except OSError as err:  # permission denied, an I/O error
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if not raw.startswith(GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: corrupt gzip file ({err})") from None


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of a plain or gzip UTF-8 file (a leading byte-order mark removed).

    Raises `DataError` with the file and 1-based line number on invalid UTF-8.
    """
    data = read_bytes(path)
    try:
        return data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as err:
        line_no = data.count(b"\n", 0, err.start) + 1
        line_start = data.rfind(b"\n", 0, err.start) + 1
        raise DataError(
            f"{path}:{line_no}: invalid UTF-8 (byte 0x{data[err.start]:02x} at column "
            f"{err.start - line_start + 1}: {err.reason})"
        ) from None


def read_lines(path: str | os.PathLike[str]) -> list[str]:
    """All lines of a plain or gzip UTF-8 text file, stripped of surrounding whitespace.

    A final newline does not add an empty last line. Raises `DataError` with the file
    and 1-based line number on invalid UTF-8.
    """
    text = read_text(path)
    if not text:
        return []
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.strip() for line in lines]


@dataclass(frozen=True)
class SkipCounts:
    """How many pairs a corpus had and why some were skipped.

    lines: pairs read (= lines per file); kept: pairs kept; empty: skipped because a side
    was blank; too_long: skipped because a side had more than `max_words` words;
    too_many_tokens: skipped after tokenization because a side had more than `max_len`
    tokens (filled in by `encode_parallel`). lines == kept + empty + too_long + too_many_tokens.
    """

    lines: int
    kept: int
    empty: int = 0
    too_long: int = 0
    too_many_tokens: int = 0

    @property
    def skipped(self) -> int:
        return self.empty + self.too_long + self.too_many_tokens

    def describe(self) -> str:
        return (
            f"kept {self.kept:,} of {self.lines:,} pairs (skipped {self.empty:,} empty, "
            f"{self.too_long:,} over the word limit, {self.too_many_tokens:,} over the token "
            "limit)"
        )


@dataclass(frozen=True)
class ParallelCorpus:
    """Sentence-aligned text. src[i] translates to tgt[i]; line_numbers[i] is the 1-based
    line of that pair in both files (so skipped pairs can be traced)."""

    src: list[str]
    tgt: list[str]
    line_numbers: list[int]
    src_path: Path
    tgt_path: Path
    counts: SkipCounts

    def __len__(self) -> int:
        return len(self.src)


def read_parallel(
    src_path: str | os.PathLike[str],
    tgt_path: str | os.PathLike[str],
    *,
    max_words: int | None = None,
) -> ParallelCorpus:
    """Read two aligned one-sentence-per-line files (plain or gzip).

    Pairs with a blank side, or (when `max_words` is set) a side of more than `max_words`
    whitespace-separated words, are skipped and counted. Raises `DataError` on different
    line counts, invalid UTF-8, or when no pair is left.
    """
    if max_words is not None and (not isinstance(max_words, int) or max_words < 1):
        raise DataError(f"max_words must be a positive integer or None, got {max_words!r}")
    src_path, tgt_path = Path(src_path), Path(tgt_path)
    src_lines, tgt_lines = read_lines(src_path), read_lines(tgt_path)
    if len(src_lines) != len(tgt_lines):
        raise DataError(
            f"parallel files differ in length: {src_path} has {len(src_lines):,} lines, "
            f"{tgt_path} has {len(tgt_lines):,} lines"
        )
    src, tgt, numbers = [], [], []
    empty = too_long = 0
    for number, (s, t) in enumerate(zip(src_lines, tgt_lines), start=1):
        if not s or not t:
            empty += 1
        elif max_words is not None and max(len(s.split()), len(t.split())) > max_words:
            too_long += 1
        else:
            src.append(s)
            tgt.append(t)
            numbers.append(number)
    counts = SkipCounts(lines=len(src_lines), kept=len(src), empty=empty, too_long=too_long)
    if not src:
        raise DataError(f"empty corpus: {src_path} / {tgt_path}: {counts.describe()}")
    log.info("read %s / %s: %s", src_path, tgt_path, counts.describe())
    return ParallelCorpus(src, tgt, numbers, src_path, tgt_path, counts)
