"""Masked-language-model scores over a masked split (BERT, Devlin et al. 2019):

    masked-token accuracy = argmax correct / chosen positions (all chosen count: [MASK],
                            random and unchanged alike, as Hugging Face's peer scores them)
    perplexity            = exp(mean cross-entropy over the chosen positions)
    baseline accuracy     = chosen positions whose label is the training text's most frequent
                            non-special token (that token predicted everywhere)

`read_masked_val` reads the `masked_val.json` that `scripts/hf_bert_peer.py` writes (a fixed
masking of Multi30k val with the vocabulary's fingerprint), so that both sides score the same
masks; its vocabulary must be ours (sha256 of the tokens joined by newlines, in id order).

Shape legend: B sentences, T length, N chosen positions, V vocabulary.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from transformer.training.mlm import IGNORE

MASKED_VAL_FORMAT = "hf_bert_peer masked validation"  # scripts/hf_bert_peer.py's file
MASKED_VAL_VERSION = 1


@dataclass(frozen=True)
class MLMScores:
    """Sums over the chosen positions of a masked split."""

    nll: float  # summed cross-entropy (nats)
    correct: int  # argmax = label
    masked: int  # chosen positions
    baseline_correct: int = 0  # labels equal to the most frequent training token

    @property
    def accuracy(self) -> float:
        return self.correct / max(self.masked, 1)

    @property
    def nats_per_token(self) -> float:
        return self.nll / max(self.masked, 1)

    @property
    def perplexity(self) -> float:
        return math.exp(min(self.nats_per_token, 700.0))

    @property
    def baseline_accuracy(self) -> float:
        return self.baseline_correct / max(self.masked, 1)

    def to_dict(self) -> dict[str, float | int]:
        return {
            "val_accuracy": self.accuracy,
            "val_perplexity": self.perplexity,
            "val_nats_per_token": self.nats_per_token,
            "val_masked": self.masked,
            "baseline_accuracy": self.baseline_accuracy,
        }


@torch.inference_mode()
def mlm_scores(
    model,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    baseline_token: int | None = None,
    device: torch.device | str = "cpu",
) -> MLMScores:
    """Scores of `model(inputs, select=chosen)` -> logits (N, V) (`transformer.models.BERT`)
    over (inputs (B, T), labels (B, T)) batches, in float32 and eval mode."""
    was_training = model.training
    model.eval()
    nll, correct, masked, base = 0.0, 0, 0, 0
    try:
        for inputs, labels in batches:
            inputs, labels = inputs.to(device), labels.to(device)
            chosen = labels != IGNORE  # (B, T)
            if not bool(chosen.any()):
                continue
            logits = model(inputs, select=chosen).float()  # (N, V)
            target = labels[chosen]  # (N,)
            nll += float(F.cross_entropy(logits, target, reduction="sum"))
            correct += int((logits.argmax(-1) == target).sum())
            masked += target.numel()
            if baseline_token is not None:
                base += int((target == baseline_token).sum())
    finally:
        model.train(was_training)
    return MLMScores(nll, correct, masked, base)


def vocab_sha256(tokens: Sequence[str]) -> str:
    """The vocabulary's fingerprint: sha256 of the tokens joined by newlines, in id order
    (`scripts/hf_bert_peer.py`'s `vocab_sha`)."""
    return hashlib.sha256("\n".join(tokens).encode("utf-8")).hexdigest()


def read_masked_val(path, tokenizer, max_len: int) -> tuple[list[list[int]], list[list[int]], dict]:
    """(inputs, labels, the other fields) of a peer's `masked_val.json`; ValueError (naming
    the file) for another format or vocabulary, other special ids, ragged rows or rows longer
    than `max_len`."""
    try:
        with open(path, encoding="utf-8") as f:
            payload = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: cannot read a masked validation set ({err})") from None
    if not isinstance(payload, dict) or payload.get("format") != MASKED_VAL_FORMAT:
        raise ValueError(f"{path}: not a masked validation set (format {MASKED_VAL_FORMAT!r})")
    if payload.get("version") != MASKED_VAL_VERSION:
        raise ValueError(f"{path}: version {payload.get('version')!r}; this reads version 1")
    if payload.get("vocab_sha256") != vocab_sha256(tokenizer.tokens):
        raise ValueError(
            f"{path}: masked with another vocabulary (vocab_sha256 differs from the run's "
            "tokenizer.json); give the peer --tokenizer RUN_DIR/tokenizer.json"
        )
    for name in ("pad_id", "mask_id", "cls_id", "sep_id"):
        if name in payload and payload[name] != getattr(tokenizer, name):
            raise ValueError(f"{path}: {name} {payload[name]} is not the tokenizer's")
    inputs, labels = payload.pop("input_ids", None), payload.pop("labels", None)
    if not isinstance(inputs, list) or not isinstance(labels, list) or not inputs:
        raise ValueError(f"{path}: input_ids and labels must be non-empty lists of rows")
    if len(inputs) != len(labels) or any(len(a) != len(b) for a, b in zip(inputs, labels)):
        raise ValueError(f"{path}: input_ids and labels differ in shape")
    longest = max(map(len, inputs))
    if longest > max_len or min(map(len, inputs)) < 1:
        raise ValueError(f"{path}: rows of 1..{max_len} tokens needed, found {longest}")
    return inputs, labels, payload
