"""Encoded-corpus cache: tokenize a corpus once, store the ids, load them on the next run.

A cache entry is one `.npz` file of plain integer arrays (flat ids + offsets, ragged-array
style; loaded with `allow_pickle=False`, never pickle), named by a sha256 over the
tokenizer file's bytes, the source files' bytes and the kept line numbers (so a changed
tokenizer, corpus or filter gives a new entry). Writes are atomic and durable
(`transformer.durable`); an unreadable entry is logged and rebuilt, never trusted.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from transformer import durable
from transformer.data.corpus import DataError, ParallelCorpus, SkipCounts, log

FORMAT_VERSION = b"transformer.data.cache v1"


class Encoder(Protocol):
    """What the data pipeline needs from a tokenizer (e.g. `transformer.tokenizers.BPE`)."""

    def encode(self, text: str) -> list[int]: ...


def digest(files: Sequence[str | os.PathLike[str]], extra: Iterable[bytes] = ()) -> str:
    """sha256 (hex) over the format version, each file's bytes, and `extra` byte strings."""
    h = hashlib.sha256(FORMAT_VERSION)
    for path in files:
        file_hash = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                file_hash.update(chunk)
        h.update(file_hash.digest())
    for blob in extra:
        h.update(hashlib.sha256(blob).digest())
    return h.hexdigest()


def cached_arrays(
    path: Path,
    build: Callable[[], dict[str, np.ndarray]],
    valid: Callable[[dict[str, np.ndarray]], bool] = lambda arrays: True,
) -> tuple[dict[str, np.ndarray], bool]:
    """Load the arrays stored at `path`, or `build()` them and store them there atomically.

    A stored entry that cannot be read or fails `valid` is logged and rebuilt.
    Returns (arrays, loaded_from_cache).
    """
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
            if valid(arrays):
                return arrays, True
            log.warning("ignoring cache file %s (contents do not match); rebuilding it", path)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            log.warning("ignoring unreadable cache file %s (%s); rebuilding it", path, err)
    arrays = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    with durable.atomic_file(path) as f:
        np.savez(f, **arrays)
    return arrays, False


def encode_lines(
    lines: Sequence[str], tokenizer: Encoder, *, progress: bool = True, desc: str = "encode"
) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of each line as (ids (N_tokens,) int32, offsets (N+1,) int64): line i is
    ids[offsets[i]:offsets[i+1]]. No <s>/</s> is added."""
    encoded = [tokenizer.encode(line) for line in tqdm(lines, desc=desc, disable=not progress)]
    return _ragged(encoded)


@dataclass(frozen=True)
class EncodedParallel:
    """A tokenized parallel corpus as ragged arrays (no <s>/</s>; the batcher adds them).

    Pair i is src_ids[src_offsets[i]:src_offsets[i+1]] -> tgt_ids[tgt_offsets[i]:...];
    line_numbers[i] is its 1-based line in the text files. `cache_path` is the cache entry
    used (None without a cache); `from_cache` says whether it was loaded rather than built.
    """

    src_ids: np.ndarray  # (N_src_tokens,) int32
    src_offsets: np.ndarray  # (N + 1,) int64
    tgt_ids: np.ndarray  # (N_tgt_tokens,) int32
    tgt_offsets: np.ndarray  # (N + 1,) int64
    line_numbers: np.ndarray  # (N,) int64
    counts: SkipCounts
    cache_path: Path | None = None
    from_cache: bool = False

    @classmethod
    def from_lists(
        cls, src: Sequence[Sequence[int]], tgt: Sequence[Sequence[int]]
    ) -> EncodedParallel:
        """In-memory pairs (source ids, target ids), e.g. a synthetic task; no cache.
        line_numbers are 1..N and counts say N pairs kept."""
        if len(src) != len(tgt):
            raise DataError(f"from_lists: {len(src)} sources but {len(tgt)} targets")
        (src_ids, src_offsets), (tgt_ids, tgt_offsets) = _ragged(src), _ragged(tgt)
        n = len(src)
        return cls(src_ids, src_offsets, tgt_ids, tgt_offsets,
                   np.arange(1, n + 1, dtype=np.int64), SkipCounts(lines=n, kept=n))  # fmt: skip

    def __len__(self) -> int:
        return len(self.line_numbers)

    @property
    def src_lengths(self) -> np.ndarray:
        """(N,) int64 token count of each source sentence."""
        return np.diff(self.src_offsets)

    @property
    def tgt_lengths(self) -> np.ndarray:
        """(N,) int64 token count of each target sentence."""
        return np.diff(self.tgt_offsets)

    def src(self, i: int) -> np.ndarray:
        return self.src_ids[self.src_offsets[i] : self.src_offsets[i + 1]]

    def tgt(self, i: int) -> np.ndarray:
        return self.tgt_ids[self.tgt_offsets[i] : self.tgt_offsets[i + 1]]

    def select(self, keep: np.ndarray) -> EncodedParallel:
        """The pairs at the (sorted) indices `keep`, in that order; counts unchanged."""
        src_ids, src_offsets = take_ragged(self.src_ids, self.src_offsets, keep)
        tgt_ids, tgt_offsets = take_ragged(self.tgt_ids, self.tgt_offsets, keep)
        return replace(
            self,
            src_ids=src_ids,
            src_offsets=src_offsets,
            tgt_ids=tgt_ids,
            tgt_offsets=tgt_offsets,
            line_numbers=self.line_numbers[keep],
        )

    def filter_lengths(self, max_len: int | None = None) -> EncodedParallel:
        """Skip and count pairs whose encoding has an empty side (in `counts.empty`) or,
        when `max_len` is set, a side over `max_len` tokens (in `counts.too_many_tokens`).
        Raises `DataError` when nothing is left."""
        if max_len is not None and (not isinstance(max_len, int) or max_len < 1):
            raise DataError(f"max_len must be a positive integer or None, got {max_len!r}")
        src_len, tgt_len = self.src_lengths, self.tgt_lengths
        empty = (src_len == 0) | (tgt_len == 0)
        long = ~empty & (np.maximum(src_len, tgt_len) > (max_len or np.inf))
        keep = np.flatnonzero(~empty & ~long)
        counts = replace(
            self.counts,
            kept=len(keep),
            empty=self.counts.empty + int(empty.sum()),
            too_many_tokens=self.counts.too_many_tokens + int(long.sum()),
        )
        if len(keep) == 0:
            raise DataError(f"empty corpus after tokenization (max_len={max_len}): "
                            f"{counts.describe()}")  # fmt: skip
        if len(keep) < len(self):
            log.info("after tokenization (max_len=%s): %s", max_len, counts.describe())
            return replace(self.select(keep), counts=counts)
        return self


def _ragged(rows: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(ids (N_tokens,) int32, offsets (N+1,) int64) of a list of id lists."""
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    ids = np.fromiter(itertools.chain.from_iterable(rows), dtype=np.int64, count=offsets[-1])
    if ids.size and (ids.min() < 0 or ids.max() > np.iinfo(np.int32).max):
        raise DataError(f"token ids outside [0, 2^31): {ids.min()}..{ids.max()}")
    return ids.astype(np.int32), offsets


