"""The masked-language-model data of `data.task = "mlm"` (BERT, Devlin et al. 2019):

    data, model_cfg = mlm_data(run, run_dir)    # via training.data.build_data
    data.train  # MLMBatcher: seeded token-budget batches, masked afresh for every batch
    data.val    # MLMBatcher: the validation sentences in order, one fixed masking

Each line is one sentence and one sequence, [CLS] pieces [SEP], cut to `model.max_len`
tokens (empty lines are skipped). The training lines are `data.text_file`'s or Multi30k
train's side `data.src_lang`; the validation lines `data.val_file`'s, the last 10% of
`text_file`'s lines, or Multi30k val. RUN_DIR/tokenizer.json (a `WordPiece`) is made on the
first run: `data.tokenizer` copied in (our WordPiece JSON, or read from a BERT vocab.txt),
else learnt on the training lines (`data.vocab_size`, `data.wordpiece_criterion`,
`data.lowercase`). Both splits are encoded once and cached under RUN_DIR/cache.

Masking (`training.mlm.mask_tokens`: 15% of the non-special tokens, 80/10/10): a training
batch is masked with a generator seeded from (train.seed, epoch, batch index), so the masks
are new every epoch (dynamic masking, as RoBERTa and Hugging Face's collator) and follow from
the data position alone: exact resume needs no extra state. The validation split is masked
once, all sentences together, from `VAL_SEED` (`mask_split`), so every validation and
`transformer evaluate` score the same masks.

Batches (`MLMBatch`): inputs (B, T) and labels (B, T) int64, labels `IGNORE` (-100) except at
the chosen positions; padding is [PAD] in the inputs. Shape legend: B sentences, T length.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from transformer import durable
from transformer.config import ModelConfig
from transformer.data import DataError, EpochPlan, multi30k_files, read_lines
from transformer.data.cache import cached_arrays, digest
from transformer.tokenizers import TokenizerError, WordPiece
from transformer.training.config import DataConfig, RunConfig
from transformer.training.mlm import IGNORE, mask_tokens

VAL_FRACTION = 0.1  # of a text_file's lines, when no val_file is given
VAL_SEED = 1234  # the fixed masking of the validation split
MASK_PROB = 0.15
_TAG = 0x4D4C4D  # "MLM": keeps the masking seeds apart from the batch plans' (seed, epoch)


@dataclass(frozen=True)
class Masking:
    """What `mask_tokens` needs of the vocabulary."""

    vocab_size: int
    mask_id: int
    special_ids: Collection[int]
    mask_prob: float = MASK_PROB

    @classmethod
    def of(cls, tok: WordPiece) -> Masking:
        return cls(tok.vocab_size, tok.mask_id, tuple(sorted(tok.special_ids)))

    def apply(self, ids: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, labels) of ids (B, T), drawn from a generator seeded with `seed`."""
        g = torch.Generator().manual_seed(seed)
        return mask_tokens(ids, self.vocab_size, self.mask_id, self.special_ids,
                           self.mask_prob, generator=g)  # fmt: skip


@dataclass(frozen=True)
class MLMBatch:
    """One batch of masked sentences (see the module docstring)."""

    inputs: torch.Tensor  # (B, T) int64, [PAD]-padded
    labels: torch.Tensor  # (B, T) int64, IGNORE except at the chosen positions
    indices: torch.Tensor  # (B,) int64: sentence indices
    epoch: int
    index: int
    next_position: tuple[int, int]
    n_tokens: int  # real (non-pad) positions, [CLS] and [SEP] included
    n_masked: int  # chosen positions (the loss's count)

    def to(self, device: torch.device | str, non_blocking: bool = False) -> MLMBatch:
        tensors = {f.name: getattr(self, f.name) for f in fields(self)}
        moved = {k: v.to(device, non_blocking=non_blocking) for k, v in tensors.items()
                 if torch.is_tensor(v)}  # fmt: skip
        return replace(self, **moved)


