"""Sampling from a decoder-only language model (GPT, Radford et al. 2018/2019): temperature,
top-k (Fan et al., 2018) and nucleus / top-p (Holtzman et al., 2020), with the KV cache.

Shape legend: B batch, T sequence length, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from transformer.decoding.common import Cache, CacheFactory, new_cache

LanguageModel = Callable[..., Tensor]  # lm(idx (B, T), cache=None) -> logits (B, T, V)


def filter_logits(logits: Tensor, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set to -inf every logit outside the top k and outside the nucleus.

    logits (..., V). top_k keeps the k largest (ties at the k-th value are all kept); top_p
    keeps the smallest set of most probable tokens whose probabilities sum to >= top_p (the
    most probable token always stays). Returns a new tensor.
    """
    out = logits.clone()
    if top_k is not None:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_k < out.size(-1):
            kth = out.topk(top_k, dim=-1).values[..., -1:]  # (..., 1)
            out = out.masked_fill(out < kth, float("-inf"))
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, order = out.sort(dim=-1, descending=True)  # (..., V)
        probs = sorted_logits.float().softmax(dim=-1)
        before = probs.cumsum(dim=-1) - probs  # mass of the strictly more probable tokens
        drop_sorted = before >= top_p  # this token is not needed to reach top_p
        drop = drop_sorted.scatter(-1, order, drop_sorted)  # back to vocabulary order
        out = out.masked_fill(drop, float("-inf"))
    return out


def sample_next(
    logits: Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One token per row from logits (B, V): (B,) int64. temperature 0 = argmax."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    filtered = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = filtered.softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate(
    lm: LanguageModel,
    prompt: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    max_positions: int | None = None,
    use_cache: bool = True,
    make_cache: CacheFactory | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Continue prompt (B, T0) int64 by up to `max_new_tokens` tokens: (B, T0 + n) int64.

    Rows that produced `eos_id` keep producing it (so the batch stays rectangular); generation
    stops early when every row has. Without a cache the whole sequence is re-run each step;
    the cache gives the same tokens for the same `generator` state. `max_positions` (the
    model's config.max_len) is checked up front: prompt plus new tokens must fit.
    """
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if prompt.dim() != 2 or prompt.size(1) < 1:
        raise ValueError(f"prompt must be (B, T0) with T0 >= 1, got {tuple(prompt.shape)}")
    if max_positions is not None and prompt.size(1) + max_new_tokens > max_positions:
        raise ValueError(
            f"prompt ({prompt.size(1)}) + max_new_tokens ({max_new_tokens}) "
            f"exceeds the model's {max_positions} positions"
        )
    cache: Cache | None = new_cache(lm, make_cache) if use_cache else None
    seq = prompt
    done = torch.zeros(prompt.size(0), dtype=torch.bool, device=prompt.device)
    for _ in range(max_new_tokens):
        logits = lm(seq) if cache is None else lm(seq[:, cache.length :], cache=cache)
        token = sample_next(logits[:, -1], temperature, top_k, top_p, generator)  # (B,)
        if eos_id is not None:
            token = token.masked_fill(done, eos_id)
            done |= token.eq(eos_id)
        seq = torch.cat([seq, token.unsqueeze(1)], dim=1)
        if eos_id is not None and bool(done.all()):
            break
    return seq
