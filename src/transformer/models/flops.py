"""Floating-point operations of the model, in closed form: what one training step costs, the
paper's runs planned to the FLOP, and model FLOPs utilisation (MFU).

Counted are the matrix products (2 FLOPs per multiply-add), which are all but a few percent
of the work: the Q/K/V/O projections, the attention products QK^T and AV, the feed-forward
network and the output layer. Softmax, LayerNorm, dropout, the embedding lookup and the
optimizer are left out, as in the usual MFU convention (Chowdhery et al., 2022, App. B).
Attention products are counted in full even where a causal mask hides half of them, which is
what dense kernels compute. Backward costs twice the forward (the gradients with respect to
the input and to the weight of every product), so a training step is 3x the forward.

Shape legend: B batch, S source length, T target length, D d_model, H heads, Dk/Dv head dims,
F d_ff, V vocabulary.
"""

from __future__ import annotations

from transformer.config import ModelConfig


def _projections(cfg: ModelConfig) -> tuple[int, int, int]:
    """Per-token FLOPs of (Q, K+V, O) projections: D x H·Dk, D x H·(Dk+Dv), H·Dv x D."""
    d, h = cfg.d_model, cfg.n_heads
    return (
        2 * d * h * cfg.head_dim_k,
        2 * d * h * (cfg.head_dim_k + cfg.head_dim_v),
        2 * h * cfg.head_dim_v * d,
    )


def _scores(cfg: ModelConfig, queries: int, keys: int) -> int:
    """QK^T (queries x keys x Dk per head) and AV (queries x keys x Dv per head)."""
    return 2 * cfg.n_heads * queries * keys * (cfg.head_dim_k + cfg.head_dim_v)


def forward_flops(cfg: ModelConfig, batch: int, src_len: int, tgt_len: int) -> int:
    """Matmul FLOPs of `Transformer(cfg)(src, tgt)` with src (B, S), tgt (B, T), padding
    included (dense kernels compute it)."""
    q, kv, o = _projections(cfg)
    ffn = 4 * cfg.d_model * cfg.d_ff  # W_1 and W_2 per token
    s, t = src_len, tgt_len
    encoder = s * (q + kv + o + ffn) + _scores(cfg, s, s)
    self_attn = t * (q + kv + o) + _scores(cfg, t, t)
    cross = t * (q + o) + s * kv + _scores(cfg, t, s)
    decoder = self_attn + cross + t * ffn
    output = t * 2 * cfg.d_model * cfg.tgt_vocab_size
    per_pair = cfg.n_encoder_layers * encoder + cfg.n_decoder_layers * decoder + output
    return batch * per_pair


def gpt_forward_flops(cfg: ModelConfig, batch: int, length: int) -> int:
    """Matmul FLOPs of `GPT(cfg)(idx)` with idx (B, T)."""
    q, kv, o = _projections(cfg)
    block = length * (q + kv + o + 4 * cfg.d_model * cfg.d_ff) + _scores(cfg, length, length)
    return batch * (cfg.n_decoder_layers * block + length * 2 * cfg.d_model * cfg.tgt_vocab_size)


def training_flops(forward: int) -> int:
    """One training step (forward + backward) from its forward FLOPs: 3x."""
    return 3 * forward


def mfu(flops_per_step: float, seconds_per_step: float, peak_flops_per_s: float) -> float:
    """Model FLOPs utilisation: achieved FLOP/s over the hardware's peak."""
    if seconds_per_step <= 0 or peak_flops_per_s <= 0:
        raise ValueError("seconds_per_step and peak_flops_per_s must be positive")
    return flops_per_step / seconds_per_step / peak_flops_per_s