class MLMBatcher(EpochPlan):
    """Length-bucketed batches of sentences whose padded (B, T) holds at most `max_tokens`
    positions: each epoch the sentences are shuffled from (seed, epoch), sorted by length (a
    stable sort: ties keep the shuffled order), cut greedily, and the batches shuffled.

    `ids`/`offsets`: the ragged sentences (what the model reads: already masked when
    `labels` is given). Either `masking` (each batch masked from (seed, epoch, index)) or
    `labels` (a fixed masking, ragged like `ids`). shuffle=False: one sorted pass in order.
    """

    def __init__(
        self,
        ids: np.ndarray,
        offsets: np.ndarray,
        max_tokens: int,
        *,
        masking: Masking | None = None,
        labels: np.ndarray | None = None,
        seed: int = 0,
        shuffle: bool = True,
        pad_id: int = 0,
    ) -> None:
        if (masking is None) == (labels is None):
            raise ValueError("give either masking or labels")
        if not isinstance(max_tokens, int) or max_tokens < 1:
            raise DataError(f"max_tokens must be a positive integer, got {max_tokens!r}")
        self.lengths = np.diff(offsets)
        if len(self.lengths) == 0:
            raise DataError("cannot batch an empty set of sentences")
        if int(self.lengths.max()) > max_tokens:
            raise DataError(
                f"a sentence of {int(self.lengths.max())} tokens exceeds data.max_tokens = "
                f"{max_tokens}; raise max_tokens or lower model.max_len"
            )
        self.ids, self.offsets, self.labels = ids, offsets, labels
        self.max_tokens, self.masking = max_tokens, masking
        self.seed, self.shuffle, self.pad_id = seed, shuffle, pad_id

    def __len__(self) -> int:
        return self.num_batches(0)

    @property
    def n_sentences(self) -> int:
        return len(self.lengths)

    def _plan(self, rng: np.random.Generator) -> list[np.ndarray]:
        n = self.n_sentences
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        order = order[np.argsort(self.lengths[order], kind="stable")]
        batches, begin = [], 0
        for i, length in enumerate(self.lengths[order].tolist()):  # ascending: i's is the max
            if (i - begin + 1) * length > self.max_tokens:
                batches.append(order[begin:i])
                begin = i
        batches.append(order[begin:])
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def mask_seed(self, epoch: int, index: int) -> int:
        """The generator seed of batch `index` of `epoch`."""
        entropy = [self.seed, epoch, index, _TAG]
        return int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> 1)

    def _rows(self, flat: np.ndarray, item: np.ndarray, fill: int) -> torch.Tensor:
        lengths = self.lengths[item]
        out = np.full((len(item), int(lengths.max())), fill, dtype=np.int64)  # (B, T)
        for r, i in enumerate(item.tolist()):
            out[r, : lengths[r]] = flat[self.offsets[i] : self.offsets[i + 1]]
        return torch.from_numpy(out)

    def _make(self, item: np.ndarray, epoch: int, index: int, next_position: tuple[int, int]):
        ids = self._rows(self.ids, item, self.pad_id)  # (B, T)
        if self.masking is not None:
            inputs, labels = self.masking.apply(ids, self.mask_seed(epoch, index))
        else:
            inputs, labels = ids, self._rows(self.labels, item, IGNORE)
        return MLMBatch(
            inputs=inputs,
            labels=labels,
            indices=torch.from_numpy(item.astype(np.int64)),
            epoch=epoch,
            index=index,
            next_position=next_position,
            n_tokens=int(self.lengths[item].sum()),
            n_masked=int((labels != IGNORE).sum()),
        )

    def padding(self, epoch: int = 0) -> float:
        """Pad positions / all positions of the epoch's batches."""
        real = total = 0
        for item in self.plan(epoch):
            lengths = self.lengths[item]
            real, total = real + int(lengths.sum()), total + len(item) * int(lengths.max())
        return 1.0 - real / total


