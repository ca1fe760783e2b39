"""Turning a built module into its fast variant in place, keeping its parameters.

Every fast variant is a subclass that adds no parameters or buffers, so the module keeps its
weights, its `state_dict` keys and its place in the model: only its methods change, and a
checkpoint saved from either loads into the other.
"""

from __future__ import annotations

from torch import nn


def swap_class(model: nn.Module, old: type[nn.Module], new: type[nn.Module]) -> int:
    """Give every submodule of `model` (itself included) whose type is exactly `old` the
    class `new` (a subclass of `old` with the same state). Returns how many changed."""
    if not issubclass(new, old):
        raise TypeError(f"{new.__name__} must subclass {old.__name__}")
    count = 0
    for module in model.modules():
        if type(module) is old:
            module.__class__ = new
            count += 1
    return count
