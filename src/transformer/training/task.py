"""What the trainer does differently for each kind of model: which model to build, how one
batch is scored, and how its tokens are counted.

- `Seq2SeqTask` (data.task "copy", "multi30k"): the encoder-decoder `Transformer`, batches of
  `transformer.data.Batch`; the decoder reads tgt_in and is scored on tgt_out, pad ignored.
- `LMTask` (data.task "lm"): the decoder-only `GPT`, batches of `transformer.data.LMBatch`;
  the model reads block[:, :-1] and is scored on block[:, 1:], every position a target.
- `MLMTask` (data.task "mlm"): the encoder-only `BERT` (data.n_segments segment rows),
  batches of `training.mlm_data.MLMBatch`; scored on the masked positions only.

`task_for(data)` picks one from the `DataConfig` (or its `task` string; an if, not a registry).

Shape legend: B batch, S source length, T target length / block size, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from transformer.config import ModelConfig
from transformer.data import Batch, LMBatch
from transformer.models import BERT, GPT, Transformer
from transformer.training.config import DataConfig
from transformer.training.loss import label_smoothed_cross_entropy
from transformer.training.mlm import IGNORE


class Seq2SeqTask:
    """Translation-style pairs (source, target) for the encoder-decoder Transformer."""

    name = "seq2seq"

    def build_model(self, cfg: ModelConfig) -> nn.Module:
        return Transformer(cfg)

    def loss(
        self,
        model: nn.Module,
        batch: Batch,
        cfg: ModelConfig,
        device,
        autocast: bool,
        label_smoothing: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed smoothed loss and NLL of one batch (decoder reads tgt_in, scored on tgt_out;
        `label_smoothing` is train.label_smoothing)."""
        batch = batch.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(batch.src, batch.tgt_in)  # (B, T, V)
        sums = label_smoothed_cross_entropy(logits, batch.tgt_out, label_smoothing, cfg.pad_id)
        return sums.loss, sums.nll

    def n_targets(self, batch: Batch) -> int:
        return batch.n_tgt_tokens

    def counts(self, batches: Sequence[Batch]) -> tuple[int, int, int]:
        """(target tokens, pad positions, all positions) of a step's batches."""
        n_tokens = sum(b.n_tgt_tokens for b in batches)
        n_pos = sum(b.src.numel() + b.tgt_out.numel() for b in batches)
        n_pad = n_pos - sum(b.n_src_tokens + b.n_tgt_tokens for b in batches)
        return n_tokens, n_pad, n_pos


class LMTask:
    """Next-token prediction on contiguous blocks for the decoder-only GPT (no padding)."""

    name = "lm"

    def build_model(self, cfg: ModelConfig) -> nn.Module:
        return GPT(cfg)

    def loss(
        self,
        model: nn.Module,
        batch: LMBatch,
        cfg: ModelConfig,
        device,
        autocast: bool,
        label_smoothing: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss and NLL over every position of the blocks (train.label_smoothing
        applies, over the whole vocabulary: nothing is a pad)."""
        block = batch.block.to(device, non_blocking=True)  # (B, T + 1)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(block[:, :-1])  # (B, T, V)
        sums = label_smoothed_cross_entropy(logits, block[:, 1:], label_smoothing, None)
        return sums.loss, sums.nll

    def n_targets(self, batch: LMBatch) -> int:
        return batch.targets.numel()

    def counts(self, batches: Sequence[LMBatch]) -> tuple[int, int, int]:
        n_tokens = sum(b.targets.numel() for b in batches)
        return n_tokens, 0, n_tokens


class MLMTask:
    """BERT's masked language model: the loss on the chosen (masked) positions only."""

    name = "mlm"

    def __init__(self, n_segments: int = 2) -> None:
        self.n_segments = n_segments

    def build_model(self, cfg: ModelConfig) -> nn.Module:
        return BERT(cfg, self.n_segments)

    def loss(
        self,
        model: nn.Module,
        batch,
        cfg: ModelConfig,
        device,
        autocast: bool,
        label_smoothing: float,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed loss and NLL over the N chosen positions (the head runs on those only;
        train.label_smoothing applies)."""
        batch = batch.to(device, non_blocking=True)
        chosen = batch.labels != IGNORE  # (B, T) bool
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            logits = model(batch.inputs, select=chosen)  # (N, V)
        sums = label_smoothed_cross_entropy(logits, batch.labels[chosen], label_smoothing)
        return sums.loss, sums.nll

    def n_targets(self, batch) -> int:
        return batch.n_masked

    def counts(self, batches: Sequence) -> tuple[int, int, int]:
        """(chosen positions, pad positions, all positions) of a step's batches."""
        n_pos = sum(b.inputs.numel() for b in batches)
        return sum(b.n_masked for b in batches), n_pos - sum(b.n_tokens for b in batches), n_pos


def task_for(data: DataConfig | str) -> Seq2SeqTask | LMTask | MLMTask:
    """The task object of a `DataConfig` (or of a `data.task` value: then an MLM task has
    BERT's 2 segment rows)."""
    task = data if isinstance(data, str) else data.task
    if task == "mlm":
        return MLMTask(2 if isinstance(data, str) else data.n_segments)
    return LMTask() if task == "lm" else Seq2SeqTask()
