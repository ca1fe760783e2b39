"""Inference on the real tokens of a padded batch only: the encoder layers' position-wise
parts and the cross-attention's key/value projection skip the padding.

A batch of sentences is padded to its longest one: on Multi30k's test set in batches of 64,
the encoder sees 31 positions per sentence for 14 real tokens on average. Every layer of the
encoder but attention works position by position (the linear maps, the FFN, the residual
adds, LayerNorm), so their results at the real tokens do not depend on the padding. With a
`NonPad`, an encoder layer keeps its activations as the (n, D) rows of the n real tokens, and
unpacks them into the padded (B, S, ...) layout only around the attention product (as
`nn.TransformerEncoder`'s nested-tensor fast path does for inference). Padded positions of
the result are zero; they are masked from every attention that reads them. This applies only
without autograd and without attention weights; otherwise the reference layer runs.

`skip_padding(model)` swaps `SkipPaddingEncoderLayer` and `SkipPaddingCrossAttention` in.

Shape legend: B batch, S source length, n real (non-padding) tokens, X any feature size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from transformer.fast.swap import swap_class
from transformer.layers.blocks import EncoderLayer
from transformer.layers.mha import CrossAttention, LayerCache, merge_heads, split_heads


class NonPad(NamedTuple):
    """The real positions of a (B, S) batch: `index` (n,) int64 into its B·S positions,
    row-major (sentence by sentence, in order)."""

    index: torch.Tensor
    batch: int
    length: int

    @classmethod
    def of(cls, pad_mask: torch.Tensor) -> NonPad:
        """From a (B, S) bool padding mask, True = padding."""
        b, s = pad_mask.shape
        return cls(pad_mask.logical_not().reshape(-1).nonzero().squeeze(1), b, s)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, S, X) -> (n, X): the rows of the real tokens."""
        return x.reshape(self.batch * self.length, -1).index_select(0, self.index)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """(n, X) -> (B, S, X), zero at the padded positions."""
        out = x.new_zeros(self.batch * self.length, x.size(-1))
        return out.index_copy_(0, self.index, x).view(self.batch, self.length, -1)


def _padding_of(mask: torch.Tensor | None, x: torch.Tensor) -> NonPad | None:
    """The NonPad of a (B, 1, 1, S) bool padding mask over x (B, S, ...), when skipping the
    padding applies: no autograd recording, and some padding to skip."""
    if mask is None or mask.dtype != torch.bool or torch.is_grad_enabled():
        return None
    b, s = x.shape[:2]
    if mask.shape != (b, 1, 1, s) or not bool(mask.any()):
        return None
    return NonPad.of(mask.view(b, s))


class SkipPaddingEncoderLayer(EncoderLayer):
    """`EncoderLayer` whose position-wise parts run on the real tokens only (see above)."""

    def forward(self, x, mask=None, need_weights=False):
        tokens = None if need_weights else _padding_of(mask, x)
        if tokens is None:
            return super().forward(x, mask, need_weights)
        x = tokens.pack(x)  # (n, D)
        y = self._self_attention(self.sublayer_input(x, self.self_norm), mask, tokens)
        x = self.add(x, y, self.self_norm)
        x = self.add(x, self.ffn(self.sublayer_input(x, self.ffn_norm)), self.ffn_norm)
        return tokens.unpack(x), None  # (B, S, D), zero at padding

    def _self_attention(self, h: torch.Tensor, mask: torch.Tensor, tokens: NonPad):
        """`SelfAttention` on the real tokens h (n, D) -> (n, D)."""
        attn = self.self_attn
        hk, hv = attn.n_heads * attn.d_k, attn.n_heads * attn.d_v
        qkv = tokens.unpack(attn.qkv_proj(h))  # (B, S, H·(2Dk+Dv)), zero at padding
        q, k, v = (split_heads(t, attn.n_heads) for t in qkv.split([hk, hk, hv], dim=-1))
        out, _ = attn.attention(q, k, v, mask)  # (B, H, S, Dv)
        return attn.out_proj(tokens.pack(merge_heads(out)))  # (n, H·Dv) -> (n, D)


class SkipPaddingCrossAttention(CrossAttention):
    """`CrossAttention` that projects the keys/values of the real source positions only
    (the padded ones are zero, hidden by the mask), and stores them contiguous in a cache
    (so that every decoding step's product reads them without a copy)."""

    def keys_values(self, memory, mask, cache: LayerCache | None):
        if cache is not None and cache.cross_k is not None:
            return cache.cross_k, cache.cross_v
        tokens = _padding_of(mask, memory)
        if tokens is None:
            kv = self.kv_proj(memory)  # (B, S, H·(Dk+Dv))
        else:
            kv = tokens.unpack(self.kv_proj(tokens.pack(memory)))  # zero at padding
        k, v = kv.split([self.n_heads * self.d_k, self.n_heads * self.d_v], dim=-1)
        k, v = split_heads(k, self.n_heads), split_heads(v, self.n_heads)  # (B, H, S, .)
        if cache is not None:
            cache.cross_k, cache.cross_v = k.contiguous(), v.contiguous()
        return k, v


def skip_padding(model: nn.Module) -> int:
    """Swap the padding-skipping variants into `model`; returns how many modules changed."""
    return swap_class(model, EncoderLayer, SkipPaddingEncoderLayer) + swap_class(
        model, CrossAttention, SkipPaddingCrossAttention
    )
