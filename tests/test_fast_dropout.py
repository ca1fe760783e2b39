"""Our dropout against its definition: keep rate 1 - p (binomial bounds), inverted scaling,
gradient = mask / (1 - p), identity in eval mode, unbiased bits, reproducible under a seed."""

from __future__ import annotations

import math

import pytest
import torch

from transformer.fast.dropout import Dropout, dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keep_rate_within_binomial_bounds(p: float) -> None:
    torch.manual_seed(0)
    n = 1_000_003  # not a multiple of 4: the tail of the last 64-bit draw is cut
    keep = keep_mask(torch.Size([n]), p)
    assert keep.shape == (n,) and keep.dtype == torch.bool
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(float(keep.float().mean()) - (1 - p)) < 5 * sigma + 2**-16
    # each of the four 16-bit slots of a 64-bit draw is unbiased (no stuck sign bit)
    slots = keep[: n - n % 4].view(-1, 4).float().mean(0)
    assert torch.all((slots - (1 - p)).abs() < 5 * sigma * 2 + 2**-16)


def test_neighbouring_elements_are_independent() -> None:
    """P(both kept) of adjacent elements (same 64-bit draw) equals (1 - p)^2."""
    torch.manual_seed(1)
    keep = keep_mask(torch.Size([400_000, 4]), 0.5).float()
    both = (keep[:, 0] * keep[:, 1]).mean()
    assert abs(float(both) - 0.25) < 5 * math.sqrt(0.25 * 0.75 / 400_000)


def test_forward_and_gradient_are_mask_over_keep_probability() -> None:
    torch.manual_seed(2)
    x = torch.randn(64, 33, 7, requires_grad=True)
    g = torch.randn(64, 33, 7)
    torch.manual_seed(3)
    y = dropout(x, 0.25)
    y.backward(g)
    torch.manual_seed(3)
    keep = keep_mask(x.shape, 0.25).float()  # the same draw again
    torch.testing.assert_close(y, x.detach() * keep / 0.75)
    torch.testing.assert_close(x.grad, g * keep / 0.75)
    assert 0.2 < 1 - float(keep.mean()) < 0.3


def test_expectation_is_preserved() -> None:
    torch.manual_seed(4)
    x = torch.full((2_000_000,), 3.0)
    assert float(dropout(x, 0.1).mean()) == pytest.approx(3.0, rel=2e-3)


def test_module_is_identity_in_eval_and_checks_p() -> None:
    layer = Dropout(0.4).eval()
    x = torch.randn(5, 6)
    assert layer(x) is x
    assert dropout(x, 0.0) is x
    assert torch.equal(dropout(x, 1.0), torch.zeros_like(x))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Dropout(1.5)
    assert "p=0.4" in repr(layer)


def test_same_seed_same_mask() -> None:
    x = torch.randn(100, 10)
    torch.manual_seed(7)
    a = dropout(x, 0.3)
    torch.manual_seed(7)
    b = dropout(x, 0.3)
    assert torch.equal(a, b)
