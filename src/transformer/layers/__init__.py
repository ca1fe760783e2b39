"""The Transformer's building blocks (Vaswani et al., 2017, Section 3).

- `embedding`: `TokenEmbedding` (×√d_model), `PositionalEncoding` (sinusoid or learned),
  `sinusoidal_encoding` (the closed form).
- `mha`: `SelfAttention` (fused QKV), `CrossAttention`, `LayerCache` (incremental decoding).
- `dropout`: `Dropout` / `dropout`, inverted dropout with a cheaper CPU mask.
- `padding`: `NonPad`, the real tokens of a padded batch (the encoder skips padding in
  inference).
- `blocks`: `FeedForward`, `EncoderLayer`, `DecoderLayer`, `LectureLayerNorm` (the slide's
  code, as a reference).
"""

from transformer.layers.blocks import DecoderLayer, EncoderLayer, FeedForward, LectureLayerNorm
from transformer.layers.dropout import Dropout, dropout
from transformer.layers.embedding import PositionalEncoding, TokenEmbedding, sinusoidal_encoding
from transformer.layers.mha import CrossAttention, LayerCache, SelfAttention

__all__ = [
    "CrossAttention",
    "DecoderLayer",
    "Dropout",
    "EncoderLayer",
    "FeedForward",
    "LayerCache",
    "LectureLayerNorm",
    "PositionalEncoding",
    "SelfAttention",
    "TokenEmbedding",
    "dropout",
    "sinusoidal_encoding",
]
