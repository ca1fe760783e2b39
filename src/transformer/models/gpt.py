"""A decoder-only Transformer language model, the GPT of the lecture (Radford et al., 2018).

    logits = GPT(cfg)(idx)          # idx (B, T) int64 -> (B, T, V), V = cfg.tgt_vocab_size

Token embedding (×√d_model unless `cfg.scale_embedding` is False, as in GPT-2) plus positions
(`cfg.positional`), dropout, `cfg.n_decoder_layers` blocks of causal
self-attention + FFN (the Transformer decoder layer without cross-attention), a final
LayerNorm for pre-norm, and a linear layer over the vocabulary (tied to the embedding when
`cfg.tie_output`). No padding mask: every id is a token (pad_id is not special here).
Initialisation as in `transformer.models.transformer`.

Shape legend: B batch, T length, L cached positions, D d_model, H heads, V vocabulary.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from transformer.config import ModelConfig
from transformer.layers import DecoderLayer, PositionalEncoding, TokenEmbedding
from transformer.layers.mha import init_linear_
from transformer.models.cache import KVCache
from transformer.models.transformer import check_ids, init_normal_


class GPT(nn.Module):
    """Decoder-only LM. `forward(idx, cache=None, need_weights=False)`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = cfg = config
        d = cfg.d_model
        self.embed = TokenEmbedding(cfg.tgt_vocab_size, d, scale=cfg.scale_embedding)
        self.pos = PositionalEncoding(cfg.positional, cfg.max_len, d)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            DecoderLayer(cfg, cross=False) for _ in range(cfg.n_decoder_layers)
        )
        self.norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps) if cfg.norm_first else None
        self.output_proj = None if cfg.tie_output else nn.Linear(d, cfg.tgt_vocab_size, bias=False)
        if self.output_proj is not None:
            init_linear_(self.output_proj)
        if cfg.init_std is not None:
            init_normal_(self, cfg.init_std)

    @property
    def output_weight(self) -> torch.Tensor:
        """The (V, D) matrix of the final linear layer (the embedding when tied)."""
        return self.embed.weight if self.output_proj is None else self.output_proj.weight

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The final linear layer: x (B, T, D) -> logits (B, T, V)."""
        return F.linear(x, self.output_weight)  # (B, T, D) @ (D, V)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for incremental decoding (`forward(idx, cache=...)`)."""
        return KVCache()

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None, need_weights: bool = False):
        """idx (B, T) int64 -> logits (B, T, V); with `need_weights`, (logits, [(B, H, T, L)]
        per layer). With a `KVCache`, idx holds positions cache.length .. cache.length+T-1."""
        check_ids("idx", idx, self.config.tgt_vocab_size)
        offset = 0 if cache is None else cache.length
        x = self.dropout(self.embed(idx) + self.pos(idx.shape[1], offset))  # (B, T, D)
        weights = []
        for i, layer in enumerate(self.layers):
            layer_cache = None if cache is None else cache.layer(i)
            x, w, _ = layer(x, cache=layer_cache, need_weights=need_weights)
            weights.append(w)
        if cache is not None:
            cache.advance(idx.shape[1])
        if self.norm is not None:
            x = self.norm(x)
        logits = self.logits(x)  # (B, T, V)
        return (logits, weights) if need_weights else logits
