"""Masked-language-model data and loss, as in BERT (Devlin et al. 2019, Section 3.1, Task #1):

    inputs, labels = mask_tokens(ids, vocab_size, tok.mask_id, tok.special_ids, generator=g)
    loss = mlm_loss(model(inputs), labels)

Each non-special token is chosen with probability 15% (independently, as Hugging Face's
`DataCollatorForLanguageModeling`; BERT's own script picks round(15% of the length) per
sequence: the same rate). A chosen token becomes [MASK] with probability 80%, a random token
with 10% (uniform over the non-special ids, so that a random [PAD] or [MASK] never appears)
and stays itself with 10%. Specials ([PAD], [CLS], [SEP], ... whatever `special_ids` lists)
are never chosen. The labels hold the original id at the chosen positions and `IGNORE`
(-100) elsewhere; the loss is the mean cross-entropy over the chosen positions only.

Shape legend: B batch, T length, V vocabulary, N chosen positions.
"""

from __future__ import annotations

from collections.abc import Collection

import torch
import torch.nn.functional as F

IGNORE = -100


def mask_tokens(
    ids: torch.Tensor,
    vocab_size: int,
    mask_id: int,
    special_ids: Collection[int],
    mask_prob: float = 0.15,
    mask_frac: float = 0.8,
    random_frac: float = 0.1,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ids (B, T) int64 -> (inputs (B, T), labels (B, T)), both int64; `ids` is not changed.

    `mask_frac` of the chosen become `mask_id`, `random_frac` a random non-special id, the
    rest stay. Draws come from `generator` (or torch's global RNG), on `ids`' device.
    """
    if not 0.0 <= mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], got {mask_prob}")
    if mask_frac < 0 or random_frac < 0 or mask_frac + random_frac > 1.0:
        raise ValueError(f"need mask_frac, random_frac >= 0, sum <= 1: {mask_frac}, {random_frac}")
    specials = torch.tensor(sorted(set(special_ids)), dtype=ids.dtype, device=ids.device)
    allowed = torch.ones(vocab_size, dtype=torch.bool, device=ids.device)
    allowed[specials] = False
    pool = allowed.nonzero().squeeze(1)  # the non-special ids, (V - #specials,)
    if pool.numel() == 0:
        raise ValueError("every id is special: nothing can be masked")

    def uniform() -> torch.Tensor:
        return torch.rand(ids.shape, generator=generator, device=ids.device)

    chosen = (uniform() < mask_prob) & ~torch.isin(ids, specials)  # (B, T) bool
    action = uniform()  # < mask_frac: [MASK]; next random_frac: random; else unchanged
    to_mask = chosen & (action < mask_frac)
    to_random = chosen & (action >= mask_frac) & (action < mask_frac + random_frac)
    draws = torch.randint(pool.numel(), ids.shape, generator=generator, device=ids.device)
    inputs = torch.where(to_mask, torch.full_like(ids, mask_id), ids)
    inputs = torch.where(to_random, pool[draws], inputs)
    labels = torch.where(chosen, ids, torch.full_like(ids, IGNORE))
    return inputs, labels


def mlm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the positions whose label is not `IGNORE`.

    logits (B, T, V) or (N, V) float, labels (B, T) or (N,) int64 -> scalar (0 with a
    gradient, never NaN, when no position is chosen).
    """
    flat_logits = logits.reshape(-1, logits.size(-1))  # (B·T, V)
    flat_labels = labels.reshape(-1)
    keep = flat_labels != IGNORE
    if not bool(keep.any()):
        return flat_logits.sum() * 0.0
    return F.cross_entropy(flat_logits[keep].float(), flat_labels[keep])


def masked_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> tuple[int, int]:
    """(correct argmax predictions, chosen positions): masked-token accuracy = their ratio."""
    keep = labels != IGNORE
    correct = (logits.argmax(-1) == labels) & keep
    return int(correct.sum()), int(keep.sum())
