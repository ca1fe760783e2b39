"""BERT, the encoder-only Transformer of the lecture (Devlin et al. 2019), with its
masked-language-model head:

    logits = BERT(bert_config(src_vocab_size=8000))(ids)          # ids (B, T) -> (B, T, V)

Embeddings: token + learned position + segment (optional: `n_segments=0` has none), summed,
then LayerNorm and dropout (Section 3, Figure 2; no √d_model scale). Then
`cfg.n_encoder_layers` post-norm Transformer encoder layers (`transformer.layers.EncoderLayer`,
self-attention + GELU feed-forward, each sub-layer LayerNorm(x + Dropout(Sublayer(x)))).
The MLM head (Appendix A.1, as Google's and Hugging Face's code): dense D -> D, GELU,
LayerNorm, then a linear layer to the vocabulary whose weight is the token embedding (tied)
with its own bias. Padding is where ids equal `cfg.pad_id`: those keys are masked.

The vocabulary is `cfg.src_vocab_size`; `cfg.positional` is not read (BERT's positions are
always learned, `cfg.max_len` of them). Initialisation as BERT: every linear weight and
embedding N(0, init_std²) (0.02 when `cfg.init_std` is None), biases 0, the pad row 0.

Shape legend: B batch, T length, D d_model, H heads, V vocabulary.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from transformer.config import ConfigError, ModelConfig
from transformer.layers import EncoderLayer, PositionalEncoding

# BERT's architecture settings on top of ModelConfig's (bert-base: the defaults + 30522 vocab).
BERT_DEFAULTS: dict[str, Any] = {
    "d_model": 768,
    "n_heads": 12,
    "d_ff": 3072,
    "n_encoder_layers": 12,
    "n_decoder_layers": 0,
    "dropout": 0.1,
    "attention_dropout": 0.1,
    "activation": "gelu",
    "positional": "learned",
    "norm_first": False,
    "layer_norm_eps": 1e-12,
    "max_len": 512,
    "init_std": 0.02,
}


def bert_config(**overrides: Any) -> ModelConfig:
    """A `ModelConfig` with BERT-base's settings, fields overridden by keyword."""
    values = {**BERT_DEFAULTS, **overrides}
    values.setdefault("src_vocab_size", 30522)
    values.setdefault("tgt_vocab_size", values["src_vocab_size"])
    return ModelConfig.from_dict(values)


class BERT(nn.Module):
    """Encoder + MLM head. `forward(ids, segments=None, need_weights=False)` -> logits."""

    def __init__(self, config: ModelConfig, n_segments: int = 2) -> None:
        super().__init__()
        if isinstance(n_segments, bool) or not isinstance(n_segments, int) or n_segments < 0:
            raise ConfigError(f"n_segments must be an integer >= 0, got {n_segments!r}")
        if config.norm_first:
            raise ConfigError("BERT is post-norm: norm_first must be false")
        self.config = cfg = config
        self.n_segments = n_segments
        d, v, eps = cfg.d_model, cfg.src_vocab_size, cfg.layer_norm_eps
        self.embed = nn.Embedding(v, d, padding_idx=cfg.pad_id)
        self.pos = PositionalEncoding("learned", cfg.max_len, d)
        self.segment = nn.Embedding(n_segments, d) if n_segments else None
        self.embed_norm = nn.LayerNorm(d, eps=eps)
        self.dropout = nn.Dropout(cfg.dropout)
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.head_dense = nn.Linear(d, d)  # the MLM head's transform
        self.head_norm = nn.LayerNorm(d, eps=eps)
        self.head_bias = nn.Parameter(torch.zeros(v))  # output bias; weight = embed.weight
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT's initialisation (Hugging Face `BertPreTrainedModel._init_weights`)."""
        std = 0.02 if self.config.init_std is None else self.config.init_std
        with torch.no_grad():
            for module in self.modules():
                if isinstance(module, nn.Linear | nn.Embedding):
                    module.weight.normal_(0.0, std)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    module.bias.zero_()
                if isinstance(module, nn.LayerNorm):
                    module.weight.fill_(1.0)
                    module.bias.zero_()
            self.pos.table.normal_(0.0, std)
            self.embed.weight[self.config.pad_id].zero_()
            self.head_bias.zero_()

    def _check(self, ids: torch.Tensor, segments: torch.Tensor | None) -> None:
        if ids.dim() != 2 or ids.dtype != torch.int64:
            raise ValueError(f"ids must be (B, T) int64, got {tuple(ids.shape)} {ids.dtype}")
        _check_range("ids", ids, self.config.src_vocab_size)
        if segments is None:
            return
        if self.segment is None:
            raise ValueError("this model has no segment embeddings (n_segments=0)")
        if segments.shape != ids.shape:
            raise ValueError(f"segments {tuple(segments.shape)} must match ids {tuple(ids.shape)}")
        _check_range("segments", segments, self.n_segments)

    def encode(self, ids: torch.Tensor, segments=None, need_weights: bool = False):
        """ids (B, T) int64, segments (B, T) int64 or None (all 0) -> hidden (B, T, D);
        with `need_weights`, (hidden, [self-attention weights (B, H, T, T) per layer])."""
        self._check(ids, segments)
        x = self.embed(ids) + self.pos(ids.shape[1])  # (B, T, D) + (T, D)
        if self.segment is not None:
            x = x + (self.segment(segments) if segments is not None else self.segment.weight[0])
        x = self.dropout(self.embed_norm(x))
        mask = (ids == self.config.pad_id)[:, None, None, :]  # (B, 1, 1, T), True = padding
        weights = []
        for layer in self.layers:
            x, w = layer(x, mask, need_weights=need_weights)
            weights.append(w)
        return (x, weights) if need_weights else x

    def head(self, hidden: torch.Tensor) -> torch.Tensor:
        """The MLM head: hidden (..., D) -> logits (..., V). Apply it to the chosen positions
        only (`hidden[labels != IGNORE]`) to save the (D, V) product elsewhere."""
        h = self.head_norm(F.gelu(self.head_dense(hidden)))
        return F.linear(h, self.embed.weight, self.head_bias)  # (..., D) @ (D, V) + (V,)

    def forward(self, ids: torch.Tensor, segments=None, need_weights: bool = False, select=None):
        """ids (B, T) int64 -> logits (B, T, V); with `need_weights`, (logits, weights).
        `select` (B, T) bool: the logits (N, V) of the N selected positions only, in
        row-major order (the MLM loss's chosen positions; the head runs on those alone)."""
        if need_weights:
            hidden, weights = self.encode(ids, segments, need_weights=True)
            return self.head(hidden if select is None else hidden[select]), weights
        hidden = self.encode(ids, segments)  # (B, T, D)
        return self.head(hidden if select is None else hidden[select])


def _check_range(name: str, t: torch.Tensor, high: int) -> None:
    if t.numel() and (int(t.min()) < 0 or int(t.max()) >= high):
        raise ValueError(f"{name} must lie in [0, {high})")
