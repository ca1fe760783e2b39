"""Token embeddings and positional encodings (Vaswani et al., 2017, Sections 3.4 and 3.5).

Shape legend: B batch, T sequence length, D d_model, V vocabulary.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def sinusoidal_encoding(n_positions: int, d_model: int, dtype=torch.float32) -> torch.Tensor:
    """The lecture's sinusoid (paper Section 3.5), a (n_positions, D) tensor.

    p_t[2k] = sin(ω_k t), p_t[2k+1] = cos(ω_k t), with ω_k = 1 / 10000^(2k/d) for
    k = 0 .. d/2 - 1. For an odd d the last (sin) column has no cos partner.
    Computed in float64 and then cast, so every dtype gets correctly rounded values.
    """
    t = torch.arange(n_positions, dtype=torch.float64).unsqueeze(1)  # (T, 1)
    two_k = torch.arange(0, d_model, 2, dtype=torch.float64)  # (ceil(D/2),)
    omega = torch.exp(-math.log(10000.0) * two_k / d_model)  # ω_k = 10000^(-2k/d)
    angles = t * omega  # (T, ceil(D/2))
    pe = torch.zeros(n_positions, d_model, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(angles)
    pe[:, 1::2] = torch.cos(angles[:, : d_model // 2])
    return pe.to(dtype)


class PositionalEncoding(nn.Module):
    """Position vectors p_0 .. p_{max_len-1}: the fixed sinusoid or a learned table
    (Table 3 row E). `forward(length, offset)` returns (length, D) for positions
    offset .. offset+length-1; a position >= max_len raises ValueError naming max_len.
    """

    def __init__(self, kind: str, max_len: int, d_model: int) -> None:
        super().__init__()
        self.kind, self.max_len = kind, max_len
        if kind == "learned":
            self.table = nn.Parameter(torch.empty(max_len, d_model))
            nn.init.normal_(self.table, std=d_model**-0.5)
        elif kind == "sinusoidal":
            # Not persistent: it is a closed form, rebuilt on load, never a trained weight.
            self.register_buffer("table", sinusoidal_encoding(max_len, d_model), persistent=False)
        else:
            raise ValueError(f"positional must be 'sinusoidal' or 'learned', got {kind!r}")

    def forward(self, length: int, offset: int = 0) -> torch.Tensor:
        end = offset + length
        if end > self.max_len:
            raise ValueError(
                f"sequence positions up to {end - 1} exceed max_len={self.max_len} "
                "(raise model.max_len in the config)"
            )
        return self.table[offset:end]  # (T, D)


class TokenEmbedding(nn.Module):
    """Token vectors scaled by √d_model (Section 3.4): ids (B, T) int64 -> (B, T, D);
    `scale=False` leaves them unscaled (GPT-2, BERT).

    Initialised N(0, 1/D), so the scaled vectors have unit variance like the sinusoid's
    entries; the same weight (V, D) may be shared with the other side and the output layer.
    """

    def __init__(
        self, vocab_size: int, d_model: int, padding_idx: int | None = None, scale: bool = True
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(vocab_size, d_model))
        self.padding_idx = padding_idx
        self.scale = math.sqrt(d_model) if scale else None
        nn.init.normal_(self.weight, std=d_model**-0.5)
        if padding_idx is not None:
            with torch.no_grad():
                self.weight[padding_idx].zero_()

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # padding_idx only stops the pad row's gradient (as nn.Embedding does).
        x = nn.functional.embedding(ids, self.weight, self.padding_idx)  # (B, T, D)
        return x if self.scale is None else x * self.scale
