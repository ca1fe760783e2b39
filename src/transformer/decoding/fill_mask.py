"""Fill in the blanks with a masked language model (BERT, Devlin et al. 2019):

    fill_mask(model, tokenizer, "A man in an orange hat [MASK] at something.", top_k=5)
    -> [[("looks", 0.41), ("stares", 0.12), ...]]          # one list per [MASK]

The sentence is encoded as BERT's input ([CLS] ... [SEP], the text "[MASK]" is the mask
token); for each mask the `top_k` tokens of highest probability (softmax of its logits over
the whole vocabulary) come back best first.
"""

from __future__ import annotations

import torch


def fill_mask(model, tokenizer, text: str, top_k: int = 5) -> list[list[tuple[str, float]]]:
    """Top-k (token, probability) per [MASK] of `text`, in sentence order.

    `model(ids)` must return logits (1, T, V) (e.g. `transformer.models.BERT`); `tokenizer`
    is a `WordPiece`. Raises ValueError for a text without [MASK], one longer than the
    model's `config.max_len` positions, or a bad `top_k`.
    """
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    ids = tokenizer.encode(text, add_special_tokens=True)
    where = [i for i, t in enumerate(ids) if t == tokenizer.mask_id]
    if not where:
        raise ValueError("the sentence has no [MASK] token to fill in")
    max_len = model.config.max_len
    if len(ids) > max_len:
        raise ValueError(
            f"the sentence is {len(ids)} tokens with [CLS]/[SEP]; the model reads {max_len}"
        )
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(torch.tensor([ids], device=device))[0, where]  # (M, V)
    finally:
        model.train(was_training)
    probs = torch.softmax(logits.float(), dim=-1)
    values, indices = probs.topk(min(top_k, probs.size(-1)), dim=-1)  # (M, k)
    return [
        [(tokenizer.tokens[i], float(p)) for p, i in zip(row_p.tolist(), row_i.tolist())]
        for row_p, row_i in zip(values, indices)
    ]
