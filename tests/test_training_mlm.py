"""BERT's masking (Devlin et al. 2019, Section 3.1) against its expected rates, and the MLM loss
against a hand computation."""

from __future__ import annotations

import math

import pytest
import torch

from transformer.training.mlm import IGNORE, mask_tokens, masked_accuracy, mlm_loss

V, SPECIALS, MASK = 1000, (0, 1, 2, 3, 4), 4  # [PAD] [UNK] [CLS] [SEP] [MASK]


def sample_batch(rows: int = 400, length: int = 250) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(5, V, (rows, length), generator=g)
    ids[:, 0], ids[:, -1] = 2, 3  # [CLS] ... [SEP]
    ids[::3, (4 * length) // 5 :] = 0  # padding in every third row
    ids[:, length // 2] = 1  # an [UNK] column
    return ids


def within(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """|count - n p| <= 5 binomial standard deviations (a false alarm about 1 in 1.7 million)."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_rates_match_the_paper():
    ids = sample_batch()
    inputs, labels = mask_tokens(ids, V, MASK, SPECIALS, generator=torch.Generator().manual_seed(2))
    special = torch.isin(ids, torch.tensor(SPECIALS))
    n = int((~special).sum())
    chosen = labels != IGNORE
    m = int(chosen.sum())
    assert within(m, n, 0.15)
    assert torch.equal(labels[chosen], ids[chosen])
    masked = int((inputs[chosen] == MASK).sum())
    same = int((inputs[chosen] == ids[chosen]).sum())
    other = m - masked - same
    p_collision = 0.1 / (V - len(SPECIALS))  # a random draw that equals the original
    assert within(masked, m, 0.8)
    assert within(other, m, 0.1 - p_collision)
    assert within(same, m, 0.1 + p_collision)
    assert torch.equal(inputs[~chosen], ids[~chosen])  # unchosen tokens untouched


def test_specials_never_masked_and_random_tokens_are_uniform_non_specials():
    ids = sample_batch()
    inputs, labels = mask_tokens(ids, V, MASK, SPECIALS, generator=torch.Generator().manual_seed(3))
    special = torch.isin(ids, torch.tensor(SPECIALS))
    assert bool((labels[special] == IGNORE).all()) and torch.equal(inputs[special], ids[special])
    replaced = (labels != IGNORE) & (inputs != MASK) & (inputs != ids)
    randoms = inputs[replaced].double()
    assert not bool(torch.isin(inputs[replaced], torch.tensor(SPECIALS)).any())
    # uniform over 5 .. 999: mean 502, standard deviation sqrt((995² - 1) / 12) ≈ 287.2
    k = randoms.numel()
    assert k > 1000 and abs(float(randoms.mean()) - 502.0) <= 5 * 287.2 / math.sqrt(k)


def test_masking_is_reproducible_and_leaves_ids_alone():
    ids = sample_batch(20, 30)
    before = ids.clone()
    a = mask_tokens(ids, V, MASK, SPECIALS, generator=torch.Generator().manual_seed(4))
    b = mask_tokens(ids, V, MASK, SPECIALS, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) and torch.equal(ids, before)


def test_rate_arguments_are_checked():
    ids = sample_batch(2, 10)
    with pytest.raises(ValueError, match="mask_prob"):
        mask_tokens(ids, V, MASK, SPECIALS, mask_prob=1.5)
    with pytest.raises(ValueError, match="mask_frac"):
        mask_tokens(ids, V, MASK, SPECIALS, mask_frac=0.95, random_frac=0.1)
    with pytest.raises(ValueError, match="every id is special"):
        mask_tokens(torch.zeros(2, 3, dtype=torch.long), 5, MASK, SPECIALS)


def test_loss_equals_a_hand_computation():
    logits = torch.tensor(
        [
            [[2.0, 0.5, -1.0, 0.0], [0.1, 0.2, 0.3, 0.4], [5.0, -5.0, 0.0, 1.0]],
            [[-2.0, 1.5, 0.5, 3.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 9.0, 0.0]],
        ]
    )
    labels = torch.tensor([[0, IGNORE, 3], [IGNORE, 2, IGNORE]])
    # -log softmax(row)[label], by hand, at the three chosen positions only
    rows = [([2.0, 0.5, -1.0, 0.0], 0), ([5.0, -5.0, 0.0, 1.0], 3), ([1.0, 1.0, 1.0, 1.0], 2)]
    nll = [math.log(sum(math.exp(z) for z in row)) - row[label] for row, label in rows]
    expected = sum(nll) / 3
    assert abs(float(mlm_loss(logits, labels)) - expected) < 1e-6
    changed = logits.clone()
    changed[0, 1] += 7.0  # an unchosen position does not count
    assert float(mlm_loss(changed, labels)) == pytest.approx(expected, abs=1e-6)
    assert masked_accuracy(logits, labels) == (1, 3)  # row 0 pos 0 right; pos 2, row 1 pos 1 not


def test_loss_without_chosen_positions_is_zero_with_a_gradient():
    logits = torch.randn(2, 3, 5, requires_grad=True)
    loss = mlm_loss(logits, torch.full((2, 3), IGNORE))
    loss.backward()
    assert float(loss.detach()) == 0.0 and logits.grad is not None
