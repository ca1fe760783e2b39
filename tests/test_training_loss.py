"""Label smoothing vs a closed-form loop, vs torch's cross_entropy where they coincide,
and the Noam schedule / Adam settings vs the paper's formulas."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from transformer.training.loss import label_smoothed_cross_entropy
from transformer.training.optim import build_adam
from transformer.training.schedule import linear_lr, noam_lr, noam_peak


def _reference(logits: torch.Tensor, target: torch.Tensor, eps: float, pad: int) -> float:
    """-Σ_k q(k) log p(k) summed over non-pad positions, q built explicitly (float64 loop)."""
    total = 0.0
    V = logits.size(-1)
    for row, y in zip(logits.double().reshape(-1, V).tolist(), target.reshape(-1).tolist()):
        if y == pad:
            continue
        m = max(row)
        log_z = m + math.log(sum(math.exp(v - m) for v in row))
        q = [0.0 if k == pad else eps / (V - 1) for k in range(V)]
        q[y] += 1.0 - eps
        total -= sum(qk * (v - log_z) for qk, v in zip(q, row))
    return total


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.35])
def test_matches_closed_form_with_padding(eps: float) -> None:
    logits = torch.randn(3, 5, 7) * 3
    target = torch.randint(1, 7, (3, 5))
    target[0, 3:] = 0
    target[2, 1:] = 0
    out = label_smoothed_cross_entropy(logits, target, eps, pad_id=0)
    assert out.loss.item() == pytest.approx(_reference(logits, target, eps, 0), rel=1e-5)
    assert int(out.n_tokens) == int(target.ne(0).sum())


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5])
def test_equals_torch_cross_entropy_without_pad(eps: float) -> None:
    logits = torch.randn(4, 6, 11)
    target = torch.randint(0, 11, (4, 6))
    out = label_smoothed_cross_entropy(logits, target, eps, pad_id=None)
    ref = F.cross_entropy(
        logits.reshape(-1, 11), target.reshape(-1), label_smoothing=eps, reduction="sum"
    )
    torch.testing.assert_close(out.loss, ref, rtol=1e-5, atol=1e-5)


def test_epsilon_zero_is_plain_cross_entropy_ignoring_pad() -> None:
    logits = torch.randn(2, 9, 13)
    target = torch.randint(0, 13, (2, 9))  # some targets are pad (0) by chance
    target[1, -3:] = 0
    out = label_smoothed_cross_entropy(logits, target, 0.0, pad_id=0)
    ref = F.cross_entropy(
        logits.reshape(-1, 13), target.reshape(-1), ignore_index=0, reduction="sum"
    )
    torch.testing.assert_close(out.loss, ref)
    torch.testing.assert_close(out.nll, ref)


def test_padding_positions_do_not_count() -> None:
    logits = torch.randn(2, 4, 9)
    target = torch.randint(1, 9, (2, 4))
    base = label_smoothed_cross_entropy(logits, target, 0.1, pad_id=0)
    padded_logits = torch.cat([logits, torch.randn(2, 3, 9) * 100], dim=1)  # garbage at pads
    padded_target = torch.cat([target, torch.zeros(2, 3, dtype=torch.long)], dim=1)
    more = label_smoothed_cross_entropy(padded_logits, padded_target, 0.1, pad_id=0)
    torch.testing.assert_close(more.loss, base.loss)
    assert int(more.n_tokens) == int(base.n_tokens) == 8


def test_gradient_is_softmax_minus_target_distribution() -> None:
    """d loss / d logits = p - q for each non-pad position: q is the documented distribution."""
    V, eps, pad = 6, 0.2, 0
    logits = torch.randn(5, V, requires_grad=True)
    target = torch.tensor([1, 4, 0, 5, 2])
    label_smoothed_cross_entropy(logits, target, eps, pad_id=pad).loss.backward()
    q = torch.full((5, V), eps / (V - 1))
    q[:, pad] = 0.0
    q[torch.arange(5), target] += 1 - eps
    expected = torch.softmax(logits.detach(), -1) - q
    expected[2] = 0.0  # the pad position contributes nothing
    torch.testing.assert_close(logits.grad, expected)
    assert torch.allclose(q[[0, 1, 3, 4]].sum(-1), torch.ones(4))


def _autograd_reference(logits, target, eps, pad):
    """The same sums written as plain autograd ops (log_softmax, gather, sum)."""
    V = logits.size(-1)
    logp = torch.log_softmax(logits.double(), -1).reshape(-1, V)
    tgt = target.reshape(-1)
    keep = torch.ones_like(tgt, dtype=torch.bool) if pad is None else tgt.ne(pad)
    nll = -logp.gather(1, tgt.unsqueeze(1)).squeeze(1)
    smooth = -logp.mean(1) if pad is None else -(logp.sum(1) - logp[:, pad]) / (V - 1)
    loss = (1 - eps) * nll + eps * smooth
    return (loss * keep).sum(), (nll * keep).sum()


@pytest.mark.parametrize("pad", [0, 3, None])
def test_closed_form_gradient_equals_autograd_for_loss_and_nll(pad) -> None:
    """Both outputs carry gradient (weights 0.7 and -1.3): equal to autograd in float64."""
    torch.manual_seed(0)
    logits = (torch.randn(4, 5, 9, dtype=torch.float64) * 2).requires_grad_()
    target = torch.randint(0, 9, (4, 5))
    if pad is not None:
        target[1, 2:] = pad
    out = label_smoothed_cross_entropy(logits, target, 0.15, pad_id=pad)
    (0.7 * out.loss - 1.3 * out.nll).backward()
    ref_logits = logits.detach().clone().requires_grad_()
    ref_loss, ref_nll = _autograd_reference(ref_logits, target, 0.15, pad)
    (0.7 * ref_loss - 1.3 * ref_nll).backward()
    torch.testing.assert_close(out.loss, ref_loss, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(logits.grad, ref_logits.grad, rtol=1e-12, atol=1e-12)


def test_bfloat16_logits_get_a_bfloat16_gradient() -> None:
    logits = torch.randn(6, 11).to(torch.bfloat16).requires_grad_()
    target = torch.randint(1, 11, (6,))
    label_smoothed_cross_entropy(logits, target, 0.1, pad_id=0).loss.backward()
    assert logits.grad.dtype == torch.bfloat16
    ref_logits = logits.detach().float().requires_grad_()
    _autograd_reference(ref_logits, target, 0.1, 0)[0].backward()
    torch.testing.assert_close(logits.grad.float(), ref_logits.grad, rtol=2e-2, atol=2e-2)


def test_rejects_bad_epsilon() -> None:
    with pytest.raises(ValueError, match="epsilon"):
        label_smoothed_cross_entropy(torch.randn(2, 3), torch.tensor([0, 1]), 1.0)


def test_noam_peak_at_warmup_and_nonzero_first_step() -> None:
    d, warmup = 512, 4000
    rates = [noam_lr(s, d, warmup) for s in range(1, 3 * warmup)]
    assert max(range(len(rates)), key=rates.__getitem__) + 1 == warmup
    assert max(rates) == pytest.approx(noam_peak(d, warmup)) == pytest.approx((d * warmup) ** -0.5)
    assert rates[0] > 0
    assert rates[0] == pytest.approx(d**-0.5 * warmup**-1.5)


def test_noam_shape_linear_then_inverse_sqrt() -> None:
    d, w = 256, 100
    assert noam_lr(40, d, w) / noam_lr(20, d, w) == pytest.approx(2.0)  # linear warm-up
    assert noam_lr(1600, d, w) / noam_lr(400, d, w) == pytest.approx(0.5)  # step^-0.5
    assert noam_lr(10, d, w, scale=3.0) == pytest.approx(3 * noam_lr(10, d, w))
    with pytest.raises(ValueError, match="from 1"):
        noam_lr(0, d, w)


def test_linear_schedule_warms_up_like_noam_then_falls_to_zero() -> None:
    d, w, total = 256, 100, 1100
    for step in (1, 50, 100):
        assert linear_lr(step, d, w, total, 0.6) == noam_lr(step, d, w, 0.6)
    peak = 0.6 / math.sqrt(d * w)
    assert linear_lr(600, d, w, total, 0.6) == pytest.approx(peak / 2)  # halfway down
    assert linear_lr(1000, d, w, total, 0.6) == pytest.approx(peak * 0.1)
    assert linear_lr(total, d, w, total, 0.6) == 0.0
    assert linear_lr(total + 5, d, w, total, 0.6) == 0.0
    with pytest.raises(ValueError, match="total steps > warmup"):
        linear_lr(5, d, 100, 100)


def test_adam_has_paper_hyperparameters_and_tied_weights_once() -> None:
    emb = torch.nn.Embedding(10, 4)
    out = torch.nn.Linear(4, 10, bias=False)
    out.weight = emb.weight  # tied
    model = torch.nn.ModuleDict({"emb": emb, "out": out})
    opt = build_adam(model)
    group = opt.param_groups[0]
    assert group["betas"] == (0.9, 0.98) and group["eps"] == 1e-9
    assert len(group["params"]) == 1


def test_second_backward_through_the_loss_is_refused() -> None:
    """The gradient reuses the saved log-probabilities, so a retained graph cannot run twice."""
    logits = torch.randn(3, 5, requires_grad=True)
    loss = label_smoothed_cross_entropy(logits, torch.tensor([1, 2, 3]), 0.1, pad_id=0).loss
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="twice"):
        loss.backward()
