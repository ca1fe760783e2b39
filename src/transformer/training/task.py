"""What the trainer does differently for each kind of model: which model to build, how one
batch is scored, and how its tokens are counted.

- `Seq2SeqTask` (data.task "copy", "multi30k"): the encoder-decoder `Transformer`, batches of
  `transformer.data.Batch`; the decoder reads tgt_in and is scored on tgt_out, pad ignored.
- `LMTask` (data.task "lm"): the decoder-only `GPT`, batches of `transformer.data.LMBatch`;
  the model reads block[:, :-1] and is scored on block[:, 1:], every position a target.

`task_for(task)` picks one from the `data.task` string (an if, not a registry).

Shape legend: B batch, S source length, T target length / block size, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from transformer.config import ModelConfig
from transformer.data import Batch, LMBatch
from transformer.models import GPT, Transformer
from transformer.training.loss import label_smoothed_cross_entropy


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


def task_for(task: str) -> Seq2SeqTask | LMTask:
    """The task object of a `data.task` value."""
    return LMTask() if task == "lm" else Seq2SeqTask()
