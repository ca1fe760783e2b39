"""The Transformer's building blocks (Vaswani et al., 2017, Section 3), the reference core.

- `embedding`: `TokenEmbedding` (×√d_model), `PositionalEncoding` (sinusoid or learned),
  `sinusoidal_encoding` (the closed form).
- `mha`: `ScaledDotProductAttention` (Eq. 1), `SelfAttention` (fused QKV), `CrossAttention`,
  `LayerCache` (incremental decoding).
- `blocks`: `FeedForward`, `EncoderLayer`, `DecoderLayer`, `LectureLayerNorm` (the slide's
  code, as a reference).

The fast engine (`transformer.fast`) swaps faster variants of some of these into a built model.
"""

from transformer.layers.blocks import DecoderLayer, EncoderLayer, FeedForward, LectureLayerNorm
from transformer.layers.embedding import PositionalEncoding, TokenEmbedding, sinusoidal_encoding
from transformer.layers.mha import (
    CrossAttention,
    LayerCache,
    ScaledDotProductAttention,
    SelfAttention,
)

__all__ = [
    "CrossAttention",
    "DecoderLayer",
    "EncoderLayer",
    "FeedForward",
    "LayerCache",
    "LectureLayerNorm",
    "PositionalEncoding",
    "ScaledDotProductAttention",
    "SelfAttention",
    "TokenEmbedding",
    "sinusoidal_encoding",
]
