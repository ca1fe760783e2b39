"""Language-model perplexity over a whole token stream (every token but the first scored once).

The stream ids (N,) is cut into windows of C + 1 tokens starting every C tokens (C the
context, data.block_size): window [s, s + C] scores the targets s + 1 .. s + C, each given
the tokens of its window before it (the context a GPT trained on blocks of C sees); the last
window is shorter. So the N - 1 targets are each scored exactly once, as nanoGPT's validation
blocks score theirs, but over the whole split rather than a random sample of blocks.

    nats/token = NLL / (N - 1),  perplexity = exp(nats/token),
    bits/character = NLL / ln 2 / (characters of the scored text)   (comparable across tokenizers)

Shape legend: B windows per batch, C context, V vocabulary.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from transformer.evaluation.perplexity import Perplexity


@dataclass(frozen=True)
class LMScores:
    """NLL of a stream: `nll` nats over `tokens` targets covering `chars` characters."""

    nll: float
    tokens: int
    chars: int

    @property
    def nats_per_token(self) -> float:
        return self.nll / self.tokens

    @property
    def perplexity(self) -> float:
        return math.exp(self.nats_per_token)

    @property
    def bits_per_char(self) -> float:
        return self.nll / math.log(2) / self.chars

    def to_dict(self) -> dict[str, float | int]:
        return {
            "val_nats_per_token": self.nats_per_token,
            "val_perplexity": self.perplexity,
            "val_bits_per_char": self.bits_per_char,
            "val_tokens": self.tokens,
            "val_chars": self.chars,
            "val_nll": self.nll,
        }


def window_starts(n_tokens: int, context: int) -> list[int]:
    """First position of each scoring window of a stream of `n_tokens` (see the module)."""
    if context < 1 or n_tokens < 2:
        raise ValueError(f"need context >= 1 and >= 2 tokens, got {context} and {n_tokens}")
    return list(range(0, n_tokens - 1, context))


@torch.inference_mode()
def stream_nll(
    model: Callable[[Tensor], Tensor],
    ids: np.ndarray | Tensor,
    context: int,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
) -> Perplexity:
    """Summed NLL (nats) of ids[1:] under model(idx (B, T)) -> logits (B, T, V), in eval mode."""
    ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
    n = len(ids)
    starts = window_starts(n, context)
    full = [s for s in starts if s + context + 1 <= n]
    total = Perplexity(0.0, 0)
    for i in range(0, len(full), batch_size):
        rows = torch.stack([ids[s : s + context + 1] for s in full[i : i + batch_size]])
        total = total + _block_nll(model, rows.to(device))  # (B, C + 1)
    if len(full) < len(starts):  # the shorter last window
        total = total + _block_nll(model, ids[starts[-1] :].unsqueeze(0).to(device))
    return total


def _block_nll(model: Callable[[Tensor], Tensor], block: Tensor) -> Perplexity:
    logits = model(block[:, :-1]).float()  # (B, T, V)
    nll = F.cross_entropy(logits.flatten(0, 1), block[:, 1:].flatten(), reduction="sum")
    return Perplexity(float(nll), block[:, 1:].numel())


def lm_scores(
    model: Callable[[Tensor], Tensor],
    ids: np.ndarray,
    text_chars: int,
    first_token_chars: int,
    context: int,
    batch_size: int = 32,
    device: torch.device | str = "cpu",
) -> LMScores:
    """`stream_nll` with the characters of the scored text: the text's `text_chars` less the
    `first_token_chars` of the first (unscored) token."""
    ppl = stream_nll(model, ids, context, batch_size, device)
    return LMScores(ppl.nll, ppl.tokens, text_chars - first_token_chars)
