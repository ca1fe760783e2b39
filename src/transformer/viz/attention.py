"""The attention weights of one sentence, as the model computes them, with token labels.

    result = sentence_attention(model, tokenizer, "Ein Hund läuft im Schnee.", translator)
    result.views["cross"].weights      # (L, H, T, S) float32, each row sums to 1
    result.views["cross"].queries      # the T target tokens the rows produced
    result.views["cross"].keys         # the S source tokens

For a translation model the sentence is first translated (the translator's search); then one
teacher-forced pass `Transformer.forward(src, tgt, need_weights=True)` over the source and the
translation gives the three kinds of attention (Section 3.2.3):

- "encoder": encoder self-attention, (L, H, S, S), source tokens on both axes;
- "decoder": masked decoder self-attention, (L, H, T, T): row t is the query at decoder input
  position t, labelled with the token it produced (y_{t+1}); keys are the decoder inputs
  (<s> y_1 .. y_{T-1});
- "cross": encoder-decoder attention, (L, H, T, S): rows as in "decoder", keys the source.

For a GPT run (`transformer.models.GPT`) the text itself is the input and "decoder" is its
causal self-attention, (L, H, T, T), text tokens on both axes.

Nothing here is stored on the model: the weights come from the public `need_weights` API.
Shape legend: L layers, H heads, S source length, T target length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from transformer.models import GPT

KINDS = ("encoder", "decoder", "cross")


@dataclass(frozen=True)
class AttentionView:
    """One kind of attention for one sentence: weights (L, H, Q, K) float32 on the CPU; the
    labels of the Q query rows and of the K key columns."""

    kind: str
    weights: torch.Tensor
    queries: list[str]
    keys: list[str]

    @property
    def n_layers(self) -> int:
        return self.weights.shape[0]

    @property
    def n_heads(self) -> int:
        return self.weights.shape[1]


@dataclass(frozen=True)
class SentenceAttention:
    """What the model did with one input: the output text ("" for a GPT run, which only
    reads), the input/output token labels and the attention views by kind."""

    text: str
    output: str
    source_tokens: list[str]
    output_tokens: list[str]
    views: dict[str, AttentionView]


def token_labels(tokenizer: object, ids: Sequence[int]) -> list[str]:
    """A short printable label per token id: BPE tokens without their end-of-word marker and
    with '@@' on word-internal pieces (subword-nmt's convention); byte-level BPE tokens as
    the text they decode to; specials as <s>, </s>, <pad>, <unk>; plain ids as numbers."""
    specials = {0: "<pad>", 1: "<s>", 2: "</s>", 3: "<unk>"}
    tokens = getattr(tokenizer, "tokens", None)
    if tokens is None:  # IdTokenizer (copy task): ids are the text
        return [specials.get(i, str(i)) if i < 3 else str(i) for i in ids]
    eow = getattr(tokenizer, "end_of_word", None)
    labels = []
    for i in ids:
        if i in specials and tokens[i] in ("<pad>", "<s>", "</s>", "<unk>"):
            labels.append(specials[i])
        elif eow is not None:  # classic BPE
            tok = tokens[i]
            labels.append(tok[: -len(eow)] if tok.endswith(eow) else tok + "@@")
        elif hasattr(tokenizer, "decode_bytes"):  # ByteBPE
            labels.append(tokenizer.decode([i]))
        else:
            labels.append(tokens[i])
    return labels


def _stack(per_layer: list[torch.Tensor]) -> torch.Tensor:
    """[(1, H, Q, K)] per layer -> (L, H, Q, K) float32 on the CPU."""
    return torch.stack([w[0] for w in per_layer]).float().cpu()


@torch.inference_mode()
def seq2seq_views(
    model: nn.Module,
    src_ids: list[int],
    out_ids: list[int],
    bos_id: int,
    labels: tuple[list[str], list[str], list[str]],
) -> dict[str, AttentionView]:
    """The three views of one (source, produced output) pair. `out_ids` are the produced
    tokens (</s> included when the search finished); the decoder reads <s> + out_ids[:-1].
    labels: (source, produced, decoder inputs)."""
    device = next(model.parameters()).device
    src = torch.tensor([src_ids], dtype=torch.long, device=device)  # (1, S)
    tgt = torch.tensor([[bos_id, *out_ids[:-1]]], dtype=torch.long, device=device)  # (1, T)
    _, weights = model(src, tgt, need_weights=True)
    source, produced, inputs = labels
    return {
        "encoder": AttentionView("encoder", _stack(weights.encoder), source, source),
        "decoder": AttentionView("decoder", _stack(weights.decoder), produced, inputs),
        "cross": AttentionView("cross", _stack(weights.cross), produced, source),
    }


@torch.inference_mode()
def gpt_views(model: nn.Module, ids: list[int], labels: list[str]) -> dict[str, AttentionView]:
    """The causal self-attention of a GPT over `ids` (T,): {"decoder": (L, H, T, T)}."""
    device = next(model.parameters()).device
    idx = torch.tensor([ids], dtype=torch.long, device=device)  # (1, T)
    _, weights = model(idx, need_weights=True)
    return {"decoder": AttentionView("decoder", _stack(weights), labels, labels)}


def sentence_attention(
    model: nn.Module, tokenizer: object, text: str, translator: object | None = None
) -> SentenceAttention:
    """Translate `text` with `translator` (a `Translator` of `model`) and read the attention of
    that translation; for a GPT `model`, read the attention over `text` itself (no translator).
    Raises ValueError when the text has no tokens."""
    src_ids = list(tokenizer.encode(text))
    if not src_ids:
        raise ValueError("the text has no tokens")
    source = token_labels(tokenizer, src_ids)
    if isinstance(model, GPT):
        return SentenceAttention(text, "", source, [], gpt_views(model, src_ids, source))
    if translator is None:
        raise ValueError("a translation model needs a translator to produce the output")
    hyp = translator.translate_ids([src_ids])[0][0]
    out_ids = list(hyp.tokens) or [translator.ids.eos]
    produced = token_labels(tokenizer, out_ids)
    inputs = token_labels(tokenizer, [translator.ids.bos, *out_ids[:-1]])
    views = seq2seq_views(model, src_ids, out_ids, translator.ids.bos, (source, produced, inputs))
    output = tokenizer.decode(out_ids)
    return SentenceAttention(text, output, source, produced, views)


def select(
    view: AttentionView,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    average_heads: bool = False,
) -> list[tuple[int, int | None, torch.Tensor]]:
    """The panels of a figure or page: (layer, head or None for the mean, (Q, K) weights) for
    each chosen layer (all when None) and head (all when None), layer by layer. Raises
    ValueError for a layer or head out of range."""
    layers = list(range(view.n_layers)) if layers is None else list(layers)
    heads = list(range(view.n_heads)) if heads is None else list(heads)
    for name, chosen, count in (("layer", layers, view.n_layers), ("head", heads, view.n_heads)):
        bad = [i for i in chosen if not 0 <= i < count]
        if bad:
            raise ValueError(
                f"{view.kind} attention has {count} {name}s (0 .. {count - 1}), got {bad[0]}"
            )
    panels: list[tuple[int, int | None, torch.Tensor]] = []
    for layer in layers:
        if average_heads:
            panels.append((layer, None, view.weights[layer, heads].mean(dim=0)))
        else:
            panels.extend((layer, h, view.weights[layer, h]) for h in heads)
    return panels
