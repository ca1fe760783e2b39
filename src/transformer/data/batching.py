"""Batches of a tokenized parallel corpus: by token budget and length-bucketed, or fixed-size.

`TokenBatcher` follows the paper (Section 5.1: "Sentence pairs were batched together by
approximate sequence length. Each training batch contained a set of sentence pairs containing
approximately 25000 source tokens and 25000 target tokens"): each epoch the corpus is
shuffled with `seed` and `epoch`, cut into pools of `pool_size` pairs, each pool is sorted by
length and cut greedily into batches whose *padded* source tensor (B x S) and *padded* target
tensor (B x T) each hold at most `max_tokens` positions, and the batch order is shuffled.
`FixedSizeBatcher` is the plain baseline: shuffled fixed-size batches, no sorting.

Tensors of a `Batch` (B batch, S source length, T target length = longest target + 1):
- src (B, S) int64: the source ids, no <s> or </s>, right-padded with pad_id;
- tgt_in (B, T) int64: <s> y_1 ... y_n, right-padded (the decoder input);
- tgt_out (B, T) int64: y_1 ... y_n </s>, right-padded (the labels; pad = ignored).

Exact resume: a data position is (epoch, batch index); the plan of an epoch depends only on
(seed, epoch), so `iterate(position)` continues exactly where a saved `next_position` left off.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from dataclasses import dataclass, fields, replace

import numpy as np
import torch

from transformer.data.cache import EncodedParallel, take_ragged
from transformer.data.corpus import DataError
from transformer.tokenizers.specials import BOS_ID, EOS_ID, PAD_ID


@dataclass(frozen=True)
class Batch:
    """One training batch (see the module docstring for the tensors' layout)."""

    src: torch.Tensor  # (B, S) int64
    tgt_in: torch.Tensor  # (B, T) int64
    tgt_out: torch.Tensor  # (B, T) int64
    indices: torch.Tensor  # (B,) int64: pair indices into the EncodedParallel
    epoch: int
    index: int  # batch index within the epoch
    next_position: tuple[int, int]  # (epoch, index) to resume from after this batch
    n_src_tokens: int  # real (non-pad) source tokens
    n_tgt_tokens: int  # real target tokens (non-pad positions of tgt_out: the loss's count)

    @property
    def size(self) -> int:
        return self.src.shape[0]

    @property
    def padding_fraction(self) -> float:
        """Pad positions / all positions, over src and tgt_out together."""
        total = self.src.numel() + self.tgt_out.numel()
        return 1.0 - (self.n_src_tokens + self.n_tgt_tokens) / total

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The batch with its tensors on `device`."""
        return self._map(lambda x: x.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """The batch in page-locked memory (for asynchronous host-to-GPU copies)."""
        return self._map(torch.Tensor.pin_memory)

    def _map(self, fn) -> Batch:
        tensors = {f.name: getattr(self, f.name) for f in fields(self)}
        return replace(self, **{k: fn(v) for k, v in tensors.items() if torch.is_tensor(v)})


@dataclass(frozen=True)
class PaddingStats:
    """Padding of one epoch's batches: fractions of pad positions in the padded tensors."""

    n_batches: int
    n_pairs: int
    src_fraction: float
    tgt_fraction: float
    fraction: float  # over source and target positions together

    @property
    def mean_batch_size(self) -> float:
        return self.n_pairs / self.n_batches


class EpochPlan:
    """Epochs of batches planned from a seeded RNG, and iteration from a data position.

    Subclasses define `_plan(rng)` (the batches of one epoch, each an index array) and
    `_make(item, epoch, index, next_position)` (the batch object of one plan item).
    """

    seed: int = 0
    _cached: tuple[int, list[np.ndarray]] | None = None

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        raise NotImplementedError

    def _make(self, item: np.ndarray, epoch: int, index: int, next_position: tuple[int, int]):
        raise NotImplementedError

    def plan(self, epoch: int) -> list[np.ndarray]:
        """The index array of each batch of `epoch`, deterministic given (seed, epoch)."""
        epoch = _index(epoch, "epoch")
        if self._cached is None or self._cached[0] != epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._cached = (epoch, self._plan(rng))
        return self._cached[1]

    def num_batches(self, epoch: int = 0) -> int:
        return len(self.plan(epoch))

    def epoch(self, epoch: int, start: int = 0) -> Iterator:
        """The batches of `epoch` from batch index `start` on."""
        epoch, plan = _index(epoch, "epoch"), self.plan(epoch)
        if _index(start, "batch index") > len(plan):
            raise DataError(f"batch index {start!r} out of range 0..{len(plan)} (epoch {epoch})")
        start = int(start)
        for i in range(start, len(plan)):
            after = (epoch, i + 1) if i + 1 < len(plan) else (epoch + 1, 0)
            yield self._make(plan[i], epoch, i, after)

    def iterate(self, position: tuple[int, int] = (0, 0)) -> Iterator:
        """Batches forever (epoch after epoch) from the data position (epoch, batch index);
        save a batch's `next_position` to resume exactly after it."""
        epoch, start = position
        while True:
            yield from self.epoch(epoch, start)
            epoch, start = epoch + 1, 0

    def __iter__(self) -> Iterator:
        """One pass over the data (epoch 0), e.g. for validation."""
        return self.epoch(0)

    def __len__(self) -> int:
        return self.num_batches(0)


def _index(value, name: str) -> int:
    """`value` as an int >= 0 (Python or NumPy integer, e.g. from a checkpoint)."""
    try:
        value = operator.index(value)
    except TypeError:
        raise DataError(f"{name} must be an integer >= 0, got {value!r}") from None
    if value < 0:
        raise DataError(f"{name} must be an integer >= 0, got {value!r}")
    return value


class Batcher(EpochPlan):
    """Batches of a parallel corpus: collation and padding statistics.

    Subclasses define `_plan(rng)`: the list of pair-index arrays of one epoch.
    """

    def __init__(
        self,
        data: EncodedParallel,
        *,
        seed: int = 0,
        shuffle: bool = True,
        pad_id: int = PAD_ID,
        bos_id: int = BOS_ID,
        eos_id: int = EOS_ID,
    ) -> None:
        if len(data) == 0:
            raise DataError("cannot batch an empty corpus")
        self.data, self.seed, self.shuffle = data, seed, shuffle
        self.pad_id, self.bos_id, self.eos_id = pad_id, bos_id, eos_id
        self.src_lengths = data.src_lengths
        self.tgt_lengths = data.tgt_lengths + 1  # with <s> (tgt_in) or </s> (tgt_out)

    def _make(self, item: np.ndarray, epoch: int, index: int, next_position: tuple[int, int]):
        return self.collate(item, epoch=epoch, index=index, next_position=next_position)

    def padding(self, epoch: int = 0) -> PaddingStats:
        """Padding fractions of the epoch's batches (computed without building tensors)."""
        src_real = src_all = tgt_real = tgt_all = 0
        for idx in self.plan(epoch):
            s, t = self.src_lengths[idx], self.tgt_lengths[idx]
            src_real, src_all = src_real + s.sum(), src_all + len(idx) * s.max()
            tgt_real, tgt_all = tgt_real + t.sum(), tgt_all + len(idx) * t.max()
        return PaddingStats(
            n_batches=self.num_batches(epoch),
            n_pairs=sum(len(idx) for idx in self.plan(epoch)),
            src_fraction=float(1 - src_real / src_all),
            tgt_fraction=float(1 - tgt_real / tgt_all),
            fraction=float(1 - (src_real + tgt_real) / (src_all + tgt_all)),
        )

    def collate(
        self, indices: np.ndarray, *, epoch: int = 0, index: int = 0,
        next_position: tuple[int, int] = (0, 0),
    ) -> Batch:  # fmt: skip
        """The padded tensors of the pairs `indices` (see the module docstring)."""
        indices = np.asarray(indices, dtype=np.int64)
        src_ids, _ = take_ragged(self.data.src_ids, self.data.src_offsets, indices)
        tgt_ids, _ = take_ragged(self.data.tgt_ids, self.data.tgt_offsets, indices)
        src_len, tgt_len = self.src_lengths[indices], self.data.tgt_lengths[indices]
        src = _pad_rows(src_ids, src_len, int(src_len.max()), self.pad_id)  # (B, S)
        y = _pad_rows(tgt_ids, tgt_len, int(tgt_len.max()) + 1, self.pad_id)  # (B, T)
        tgt_out = y.copy()
        tgt_out[np.arange(len(indices)), tgt_len] = self.eos_id  # y </s>
        tgt_in = np.full_like(y, self.pad_id)
        tgt_in[:, 0] = self.bos_id
        tgt_in[:, 1:] = y[:, :-1]  # <s> y
        return Batch(
            src=torch.from_numpy(src),
            tgt_in=torch.from_numpy(tgt_in),
            tgt_out=torch.from_numpy(tgt_out),
            indices=torch.from_numpy(indices),
            epoch=epoch,
            index=index,
            next_position=next_position,
            n_src_tokens=int(src_len.sum()),
            n_tgt_tokens=int(tgt_len.sum()) + len(indices),
        )


def _pad_rows(flat: np.ndarray, lengths: np.ndarray, width: int, pad_id: int) -> np.ndarray:
    """(B, width) int64 rows of the ragged `flat` ids, right-padded with pad_id."""
    out = np.full((len(lengths), width), pad_id, dtype=np.int64)
    # Row-major order of the mask matches the order of the flat ids.
    out[np.arange(width)[None, :] < lengths[:, None]] = flat
    return out


class TokenBatcher(Batcher):
    """Length-bucketed batches under a token budget (the paper's Section 5.1).

    max_tokens: B*S <= max_tokens and B*T <= max_tokens for every batch (padded sizes);
    max_sentences: optional cap on B; pool_size: pairs sorted together (larger = less
    padding, less randomness). With shuffle=False the corpus is one sorted pool in order
    (validation). Raises `DataError` when a single pair exceeds the budget.
    """

    def __init__(
        self,
        data: EncodedParallel,
        max_tokens: int,
        *,
        max_sentences: int | None = None,
        pool_size: int = 100_000,
        **kwargs,
    ) -> None:
        super().__init__(data, **kwargs)
        for name, value in (("max_tokens", max_tokens), ("pool_size", pool_size)):
            if not isinstance(value, int) or value < 1:
                raise DataError(f"{name} must be a positive integer, got {value!r}")
        if max_sentences is not None and (not isinstance(max_sentences, int) or max_sentences < 1):
            raise DataError(f"max_sentences must be a positive integer, got {max_sentences!r}")
        self.max_tokens, self.max_sentences, self.pool_size = max_tokens, max_sentences, pool_size
        longest = np.maximum(self.src_lengths, self.tgt_lengths)
        worst = int(np.argmax(longest))
        if longest[worst] > max_tokens:
            raise DataError(
                f"pair {worst} (line {data.line_numbers[worst]}) needs {longest[worst]} "
                f"positions, over max_tokens={max_tokens}; raise max_tokens or drop long "
                "pairs (max_len / max_words)"
            )

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        n = len(self.data)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        batches: list[np.ndarray] = []
        for start in range(0, n, self.pool_size):
            pool = order[start : start + self.pool_size]
            # Sort by the longer side (what the budget limits), then source, then target
            # length; the stable sort keeps the shuffled order among equal lengths.
            s, t = self.src_lengths[pool], self.tgt_lengths[pool]
            pool = pool[np.lexsort((t, s, np.maximum(s, t)))]
            batches.extend(self._fill(pool))
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def _fill(self, pool: np.ndarray) -> list[np.ndarray]:
        """Cut a sorted pool greedily into batches within the budget."""
        cap = self.max_sentences or len(pool)
        src_len, tgt_len = self.src_lengths[pool].tolist(), self.tgt_lengths[pool].tolist()
        batches, begin, max_s, max_t = [], 0, 0, 0
        for i, (s, t) in enumerate(zip(src_len, tgt_len)):
            s, t = max(max_s, s), max(max_t, t)
            rows = i - begin + 1
            if rows > cap or rows * s > self.max_tokens or rows * t > self.max_tokens:
                batches.append(pool[begin:i])
                begin, s, t = i, src_len[i], tgt_len[i]
            max_s, max_t = s, t
        batches.append(pool[begin:])
        return batches


class FixedSizeBatcher(Batcher):
    """The plain baseline: shuffled batches of `batch_size` pairs (the last may be
    smaller), padded to their longest sentence, no length sorting."""

    def __init__(self, data: EncodedParallel, batch_size: int, **kwargs) -> None:
        super().__init__(data, **kwargs)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        n = len(self.data)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        return [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