@dataclass
class MLMData:
    """What the trainer reads (`train`, `val`, `bleu_probe`, `summary`) and, for
    `transformer evaluate`, the training sentences and the unmasked validation ones."""

    train: MLMBatcher
    val: MLMBatcher | None
    tokenizer_path: Path
    tokenizer: WordPiece
    val_ids: tuple[np.ndarray, np.ndarray]  # ragged validation sentences, unmasked
    skipped: int = 0  # empty lines
    cut: int = 0  # sentences cut to model.max_len
    bleu_probe: None = None

    def summary(self) -> dict[str, float | int]:
        return {
            "train_sentences": self.train.n_sentences,
            "train_tokens": int(self.train.lengths.sum()),
            "val_sentences": self.val.n_sentences if self.val else 0,
            "val_masked": int((self.val.labels != IGNORE).sum()) if self.val else 0,
            "skipped_empty": self.skipped,
            "cut_to_max_len": self.cut,
            "vocab_size": self.tokenizer.vocab_size,
            "batches_per_epoch": self.train.num_batches(0),
            "padding": self.train.padding(0),
        }


def mask_split(
    ids: np.ndarray, offsets: np.ndarray, masking: Masking, seed: int = VAL_SEED, pad_id: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, labels), ragged like `ids`: every sentence masked in one (N, T_max) draw of
    `mask_tokens` from a generator seeded with `seed` (a fixed masking of a whole split)."""
    lengths = np.diff(offsets)
    width = int(lengths.max())
    padded = np.full((len(lengths), width), pad_id, dtype=np.int64)
    real = np.arange(width)[None, :] < lengths[:, None]  # (N, T_max), row-major = ragged order
    padded[real] = ids
    inputs, labels = masking.apply(torch.from_numpy(padded), seed)
    real_t = torch.from_numpy(real)
    return inputs[real_t].numpy().astype(np.int32), labels[real_t].numpy().astype(np.int32)


def most_frequent_token(ids: np.ndarray, special_ids: Collection[int]) -> int:
    """The most frequent non-special id of `ids` (the smallest among equals)."""
    counts = np.bincount(np.asarray(ids, dtype=np.int64))
    counts[[i for i in special_ids if i < len(counts)]] = 0
    if not counts.any():
        raise DataError("no non-special token in the training sentences")
    return int(np.argmax(counts))  # the first maximum: the smallest id


# ---- the text and the tokenizer ----------------------------------------------------------
def mlm_files(data: DataConfig, progress: bool = True) -> tuple[Path, Path | None]:
    """(training text, validation text or None = the last 10% of the training lines)."""
    if data.text_file:
        paths = [Path(data.text_file), Path(data.val_file) if data.val_file else None]
        for name, path in zip(("text_file", "val_file"), paths):
            if path is not None and not path.is_file():
                raise DataError(f"data.{name}: {path}: file not found")
        return paths[0], paths[1]

    lang, other = data.src_lang, "de" if data.src_lang != "de" else "en"
    dir_ = data.data_dir or None
    train = multi30k_files("train", lang, other, data_dir=dir_, progress=progress)[0]
    return train, multi30k_files("val", lang, other, data_dir=dir_, progress=progress)[0]


def split_lines(data: DataConfig, progress: bool = True) -> tuple[list[str], list[str]]:
    """(training lines, validation lines), before tokenization (empty lines kept)."""
    train_path, val_path = mlm_files(data, progress)
    lines = read_lines(train_path)
    if val_path is not None:
        return lines, read_lines(val_path)
    cut = round(len(lines) * (1.0 - VAL_FRACTION))
    return lines[:cut], lines[cut:]


def make_tokenizer(data: DataConfig, train_lines: Sequence[str], tok_path: Path, progress: bool):
    """Write `tok_path`: `data.tokenizer` (WordPiece JSON or BERT vocab.txt), else learnt."""
    if data.tokenizer:
        source = Path(data.tokenizer)
        if not source.is_file():
            raise DataError(f"data.tokenizer: {source}: file not found")
        if source.suffix == ".txt":
            WordPiece.from_vocab_file(source, lowercase=data.lowercase).save(tok_path)
        else:
            WordPiece.load(source)  # checks it is a WordPiece before copying
            durable.copy_file(source, tok_path)
        return
    tok = WordPiece.train(train_lines, data.vocab_size, lowercase=data.lowercase,
                          criterion=data.wordpiece_criterion, progress=progress)  # fmt: skip
    tok.save(tok_path)


def encode_sentences(
    lines: Sequence[str], tok: WordPiece, max_len: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(ids, offsets, empty lines skipped, sentences cut): [CLS] pieces [SEP] per non-empty
    line, at most `max_len` tokens."""
    rows, skipped, cut = [], 0, 0
    for line in lines:
        pieces = tok.encode(line, allow_special=False)
        if not pieces:
            skipped += 1
            continue
        cut += len(pieces) > max_len - 2
        rows.append([tok.cls_id, *pieces[: max_len - 2], tok.sep_id])
    if not rows:
        raise DataError("no non-empty sentence to train or validate on")
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    ids = np.fromiter((t for r in rows for t in r), dtype=np.int32, count=int(offsets[-1]))
    return ids, offsets, skipped, cut


