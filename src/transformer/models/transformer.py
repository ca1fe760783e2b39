"""The encoder-decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017).

    logits = Transformer(cfg)(src, tgt)            # src (B, S), tgt (B, T) int64 -> (B, T, V)

Embeddings ×√d_model plus positions, dropout on their sum (Section 5.4); N encoder and N
decoder layers (Section 3.1); a final linear layer over the target vocabulary whose weight is
the target embedding matrix when `tie_output` (Section 3.4). The softmax is left to the loss:
the model returns logits. Source padding (ids == cfg.pad_id) is hidden from every attention;
the decoder's self-attention is causal only (target padding sits after the real tokens, so the
causal mask already hides it from them; the loss ignores the padded positions themselves).

Initialisation (the paper does not give one): every linear weight is Xavier-uniform (a fused
QKV block by block) with zero biases, as in PyTorch's `nn.Transformer`; embeddings (and
learned positions) are N(0, 1/d_model) so that the ×√d_model token vectors have unit variance;
the padding row is zero. LayerNorms start at weight 1, bias 0. `config.init_std` replaces
both with N(0, init_std²) (`init_normal_`, the BERT / GPT-2 / MarianMT scheme).

Shape legend: B batch, S source length, T target length, D d_model, H heads, V vocabulary.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from transformer.config import ModelConfig
from transformer.layers import DecoderLayer, EncoderLayer, PositionalEncoding, TokenEmbedding
from transformer.layers.mha import init_linear_
from transformer.models.cache import KVCache


class AttentionWeights(NamedTuple):
    """Per-layer attention weights, returned only when asked (`need_weights=True`).

    encoder: (B, H, S, S) per encoder layer; decoder: (B, H, T, L) per decoder layer (L = all
    target positions seen, cached ones included); cross: (B, H, T, S) per decoder layer.
    """

    encoder: list[torch.Tensor]
    decoder: list[torch.Tensor]
    cross: list[torch.Tensor]


def check_ids(name: str, ids: torch.Tensor, vocab_size: int) -> None:
    """User-facing check of a (B, T) int64 id tensor (shape and dtype only: cheap)."""
    if not isinstance(ids, torch.Tensor) or ids.dim() != 2 or ids.dtype != torch.int64:
        what = (
            f"{ids.dtype} of shape {tuple(ids.shape)}"
            if isinstance(ids, torch.Tensor)
            else type(ids).__name__
        )
        raise ValueError(
            f"{name} must be a (batch, length) int64 tensor of token ids "
            f"(vocab {vocab_size}), got {what}"
        )


def init_normal_(model: nn.Module, std: float) -> None:
    """Draw every linear weight, token embedding and learned position table of `model` from
    N(0, std²), with zero biases and zero padding rows (`ModelConfig.init_std`); LayerNorms and
    the fixed sinusoid are left alone. BERT, GPT-2 and Hugging Face's MarianMT use std 0.02."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, TokenEmbedding):
                nn.init.normal_(module.weight, std=std)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()
            elif isinstance(module, PositionalEncoding) and module.kind == "learned":
                nn.init.normal_(module.table, std=std)


