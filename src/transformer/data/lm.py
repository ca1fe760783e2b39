"""Language-model streams for the GPT model: one long token sequence cut into contiguous
blocks of T + 1 tokens (inputs = block[:, :-1], targets = block[:, 1:]), e.g. Tiny Shakespeare.

`LMStream` plans each epoch from (seed, epoch): a random offset in [0, T) and then
non-overlapping windows starting every T tokens (consecutive windows share one token, so every
token after the offset is a target exactly once per epoch), shuffled and grouped B at a time.
With shuffle=False (validation) the offset is 0 and the windows keep their order.
Positions (epoch, batch index) resume exactly, as for `TokenBatcher`.

`encode_split` splits a text as nanoGPT does (the first int(0.9 n) characters train, the rest
validates; for a character vocabulary that is its token split exactly) and encodes each part
once: the ids are cached as two `.npy` files and memory-mapped on the next run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from transformer.data.batching import EpochPlan
from transformer.data.cache import Encoder, cached_arrays, digest
from transformer.data.corpus import DataError, log, read_text
from transformer.data.download import data_root, download, verify_file

TINY_SHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/"
    "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt"
)
TINY_SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"


def tiny_shakespeare_path(
    data_dir: str | os.PathLike[str] | None = None,
    *,
    download_missing: bool = True,
    url: str = TINY_SHAKESPEARE_URL,
    progress: bool = True,
) -> Path:
    """`<root>/tinyshakespeare/input.txt.gz` or `input.txt` (root as in `data_root`);
    downloads `input.txt` (sha256-checked) when neither exists."""
    root = data_root(data_dir)
    directory = root if root.name == "tinyshakespeare" else root / "tinyshakespeare"
    if (directory / "input.txt.gz").is_file():  # a local copy (its own sha256 is not pinned)
        return directory / "input.txt.gz"
    if (directory / "input.txt").is_file():  # the downloaded file: re-hashed on each use
        return verify_file(directory / "input.txt", TINY_SHAKESPEARE_SHA256)
    if not download_missing:
        raise DataError(f"Tiny Shakespeare not found in {directory} (input.txt[.gz])")
    return download(url, directory / "input.txt", sha256=TINY_SHAKESPEARE_SHA256, progress=progress)


def encode_text(
    path: str | os.PathLike[str],
    tokenizer: Encoder,
    *,
    tokenizer_file: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
) -> np.ndarray:
    """(N,) int32 token ids of a whole text file (plain or gzip), through the cache in
    `cache_dir` when given (keyed by the tokenizer file's and the text file's bytes)."""

    def build() -> dict[str, np.ndarray]:
        text = read_text(path)
        if not text:
            raise DataError(f"{path}: empty text file")
        return {"ids": np.asarray(tokenizer.encode(text), dtype=np.int32)}

    if cache_dir is None:
        return build()["ids"]
    if tokenizer_file is None:
        raise DataError("encode_text: a cache_dir needs the tokenizer_file (its key)")
    key = digest([tokenizer_file, path])
    cache_path = Path(cache_dir) / f"text-{key[:24]}.npz"
    arrays, hit = cached_arrays(
        cache_path, build, lambda a: "ids" in a and a["ids"].ndim == 1 and a["ids"].size > 0
    )
    log.info("%s encoded text %s", "loaded" if hit else "stored", cache_path)
    return arrays["ids"]


def split_train_val(
    ids: Sequence[int] | np.ndarray, val_fraction: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): the first (1 - val_fraction) of the tokens and the rest (nanoGPT's
    convention for Tiny Shakespeare: first 90% / last 10%)."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    ids = np.asarray(ids)
    cut = round(len(ids) * (1.0 - val_fraction))
    return ids[:cut], ids[cut:]


def split_text(text: str, val_fraction: float = 0.1) -> tuple[str, str]:
    """(train, val) text: the first int(n · (1 - val_fraction)) characters and the rest, as
    nanoGPT's `prepare.py` cuts Tiny Shakespeare (1,003,854 / 111,540 characters)."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    cut = int(len(text) * (1.0 - val_fraction))
    return text[:cut], text[cut:]


@dataclass(frozen=True)
class SplitIds:
    """The encoded train and validation parts of a text (memory-mapped when cached)."""

    train: np.ndarray  # (N_train,) int32
    val: np.ndarray  # (N_val,) int32
    val_chars: int  # characters of the validation text (for bits per character)
    from_cache: bool = False


