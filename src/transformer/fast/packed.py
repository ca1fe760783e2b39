"""Linear layers on oneDNN's pre-packed weights, for decoding on the CPU.

`nn.Linear` hands its weight to the BLAS library (MKL) as stored, on every call. oneDNN (the
"mkldnn" inside PyTorch's CPU build) can instead reorder ("pack") a weight once into the
blocked layout its matrix-product kernel reads. Incremental decoding multiplies a few rows
(64 sentences, or 256 beams) by the same weights at every step, and there the packed product
is faster, most for the large output layer (`python scripts/micro_bench.py linear`,
docs/benchmarks.md).

`pack_for_inference(model)` swaps every large enough `nn.Linear` inside `model` (at least
`MIN_WEIGHTS` weights) for a `PackedLinear` that shares its parameters (so `state_dict`,
`load_state_dict` and checkpoints are unchanged), and replaces the final linear layer
`model.logits` of a model with an `output_weight` (`Transformer`, `GPT`: often the tied
embedding) by a `PackedWeight` of that weight.
Packing is lazy and safe to leave on:
- the weight is packed on its first eligible call, and again whenever it changed in place
  (`load_state_dict`, an optimizer step: the tensor's version counter says so);
- a call falls back to `F.linear` for a single row (`MIN_ROWS`), whenever autograd records it
  (training), the input or weight is not float32 on the CPU, the weight was created in
  inference mode (it has no version counter), or this torch has no usable oneDNN (checked
  once, on a small product compared with `F.linear`).

Shape legend: N rows (any leading dims), I in_features, O out_features.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


@functools.cache
def packing_available() -> bool:
    """Whether this torch can pack linear weights with oneDNN and gets F.linear's results
    (to float32 rounding) from them: probed once on a small random product."""
    try:
        if not torch.backends.mkldnn.is_available():
            return False
        ops = torch.ops.mkldnn
        gen = torch.Generator().manual_seed(0)
        w, b, x = (torch.randn(*shape, generator=gen) for shape in ((24, 16), (24,), (5, 16)))
        with torch.inference_mode():
            packed = ops._reorder_linear_weight(w)
            y = ops._linear_pointwise(x, packed, b, "none", [], "")
        return bool(torch.allclose(y, F.linear(x, w, b), rtol=1e-4, atol=1e-5))
    except (AttributeError, RuntimeError):  # no such op, or a build without the kernel
        return False


class PackedWeight:
    """A linear map y = x Wᵀ + b whose weight W (O, I) is packed for oneDNN when first used.

    Call it like `F.linear`: x (N..., I) -> (N..., O). It holds references to `weight` and
    `bias` (normally the model's own parameters), never copies of their values.
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        self.weight, self.bias = weight, bias
        self._packed: torch.Tensor | None = None
        self._version = -1  # weight._version when packed

    def _eligible(self, x: torch.Tensor) -> bool:
        w = self.weight
        if not (x.is_cpu and w.is_cpu and x.dtype == w.dtype == torch.float32):
            return False
        if x.numel() < MIN_ROWS * x.shape[-1]:
            return False  # one row (a GPT sample's step): oneDNN's call cost is not won back
        if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
            return False  # autograd records this call: the plain path has the backward
        if w.is_inference():
            return False  # no version counter: a change in place could not be seen
        return packing_available()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if not self._eligible(x):
            return F.linear(x, self.weight, self.bias)
        if self._packed is None or self._version != self.weight._version:
            with torch.inference_mode():
                self._packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach())
            self._version = self.weight._version
        bias = None if self.bias is None else self.bias.detach()
        return torch.ops.mkldnn._linear_pointwise(x, self._packed, bias, "none", [], "")

    def __getstate__(self) -> dict:
        """Copies and pickles drop the packed tensor (oneDNN's opaque layout has no storage
        to copy); it is rebuilt on the next call."""
        return {**self.__dict__, "_packed": None, "_version": -1}


class PackedLinear(nn.Linear):
    """An `nn.Linear` whose forward uses a `PackedWeight` where it can (see the module
    docstring); its parameters, state_dict and repr are nn.Linear's."""

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> PackedLinear:
        """A PackedLinear sharing `linear`'s weight and bias Parameters (no copy)."""
        packed = cls.__new__(cls)
        nn.Module.__init__(packed)
        packed.in_features, packed.out_features = linear.in_features, linear.out_features
        packed.weight, packed.bias = linear.weight, linear.bias
        packed.train(linear.training)
        return packed

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Built on first use: a PackedWeight holds this module's current parameters.
        packed = self.__dict__.get("_packed_weight")
        if packed is None or packed.weight is not self.weight or packed.bias is not self.bias:
            packed = self.__dict__["_packed_weight"] = PackedWeight(self.weight, self.bias)
        return packed(x)


# A oneDNN call has a fixed extra cost over an `addmm` one; below about 100k weights (a 256 x
# 256 projection) the packed product does not win it back (docs/benchmarks.md).
MIN_WEIGHTS = 100_000
# Nor for a single row (one sequence's decoding step: GPT sampling one sample): packed /
# F.linear time 0.2-0.8x for the 192-768-wide layers of the Shakespeare GPT, ~1x for
# 2304-50257-wide ones (memory-bound there), one thread, 2-core AVX2; from 2 rows on the wide
# layers win (1.1-2.3x). `transformer bench lm`: +20-25% generated tokens/s at one row.
MIN_ROWS = 2


def pack_for_inference(model: nn.Module, min_weights: int = MIN_WEIGHTS) -> int:
    """Swap every plain `nn.Linear` in `model` with at least `min_weights` weights for a
    `PackedLinear` sharing its parameters, and set `model.logits` (the final linear layer of
    `Transformer` and `GPT`) to a `PackedWeight` of `model.output_weight` if that is as large.
    In place; returns the number of linear maps packed. Nothing changes when packing is
    unavailable (the count is then 0), and calls it does not apply to run as before (see the
    module docstring)."""
    if not packing_available():
        return 0
    output = getattr(model, "output_weight", None) if hasattr(model, "logits") else None
    count = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if not isinstance(child, nn.Linear) or child.weight.numel() < min_weights:
                continue
            if child.weight is output:  # an untied output layer: model.logits calls it
                continue
            if type(child) is nn.Linear:  # not subclasses, whose forward may differ
                child = PackedLinear.from_linear(child)
                setattr(module, name, child)
            count += isinstance(child, PackedLinear)
    if output is not None and output.numel() >= min_weights:
        model.logits = PackedWeight(output)  # x (B, T, D) -> (B, T, V), as model.logits
        count += 1
    return count
