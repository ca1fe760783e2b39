"""The fast engine: everything that exists for speed, applied to a built model by one call.

    model = Transformer(cfg)          # the reference core (transformer.models, .layers)
    optimize(model)                   # the same function, faster (in place)

Each piece is one module and one entry of `PIECES`; each swaps fast variants into the model
that add no parameters (fast subclasses sharing the module's state, parameter-free wrappers,
attributes the decoders read), so the weights and the `state_dict` keys stay the same and a
checkpoint saved from either loads into the other. Each applies only where it computes the
same function (no autograd, the CPU, no attention weights asked for, ...) and otherwise runs
the reference code. To drop a piece when torch makes it unnecessary, delete its entry.

Pieces, in the order applied:
- `use_fused_attention` (`attend.py`): attention by torch's fused SDPA (in float32 for bf16
  training on the CPU), or broadcasting / batched matrix products in the measured corners
  where those are faster;
- `use_fast_dropout` (`dropout.py`): dropout masks from 16 random bits per element on the CPU;
- `skip_padding` (`padding.py`): encoder layers and the cross-attention's key/value
  projection run on the real tokens only (inference);
- `share_source` (`beams.py`): the K beams of a sentence read its encoder output once;
- `use_fast_cache` (`cache.py`): the decoding cache reorders lazily, one copy per step, and by
  sentence for the shared source;
- `use_fast_topk` (`topk.py`): the decoders' row max / top-k through block maxima on the CPU;
- `pack_for_inference` (`packed.py`): decoding's linear maps on oneDNN-packed weights on the CPU.

`tune_malloc` (`malloc.py`) is the process-wide allocator setting the CLI applies with it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torch import nn

from transformer.fast.attend import use_fused_attention
from transformer.fast.beams import share_source
from transformer.fast.cache import FastKVCache, use_fast_cache
from transformer.fast.dropout import use_fast_dropout
from transformer.fast.malloc import tune_malloc
from transformer.fast.packed import pack_for_inference
from transformer.fast.padding import skip_padding
from transformer.fast.topk import use_fast_topk

# Each takes the model, changes it in place and returns how many modules or attributes it set.
PIECES: tuple[Callable[[nn.Module], int], ...] = (
    use_fused_attention,
    use_fast_dropout,
    skip_padding,
    share_source,
    use_fast_cache,
    use_fast_topk,
    pack_for_inference,
)


def optimize(model: nn.Module, pieces: Sequence[Callable[[nn.Module], int]] = PIECES):
    """Apply `pieces` (by default all of `PIECES`) to `model` in place; applying them again
    is harmless. Returns the model (the same object) for chaining."""
    for piece in pieces:
        piece(model)
    return model


__all__ = ["PIECES", "FastKVCache", "optimize", "tune_malloc"]