def encode_split(
    path: str | os.PathLike[str],
    tokenizer: Encoder,
    *,
    tokenizer_file: str | os.PathLike[str] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    val_fraction: float = 0.1,
) -> SplitIds:
    """`split_text` of the file, each part encoded on its own; through the cache in
    `cache_dir` when given (keyed by the tokenizer file's and the text file's bytes and the
    fraction; files `lm-<key>-train.npy` / `-val.npy`, loaded with mmap_mode="r")."""
    text: list[str] = []  # read lazily: a cache hit does not read the text

    def parts() -> tuple[str, str]:
        if not text:
            text.append(read_text(path))
        return split_text(text[0], val_fraction)

    def build(which: int) -> np.ndarray:
        part = parts()[which]
        if not part:
            raise DataError(f"{path}: the {('train', 'validation')[which]} part is empty")
        return np.asarray(tokenizer.encode(part), dtype=np.int32)

    if cache_dir is None:
        train, val = build(0), build(1)
        return SplitIds(train, val, len(parts()[1]))
    if tokenizer_file is None:
        raise DataError("encode_split: a cache_dir needs the tokenizer_file (its key)")
    key = digest([tokenizer_file, path], [f"lm split {val_fraction!r}".encode()])[:24]
    base = Path(cache_dir) / f"lm-{key}"
    (train, hit_t), (val, hit_v) = (
        cached_ids(Path(f"{base}-{name}.npy"), lambda w=w: build(w))
        for w, name in enumerate(("train", "val"))
    )
    chars_path = Path(f"{base}-val-chars.txt")
    if chars_path.is_file() and hit_v:
        val_chars = int(chars_path.read_text())
    else:
        val_chars = len(parts()[1])
        chars_path.write_text(str(val_chars))
    log.info("%s encoded text %s-*.npy", "loaded" if hit_t and hit_v else "stored", base)
    return SplitIds(train, val, val_chars, from_cache=hit_t and hit_v)


def cached_ids(path: Path, build: Callable[[], np.ndarray]) -> tuple[np.ndarray, bool]:
    """(ids memory-mapped from the `.npy` at `path`, loaded?): `build()` and store them
    there atomically first when the file is missing or unreadable."""
    if path.is_file():
        try:
            ids = np.load(path, mmap_mode="r", allow_pickle=False)
            if ids.ndim == 1 and ids.dtype == np.int32 and ids.size > 0:
                return ids, True
            log.warning("ignoring cache file %s (contents do not match); rebuilding it", path)
        except (OSError, ValueError) as err:
            log.warning("ignoring unreadable cache file %s (%s); rebuilding it", path, err)
    ids = build()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, ids, allow_pickle=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r", allow_pickle=False), False


@dataclass(frozen=True)
class LMBatch:
    """Contiguous blocks of the stream. B batch, T block size."""

    block: torch.Tensor  # (B, T + 1) int64
    starts: torch.Tensor  # (B,) int64: stream position of each block's first token
    epoch: int
    index: int
    next_position: tuple[int, int]

    @property
    def inputs(self) -> torch.Tensor:
        """(B, T) tokens 0..T-1 of each block."""
        return self.block[:, :-1]

    @property
    def targets(self) -> torch.Tensor:
        """(B, T) tokens 1..T of each block: the next token of each input position."""
        return self.block[:, 1:]


class LMStream(EpochPlan):
    """Batches of B contiguous (T + 1)-token blocks of `ids` (see the module docstring);
    the last batch of an epoch may hold fewer than B blocks."""

    def __init__(
        self,
        ids: Sequence[int] | np.ndarray,
        block_size: int,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
    ) -> None:
        for name, value in (("block_size", block_size), ("batch_size", batch_size)):
            if not isinstance(value, int) or value < 1:
                raise DataError(f"{name} must be a positive integer, got {value!r}")
        self.ids = ids if isinstance(ids, np.ndarray) else np.asarray(ids, dtype=np.int64)
        if self.ids.ndim != 1 or len(self.ids) < 2 * block_size + 1:
            raise DataError(
                f"a stream of {len(self.ids)} tokens is too short for block_size={block_size} "
                f"(needs at least {2 * block_size + 1})"
            )
        self.block_size, self.batch_size = block_size, batch_size
        self.seed, self.shuffle = seed, shuffle

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        T = self.block_size
        offset = int(rng.integers(0, T)) if self.shuffle else 0
        starts = np.arange(offset, len(self.ids) - T, T)  # window [start, start + T]
        if self.shuffle:
            starts = rng.permutation(starts)
        return [starts[i : i + self.batch_size] for i in range(0, len(starts), self.batch_size)]

    def _make(self, item: np.ndarray, epoch: int, index: int, next_position: tuple[int, int]):
        rows = item[:, None] + np.arange(self.block_size + 1)[None, :]  # (B, T + 1)
        return LMBatch(
            block=torch.from_numpy(self.ids[rows].astype(np.int64)),
            starts=torch.from_numpy(item.astype(np.int64)),
            epoch=epoch,
            index=index,
            next_position=next_position,
        )
