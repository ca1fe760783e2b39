"""Parameter counts: a closed form derived from the architecture, and a module counter.

Shape legend: D d_model, F d_ff, H heads, Dk/Dv head dims, V vocabulary, N layers.
"""

from __future__ import annotations

from torch import nn

from transformer.config import ModelConfig


def count_parameters(module: nn.Module) -> int:
    """Number of distinct trainable parameters (a shared/tied tensor counts once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def attention_parameters(cfg: ModelConfig) -> int:
    """One multi-head attention: W^Q, W^K (D x H·Dk each), W^V (D x H·Dv), W^O (H·Dv x D),
    with biases. Self- and cross-attention have the same count."""
    d, h, dk, dv = cfg.d_model, cfg.n_heads, cfg.head_dim_k, cfg.head_dim_v
    in_proj = d * h * (2 * dk + dv) + h * (2 * dk + dv)
    return in_proj + h * dv * d + d


def parameter_count(cfg: ModelConfig, model: str = "transformer") -> int:
    """Closed-form parameter count of `Transformer(cfg)` (model="transformer") or `GPT(cfg)`
    (model="gpt").

    Per encoder layer: attention + FFN (2·D·F + F + D) + 2 LayerNorms (2·D each);
    per decoder layer: 2 attentions + FFN + 3 LayerNorms. Embeddings: V·D per distinct matrix
    (shared source/target = one; tied output = none extra); learned positions max_len·D per
    stack; pre-norm adds one final LayerNorm per stack. The output layer has no bias.
    """
    d, f = cfg.d_model, cfg.d_ff
    ffn = 2 * d * f + f + d
    norm = 2 * d
    attn = attention_parameters(cfg)
    n_final = 1 if cfg.norm_first else 0
    if model == "gpt":
        block = attn + ffn + 2 * norm
        out = 0 if cfg.tie_output else cfg.tgt_vocab_size * d
        pos = cfg.max_len * d if cfg.positional == "learned" else 0
        return cfg.n_decoder_layers * block + cfg.tgt_vocab_size * d + out + pos + n_final * norm
    if model != "transformer":
        raise ValueError(f"model must be 'transformer' or 'gpt', got {model!r}")
    enc = cfg.n_encoder_layers * (attn + ffn + 2 * norm)
    dec = cfg.n_decoder_layers * (2 * attn + ffn + 3 * norm)
    emb = cfg.src_vocab_size * d + (0 if cfg.share_embeddings else cfg.tgt_vocab_size * d)
    out = 0 if cfg.tie_output else cfg.tgt_vocab_size * d
    pos = 2 * cfg.max_len * d if cfg.positional == "learned" else 0
    return enc + dec + emb + out + pos + 2 * n_final * norm
