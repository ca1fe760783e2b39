"""Sampling from a decoder-only language model (GPT, Radford et al. 2018/2019): temperature,
top-k (Fan et al., 2018) and nucleus / top-p (Holtzman et al., 2020), with the KV cache.

`stream` yields one token per row per step (for printing as it generates); `generate`
collects them. Past the model's context (`max_positions`) both keep going on a sliding window
(see `window_start`): when the window is full it moves `window_slide` positions and is
re-encoded into a fresh cache in one forward call, as nanoGPT crops its input (slide 1).

Shape legend: B batch, T sequence length, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

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
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    filtered = filter_logits(logits.float() / temperature, top_k, top_p)
    probs = filtered.softmax(dim=-1)  # (B, V)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def check_sampling(temperature: float, top_k: int | None, top_p: float | None) -> None:
    """ValueError naming the setting: temperature >= 0 (0 = greedy), top_k >= 1, top_p in
    (0, 1]."""
    if not temperature >= 0:
        raise ValueError(f"temperature must be >= 0 (0 = greedy), got {temperature}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be an integer >= 1, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def window_start(length: int, start: int, context: int | None, slide: int) -> int:
    """The first position the model sees when predicting position `length`: `start` while
    the window [start, length) fits `context` positions, else it jumps by `slide` to leave
    context - slide + 1 positions (slide = 1: always the last `context`, nanoGPT's crop)."""
    if context is None or length - start <= context:
        return start
    return length - context + slide - 1


@torch.inference_mode()
def stream(
    lm: LanguageModel,
    prompt: Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    max_positions: int | None = None,
    window_slide: int | None = None,
    use_cache: bool = True,
    make_cache: CacheFactory | None = None,
    generator: torch.Generator | None = None,
) -> Iterator[Tensor]:
    """Yield the next token of every row, (B,) int64, up to `max_new_tokens` times (see
    `generate`). The window of the last <= `max_positions` tokens follows `window_start`;
    with the cache, the cache is rebuilt from the window whenever the window moves (the
    window re-encoded in one call), so cached and uncached runs see the same context."""
    if max_new_tokens < 0:
        raise ValueError(f"max_new_tokens must be >= 0, got {max_new_tokens}")
    if prompt.dim() != 2 or prompt.size(1) < 1:
        raise ValueError(f"prompt must be (B, T0) with T0 >= 1, got {tuple(prompt.shape)}")
    check_sampling(temperature, top_k, top_p)
    slide = max(1, max_positions // 4) if window_slide is None and max_positions else window_slide
    if max_positions is not None and not 1 <= (slide or 1) <= max_positions:
        raise ValueError(f"window_slide must be in [1, {max_positions}], got {slide}")
    cache: Cache | None = None
    seq, start = prompt, -1
    done = torch.zeros(prompt.size(0), dtype=torch.bool, device=prompt.device)
    for _ in range(max_new_tokens):
        moved = window_start(seq.size(1), max(start, 0), max_positions, slide or 1)
        if not use_cache:
            logits = lm(seq[:, moved:])
        elif moved != start:  # first call, or the window moved: re-encode the window
            cache = new_cache(lm, make_cache)
            logits = lm(seq[:, moved:], cache=cache)
        else:
            logits = lm(seq[:, moved + cache.length :], cache=cache)
        start = moved
        token = sample_next(logits[:, -1], temperature, top_k, top_p, generator)  # (B,)
        if eos_id is not None:
            token = token.masked_fill(done, eos_id)
            done |= token.eq(eos_id)
        seq = torch.cat([seq, token.unsqueeze(1)], dim=1)
        yield token
        if eos_id is not None and bool(done.all()):
            return


@torch.inference_mode()
def generate(lm: LanguageModel, prompt: Tensor, max_new_tokens: int, **kwargs) -> Tensor:
    """Continue prompt (B, T0) int64 by up to `max_new_tokens` tokens: (B, T0 + n) int64.

    Keyword arguments as `stream`: temperature (0 = argmax), top_k, top_p, eos_id,
    max_positions, window_slide, use_cache, make_cache, generator.
    Rows that produced `eos_id` keep producing it (so the batch stays rectangular); generation
    stops early when every row has. Without a cache the whole window is re-run each step;
    the cache gives the same tokens for the same `generator` state. With `max_positions`
    (the model's context), generation may run past it: the model sees a sliding window of
    the last tokens, moved `window_slide` positions at a time (default max_positions // 4;
    1 = nanoGPT's crop to the last max_positions tokens at every step), the cache rebuilt
    from the window each time it moves.
    """
    tokens = list(stream(lm, prompt, max_new_tokens, **kwargs))
    if not tokens:
        return prompt
    return torch.cat([prompt, torch.stack(tokens, dim=1)], dim=1)
