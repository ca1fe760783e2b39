"""Models: the encoder-decoder `Transformer`, the decoder-only `GPT`, and the `KVCache`
for incremental decoding. `parameter_count(cfg)` is the closed-form parameter count."""

from transformer.models.bert import BERT
from transformer.models.cache import KVCache
from transformer.models.gpt import GPT
from transformer.models.params import count_parameters, parameter_count
from transformer.models.transformer import AttentionWeights, Transformer

__all__ = [
    "BERT",
    "GPT",
    "AttentionWeights",
    "KVCache",
    "Transformer",
    "count_parameters",
    "parameter_count",
]