class Transformer(nn.Module):
    """Encoder-decoder Transformer; see the module docstring. `config` is a `ModelConfig`."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = cfg = config
        d = cfg.d_model
        scale = cfg.scale_embedding
        self.src_embed = TokenEmbedding(cfg.src_vocab_size, d, cfg.pad_id, scale)
        self.tgt_embed = (
            self.src_embed
            if cfg.share_embeddings
            else TokenEmbedding(cfg.tgt_vocab_size, d, cfg.pad_id, scale)
        )
        self.src_pos = PositionalEncoding(cfg.positional, cfg.max_len, d)
        self.tgt_pos = (
            self.src_pos
            if cfg.positional == "sinusoidal"
            else PositionalEncoding(cfg.positional, cfg.max_len, d)
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.encoder_layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.n_encoder_layers))
        self.decoder_layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.n_decoder_layers))
        # Pre-norm leaves each stack's output un-normalised: one final LayerNorm per stack.
        eps = cfg.layer_norm_eps
        self.encoder_norm = nn.LayerNorm(d, eps=eps) if cfg.norm_first else None
        self.decoder_norm = nn.LayerNorm(d, eps=eps) if cfg.norm_first else None
        self.output_proj = None if cfg.tie_output else nn.Linear(d, cfg.tgt_vocab_size, bias=False)
        if self.output_proj is not None:
            init_linear_(self.output_proj)
        if cfg.init_std is not None:
            init_normal_(self, cfg.init_std)

    @property
    def output_weight(self) -> torch.Tensor:
        """The (V, D) matrix of the final linear layer (the target embedding when tied)."""
        return self.tgt_embed.weight if self.output_proj is None else self.output_proj.weight

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """The final linear layer (Section 3.4): x (B, T, D) -> logits (B, T, V)."""
        return F.linear(x, self.output_weight)  # (B, T, D) @ (D, V)

    def new_cache(self) -> KVCache:
        """An empty key/value cache for incremental decoding with `decode`."""
        return KVCache()

    def forward(self, src: torch.Tensor, tgt: torch.Tensor, need_weights: bool = False):
        """src (B, S), tgt (B, T) int64 -> logits (B, T, V); with `need_weights`,
        (logits, AttentionWeights)."""
        src_pad_mask = src.eq(self.config.pad_id) if isinstance(src, torch.Tensor) else None
        if not need_weights:
            return self.decode(tgt, self.encode(src), src_pad_mask)
        memory, enc_w = self.encode(src, need_weights=True)
        logits, dec = self.decode(tgt, memory, src_pad_mask, need_weights=True)
        return logits, AttentionWeights(enc_w, dec.decoder, dec.cross)

    def encode(self, src: torch.Tensor, need_weights: bool = False):
        """src (B, S) int64 -> memory (B, S, D); with `need_weights`, (memory, [(B, H, S, S)]).

        Padded source positions (ids == pad_id) are hidden from every query; memory holds
        what the layers compute there, which no attention reads."""
        check_ids("src", src, self.config.src_vocab_size)
        pad_mask = src.eq(self.config.pad_id)[:, None, None, :]  # (B, 1, 1, S), True = padding
        x = self.dropout(self.src_embed(src) + self.src_pos(src.shape[1]))  # (B, S, D)
        weights = []
        for layer in self.encoder_layers:
            x, w = layer(x, pad_mask, need_weights=need_weights)  # (B, S, D)
            weights.append(w)
        if self.encoder_norm is not None:
            x = self.encoder_norm(x)
        return (x, weights) if need_weights else x

    def decode(
        self,
        tgt: torch.Tensor,
        memory: torch.Tensor,
        src_pad_mask: torch.Tensor | None,
        cache: KVCache | None = None,
        need_weights: bool = False,
    ):
        """tgt (B, T) int64, memory (B, S, D), src_pad_mask (B, S) bool (True = padding) or
        None -> logits (B, T, V); with `need_weights`, (logits, AttentionWeights with
        encoder=[]).

        With a `KVCache`, tgt holds the tokens at positions cache.length .. cache.length+T-1
        only; their keys/values are appended to the cache, and the cross-attention keys/values
        of `memory` are computed on the first cached call and reused afterwards.
        """
        check_ids("tgt", tgt, self.config.tgt_vocab_size)
        if src_pad_mask is not None and src_pad_mask.shape != memory.shape[:2]:
            raise ValueError(
                f"src_pad_mask must be (batch, source length) = "
                f"{tuple(memory.shape[:2])} like memory, got "
                f"{tuple(src_pad_mask.shape)}"
            )
        offset = 0 if cache is None else cache.length
        mem_mask = None if src_pad_mask is None else src_pad_mask[:, None, None, :]  # (B,1,1,S)
        x = self.dropout(self.tgt_embed(tgt) + self.tgt_pos(tgt.shape[1], offset))  # (B, T, D)
        self_ws, cross_ws = [], []
        for i, layer in enumerate(self.decoder_layers):
            layer_cache = None if cache is None else cache.layer(i)
            x, sw, cw = layer(x, memory, mem_mask, cache=layer_cache, need_weights=need_weights)
            self_ws.append(sw)
            cross_ws.append(cw)
        if cache is not None:
            cache.advance(tgt.shape[1])
        if self.decoder_norm is not None:
            x = self.decoder_norm(x)
        logits = self.logits(x)  # (B, T, V)
        return (logits, AttentionWeights([], self_ws, cross_ws)) if need_weights else logits
