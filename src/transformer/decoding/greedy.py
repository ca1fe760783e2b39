"""Batched greedy decoding: the lecture's argmax over the final softmax, one token at a time.

Every sentence stops at its own </s> (or its length limit, by default source length + 50);
finished sentences leave the batch (`cache.reorder` drops their rows), so the remaining ones
run on a smaller batch.

Shape legend: B batch, N rows still being decoded, S source length, t prefix length, D d_model,
V vocabulary.
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
    new_cache,
    next_logits,
    search_ops,
    sentence_lengths,
)


@torch.inference_mode()
def greedy_decode(
    model: Seq2SeqDecoder,
    src: Tensor,
    ids: SpecialIds,
    *,
    max_len: LengthArg = None,
    min_len: int | Tensor = 0,
    max_len_offset: int = 50,
    max_positions: int | None = None,
    use_cache: bool = True,
    make_cache: CacheFactory | None = None,
    with_scores: bool = True,
) -> list[Hypothesis]:
    """Greedy (argmax) decoding of a batch of source sentences.

    src (B, S) int64, padded with ids.pad. Returns one `Hypothesis` per sentence, in order;
    its score is the plain sum of log-probabilities. `max_len`/`max_len_offset`/
    `max_positions` bound the number of generated tokens (see `length_limits`); `min_len`
    forbids </s> before that many tokens. `max_len` and `min_len` may be (B,) tensors of
    per-sentence values. `with_scores=False` skips the log-softmax over the vocabulary (the
    argmax is the same) and leaves logprob/score NaN. The model should be in eval mode.
    """
    limits, mins, max_min = sentence_lengths(
        src, ids.pad, max_len, min_len, max_len_offset, max_positions
    )  # (B,), (B,), int
    batch = src.size(0)
    src_pad_mask = src.eq(ids.pad)  # (B, S) True = padding
    memory = model.encode(src)  # (B, S, D)
    rows = torch.arange(batch, device=src.device)  # original index of each live row, (N,)
    prefix = torch.full((batch, 1), ids.bos, dtype=torch.long, device=src.device)  # (N, t)
    logprob = torch.zeros(batch, device=src.device)  # (N,)
    cache = new_cache(model, make_cache) if use_cache else None
    row_max, _ = search_ops(model)
    results: list[Hypothesis | None] = [None] * batch
    step = 0
    while rows.numel():
        step += 1
        logits, log_z = next_logits(
            model, prefix, memory, src_pad_mask, cache, ids, normalize=with_scores
        )  # (N, V), (N,) | None
        block_eos(logits, ids.eos, step, mins[rows], max_min)
        best, token = row_max(logits)  # (N,), (N,): logits.max(dim=-1)
        if log_z is not None:
            logprob = logprob + (best - log_z)  # log p(token)
        prefix = torch.cat([prefix, token.unsqueeze(1)], dim=1)  # (N, t + 1)
        done = token.eq(ids.eos) | limits[rows].le(step)  # (N,)
        if not bool(done.any()):
            continue
        for i in done.nonzero().flatten().tolist():
            tokens = prefix[i, 1:].tolist()
            value = float(logprob[i]) if with_scores else float("nan")
            results[int(rows[i])] = Hypothesis(tokens, value, value, tokens[-1] == ids.eos)
        keep = (~done).nonzero().flatten()  # (N',)
        rows, prefix, logprob = rows[keep], prefix[keep], logprob[keep]
        memory, src_pad_mask = memory[keep], src_pad_mask[keep]
        if cache is not None and keep.numel():
            cache.reorder(keep)
    return [hyp for hyp in results if hyp is not None]