def _cached_split(run: RunConfig, run_dir: Path, tok_path: Path, tok: WordPiece, lines, which):
    d, max_len = run.data, run.model.max_len
    train_path, val_path = mlm_files(d, progress=False)
    files = [tok_path, train_path] + ([val_path] if val_path else [])
    key = digest(files, [f"mlm {which} {max_len} {VAL_FRACTION!r}".encode()])[:24]

    def build() -> dict[str, np.ndarray]:
        ids, offsets, skipped, cut = encode_sentences(lines(), tok, max_len)
        return {"ids": ids, "offsets": offsets, "counts": np.array([skipped, cut])}

    arrays, _ = cached_arrays(run_dir / "cache" / f"mlm-{key}-{which}.npz", build,
                              lambda a: {"ids", "offsets", "counts"} <= set(a))  # fmt: skip
    return arrays["ids"], arrays["offsets"], int(arrays["counts"][0]), int(arrays["counts"][1])


def mlm_data(run: RunConfig, run_dir: Path, progress: bool = True) -> tuple[MLMData, ModelConfig]:
    """(MLMData, the model config with the tokenizer's vocabulary size)."""
    d, run_dir = run.data, Path(run_dir)
    if run.model.max_len < 3:
        raise DataError(f"model.max_len ({run.model.max_len}) must be >= 3 ([CLS] x [SEP])")
    parts: list[tuple[list[str], list[str]]] = []  # read lazily: cache hits read no text

    def lines(which: int) -> list[str]:
        if not parts:
            parts.append(split_lines(d, progress))
        return parts[0][which]

    tok_path = run_dir / "tokenizer.json"
    if not tok_path.exists():
        make_tokenizer(d, lines(0), tok_path, progress)
    try:
        tok = WordPiece.load(tok_path)
    except TokenizerError as err:
        raise DataError(f"{err} (a masked-LM run needs a WordPiece tokenizer)") from None
    train_ids, train_off, skipped, cut = _cached_split(run, run_dir, tok_path, tok,
                                                       lambda: lines(0), "train")  # fmt: skip
    val_ids, val_off, *_ = _cached_split(run, run_dir, tok_path, tok, lambda: lines(1), "val")
    masking = Masking.of(tok)
    pad = tok.pad_id
    train = MLMBatcher(train_ids, train_off, d.max_tokens, masking=masking,
                       seed=run.train.seed, pad_id=pad)  # fmt: skip
    val_inputs, val_labels = mask_split(val_ids, val_off, masking, VAL_SEED, pad)
    val = MLMBatcher(val_inputs, val_off, d.max_tokens, labels=val_labels, shuffle=False,
                     pad_id=pad)  # fmt: skip
    vocab = tok.vocab_size
    model = run.model.replace(src_vocab_size=vocab, tgt_vocab_size=vocab, pad_id=pad)
    data = MLMData(train, val, tok_path, tok, (val_ids, val_off), skipped, cut)
    return data, model
