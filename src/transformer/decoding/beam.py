"""Batched beam search with Wu et al. (2016)'s length penalty (the paper's beam 4, alpha 0.6).

Vaswani et al. (2017), Section 6.1: "beam search with a beam size of 4 and length penalty
alpha = 0.6". A finished hypothesis is ranked by logprob / lp(Y), lp(Y) = ((5+|Y|)/6)^alpha,
|Y| counting the generated tokens including </s>.

Each step, per sentence, the K live beams are expanded over the vocabulary and the 2K best
(beam, token) candidates are taken (at most K of them end in </s>, so K live ones remain):
- a candidate ending in </s> among the K best is finished and goes to the sentence's pool of
  finished hypotheses, which keeps the `n_best` best ever seen (so the result is never worse
  than a hypothesis seen finishing); </s> candidates ranked below K are dropped, which makes
  beam 1 exactly greedy;
- the K best candidates not ending in </s> become the new beams (`cache.reorder` follows them);
- at a sentence's length limit its live beams join the pool unfinished;
- a sentence stops when its pool holds `n_best` hypotheses none of which the best live beam
  can still beat. The bound on the live beam is its logprob / lp(current length) by default
  (as Hugging Face `generate` with early_stopping=False), or with `exact=True` logprob /
  lp(length limit), a true upper bound (log-probabilities only fall, lp only grows), which
  makes the result identical to running every sentence to its limit.
Finished sentences leave the batch. The encoder output is repeated for each beam, except for a
model whose K beams can share their sentence's memory row (`beams_share_source`, the fast
engine's `transformer.fast.beams`).

Shape legend: B batch, N sentences still being decoded, K beam, S source length, t prefix
length, D d_model, V vocabulary.
"""

from __future__ import annotations

import torch
from torch import Tensor

from transformer.decoding.common import (
    CacheFactory,
    Hypothesis,
    LengthArg,
    Seq2SeqDecoder,
    SpecialIds,
    block_eos,
    length_penalty,
    new_cache,
    next_logits,
    search_ops,
    sentence_lengths,
)

NEG_INF = float("-inf")


class _Pool:
    """The best `n_best` finished hypotheses of one sentence, best first."""

    def __init__(self, n_best: int) -> None:
        self.n_best = n_best
        self.hyps: list[Hypothesis] = []

    def add(self, hyp: Hypothesis) -> None:
        if len(self.hyps) == self.n_best and hyp.score <= self.hyps[-1].score:
            return
        self.hyps.append(hyp)
        self.hyps.sort(key=lambda h: h.score, reverse=True)  # stable: earlier wins ties
        del self.hyps[self.n_best :]

    def worst(self) -> float:
        """Score a live beam must beat to enter the pool (-inf while it is not full)."""
        return self.hyps[-1].score if len(self.hyps) == self.n_best else NEG_INF


def _check(beam_size: int, n_best: int, alpha: float) -> None:
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive integer, got {beam_size!r}")
    if not isinstance(n_best, int) or not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size ({beam_size}), got {n_best!r}")
    if not alpha >= 0.0:
        raise ValueError(f"alpha (length penalty) must be >= 0, got {alpha!r}")


