"""Running the position-wise layers on the real tokens of a padded batch only.

A batch of sentences is padded to its longest one: on Multi30k's test set in batches of 64,
the encoder sees 31 positions per sentence for 14 real tokens on average. Every layer of the
encoder but attention works position by position (the linear maps, the FFN, the residual
adds, LayerNorm), so their results at the real tokens do not depend on the padding. With a
`NonPad`, the encoder keeps its activations as the (n, D) rows of the n real tokens, and
unpacks them into the padded (B, S, ...) layout only around the attention product (as
`nn.TransformerEncoder`'s nested-tensor fast path does for inference). Padded positions of
the result are zero; they are masked from every attention that reads them.

Shape legend: B batch, S source length, n real (non-padding) tokens, X any feature size.
"""

from __future__ import annotations

from typing import NamedTuple

import torch


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