def take_ragged(
    ids: np.ndarray, offsets: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Rows `keep` of the ragged array (ids, offsets), as a new (ids, offsets) pair."""
    lengths = np.diff(offsets)[keep]
    new_offsets = np.zeros(len(keep) + 1, dtype=np.int64)
    np.cumsum(lengths, out=new_offsets[1:])
    if len(keep) == 0:
        return ids[:0], new_offsets
    # Gather: position j of the output comes from offsets[keep[row]] + (j - new_offsets[row]).
    rows = np.repeat(np.arange(len(keep)), lengths)
    source = offsets[keep][rows] + (np.arange(new_offsets[-1]) - new_offsets[rows])
    return ids[source], new_offsets


def encode_parallel(
    corpus: ParallelCorpus,
    tokenizer: Encoder,
    *,
    tokenizer_file: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    max_len: int | None = None,
    progress: bool = True,
) -> EncodedParallel:
    """Tokenize both sides of `corpus`, through the cache in `cache_dir` when given.

    `tokenizer_file` (the saved tokenizer, e.g. `BPE.save`'s JSON) is required with a
    cache: its bytes are part of the key. Pairs with a side that encodes to no token, or
    (with `max_len`) to more than `max_len` tokens, are skipped and counted (applied after
    the cache, so `max_len` does not change the key).
    """

    def build() -> dict[str, np.ndarray]:
        src_ids, src_offsets = encode_lines(corpus.src, tokenizer, progress=progress, desc="src")
        tgt_ids, tgt_offsets = encode_lines(corpus.tgt, tokenizer, progress=progress, desc="tgt")
        return {"src_ids": src_ids, "src_offsets": src_offsets,
                "tgt_ids": tgt_ids, "tgt_offsets": tgt_offsets}  # fmt: skip

    numbers = np.asarray(corpus.line_numbers, dtype=np.int64)
    path = None
    if cache_dir is None:
        arrays, hit = build(), False
    else:
        if tokenizer_file is None:
            raise DataError("encode_parallel: a cache_dir needs the tokenizer_file (its key)")
        key = digest([tokenizer_file, corpus.src_path, corpus.tgt_path], [numbers.tobytes()])
        path = Path(cache_dir) / f"parallel-{key[:24]}.npz"
        arrays, hit = cached_arrays(path, build, lambda a: _arrays_match(a, len(numbers)))
        log.info("%s encoded corpus %s", "loaded" if hit else "stored", path)
    try:
        return _encoded(arrays, numbers, corpus, path, hit).filter_lengths(max_len)
    except DataError as err:  # nothing left: name the files
        raise DataError(f"{corpus.src_path} / {corpus.tgt_path}: {err}") from None


def _encoded(arrays, numbers, corpus, path, hit) -> EncodedParallel:
    return EncodedParallel(
        **{name: arrays[name] for name in ("src_ids", "src_offsets", "tgt_ids", "tgt_offsets")},
        line_numbers=numbers,
        counts=corpus.counts,
        cache_path=path,
        from_cache=hit,
    )


def _arrays_match(arrays: dict[str, np.ndarray], n: int) -> bool:
    """Whether cached arrays are well-formed ragged arrays of n rows."""
    for side in ("src", "tgt"):
        ids, offsets = arrays.get(f"{side}_ids"), arrays.get(f"{side}_offsets")
        if ids is None or offsets is None or ids.ndim != 1 or offsets.shape != (n + 1,):
            return False
        if offsets[0] != 0 or offsets[-1] != len(ids) or np.any(np.diff(offsets) < 0):
            return False
    return True