@torch.inference_mode()
def beam_search(
    model: Seq2SeqDecoder,
    src: Tensor,
    ids: SpecialIds,
    *,
    beam_size: int = 4,
    alpha: float = 0.6,
    n_best: int = 1,
    max_len: LengthArg = None,
    min_len: int | Tensor = 0,
    max_len_offset: int = 50,
    max_positions: int | None = None,
    exact: bool = False,
    use_cache: bool = True,
    make_cache: CacheFactory | None = None,
) -> list[list[Hypothesis]]:
    """Beam search over a batch. src (B, S) int64 padded with ids.pad.

    Returns, per sentence in order, its `n_best` best hypotheses (best first) with their
    log-probabilities and length-normalised scores. Length settings as in `greedy_decode`.
    """
    _check(beam_size, n_best, alpha)
    limits, mins, max_min = sentence_lengths(
        src, ids.pad, max_len, min_len, max_len_offset, max_positions
    )  # (B,), (B,), int
    k, batch, device = beam_size, src.size(0), src.device
    cache = new_cache(model, make_cache) if use_cache else None
    shared = _shares_source(model, cache)
    memory, src_pad_mask = _memory(model, src, ids.pad, 1 if shared else k)
    scores = torch.full((batch, k), NEG_INF, device=device)  # (N, K) beam logprobs
    scores[:, 0] = 0.0  # one live beam at the start: the others would duplicate it
    prefix = torch.full((batch * k, 1), ids.bos, dtype=torch.long, device=device)  # (N*K, t)
    sents = torch.arange(batch, device=device)  # original index of each live sentence, (N,)
    pools = [_Pool(n_best) for _ in range(batch)]
    step = 0
    while sents.numel():
        step += 1
        n = sents.numel()
        top, beam, token = _best_candidates(
            model, prefix, memory, src_pad_mask, cache, ids, scores, step, mins[sents], max_min
        )  # (N, 2K)
        is_eos = token.eq(ids.eos)
        _finish_eos(pools, sents, prefix, top, beam, token, is_eos, k, ids.eos, alpha)
        scores, pick = top.masked_fill(is_eos, NEG_INF).topk(k, dim=1)  # (N, K)
        src_row = torch.arange(n, device=device).unsqueeze(1) * k + beam.gather(1, pick)
        prefix = torch.cat([prefix[src_row.view(-1)], token.gather(1, pick).view(-1, 1)], 1)
        at_limit = limits[sents].le(step)  # (N,)
        _finish_at_limit(pools, sents, prefix, scores, at_limit, k, alpha)
        done = at_limit | _cannot_improve(pools, sents, scores, step, limits, alpha, exact)
        keep = (~done).nonzero().flatten()  # (N',) live sentences
        rows = src_row[keep].view(-1)  # (N'*K,) rows of the old cache feeding the new beams
        any_done = bool(done.any())
        if cache is not None and keep.numel():
            _reorder_cache(cache, rows, keep if any_done else None, shared)
        if any_done:
            beams_kept = (keep.unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            mem_kept = keep if shared else beams_kept  # (N',) or (N'*K,) memory rows
            prefix, memory, src_pad_mask = (
                prefix[beams_kept],
                memory[mem_kept],
                src_pad_mask[mem_kept],
            )
            scores, sents = scores[keep], sents[keep]
    return [pool.hyps for pool in pools]


def _memory(model, src: Tensor, pad: int, repeats: int) -> tuple[Tensor, Tensor]:
    """The encoder output and source padding mask, each row repeated `repeats` times (one
    per beam, or once when the beams share it): (B*R, S, D), (B*R, S)."""
    memory = model.encode(src)  # (B, S, D)
    src_pad_mask = src.eq(pad)  # (B, S)
    if repeats == 1:
        return memory, src_pad_mask
    return memory.repeat_interleave(repeats, 0), src_pad_mask.repeat_interleave(repeats, 0)


def _reorder_cache(cache, rows: Tensor, sentences_kept: Tensor | None, shared: bool) -> None:
    """The cache follows the new beams: rows (N'*K,) of the old cache feed them. With a shared
    source the cross-attention keys/values have one row per sentence: they keep
    `sentences_kept` (N',) when sentences left, and stay as they are otherwise."""
    if shared:
        cache.reorder_rows(rows, sentences_kept)
    else:
        cache.reorder(rows)


def _shares_source(model, cache) -> bool:
    """Whether the K beams of a sentence can read one memory row: the model says so
    (`beams_share_source`, the fast engine's cross-attention) and the cache, if any, can
    reorder its cross-attention rows by sentence (`reorder_rows`)."""
    if not getattr(model, "beams_share_source", False):
        return False
    return cache is None or hasattr(cache, "reorder_rows")


def _best_candidates(model, prefix, memory, src_pad_mask, cache, ids, scores, step, mins, max_min):
    """The 2K best (beam, token) expansions of each sentence: (logprob (N, 2K) sorted, beam
    (N, 2K), token (N, 2K)). scores (N, K) are the live beams' log-probabilities.

    A sentence's 2K best candidates over all K·V expansions lie among each beam's 2K best
    tokens (log p = logit - log Z keeps a row's order), so only (N, K, 2K) scores are formed.
    """
    n, k = scores.shape
    logits, log_z = next_logits(model, prefix, memory, src_pad_mask, cache, ids)  # (N*K, V)
    _, row_topk = search_ops(model)
    vocab = logits.size(-1)
    block_eos(logits.view(n, k, vocab), ids.eos, step, mins, max_min)
    row_top, row_token = row_topk(logits, min(2 * k, vocab))  # (N*K, W): logits.topk(W)
    width = row_top.size(-1)
    cand = scores.unsqueeze(-1) + (row_top - log_z.unsqueeze(-1)).view(n, k, width)  # (N,K,W)
    top, flat = cand.view(n, k * width).topk(min(2 * k, k * width), dim=1)  # (N, 2K) sorted
    token = row_token.view(n, k * width).gather(1, flat)
    return top, flat // width, token


def _finish_eos(
    pools: list[_Pool],
    sents: Tensor,
    prefix: Tensor,
    top: Tensor,
    beam: Tensor,
    token: Tensor,
    is_eos: Tensor,
    k: int,
    eos: int,
    alpha: float,
) -> None:
    """Move the </s> candidates ranked among the K best (and possible) into the pools.
    prefix (N*K, t) holds the beams before this step; top/beam/token/is_eos (N, 2K)."""
    rank = torch.arange(top.size(1), device=top.device)
    finishing = is_eos & rank.lt(k) & top.isfinite()  # (N, 2K)
    if not bool(finishing.any()):
        return
    for i, j in finishing.nonzero().tolist():
        tokens = [*prefix[i * k + int(beam[i, j]), 1:].tolist(), eos]
        logprob = float(top[i, j])
        score = logprob / length_penalty(len(tokens), alpha)
        pools[int(sents[i])].add(Hypothesis(tokens, logprob, score, True))


def _finish_at_limit(
    pools: list[_Pool],
    sents: Tensor,
    prefix: Tensor,
    scores: Tensor,
    at_limit: Tensor,
    k: int,
    alpha: float,
) -> None:
    """Sentences at their length limit: their possible live beams join the pool unfinished.
    prefix (N*K, t) holds the new beams; scores (N, K); at_limit (N,)."""
    for i in at_limit.nonzero().flatten().tolist():
        for j in range(k):
            logprob = float(scores[i, j])
            if logprob == NEG_INF:
                continue
            tokens = prefix[i * k + j, 1:].tolist()
            score = logprob / length_penalty(len(tokens), alpha)
            pools[int(sents[i])].add(Hypothesis(tokens, logprob, score, False))


def _cannot_improve(
    pools: list[_Pool],
    sents: Tensor,
    scores: Tensor,
    step: int,
    limits: Tensor,
    alpha: float,
    exact: bool,
) -> Tensor:
    """(N,) bool: the sentence's pool is full and no live beam can beat its worst member.
    scores (N, K) sorted best first; a live beam's logprob (<= 0) can only fall."""
    worst = torch.tensor([pools[int(s)].worst() for s in sents.tolist()], device=scores.device)
    best_live = scores[:, 0]  # (N,)
    if exact:
        bound = best_live / length_penalty(limits[sents].to(scores.dtype), alpha)
    else:
        bound = best_live / length_penalty(step, alpha)
    return worst.ge(bound) & worst.gt(NEG_INF) | best_live.eq(NEG_INF)
