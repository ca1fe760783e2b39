"""Properties of Transformer and GPT that follow from the paper's masks, checked in float64:
causality, invisible source padding, batch == one sentence at a time, cached == full decoding.
"""

from __future__ import annotations

import pytest
import torch

from transformer.config import ModelConfig
from transformer.models import GPT, KVCache, Transformer

PAD = 0
TOL = 1e-12


def make(model_cls, **overrides):
    values = dict(
        src_vocab_size=41,
        tgt_vocab_size=41,
        d_model=24,
        n_heads=3,
        d_ff=40,
        n_encoder_layers=2,
        n_decoder_layers=2,
        max_len=40,
        pad_id=PAD,
    )
    cfg = ModelConfig.from_dict({**values, **overrides})
    return model_cls(cfg).double().eval()


def ids(batch: int, length: int, vocab: int = 41) -> torch.Tensor:
    return torch.randint(1, vocab, (batch, length))


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


@pytest.mark.parametrize("norm_first", [False, True])
def test_target_token_changes_no_earlier_logit(norm_first):
    model = make(Transformer, norm_first=norm_first)
    src, tgt = ids(2, 6), ids(2, 8)
    with torch.no_grad():
        base = model(src, tgt)
        for t in (1, 3, 7):
            changed = tgt.clone()
            changed[:, t] = changed[:, t] % 40 + 1  # a different non-pad id
            out = model(src, changed)
            assert max_diff(out[:, :t], base[:, :t]) <= TOL
            assert max_diff(out[:, t:], base[:, t:]) > 1e-6  # position t itself does change


def test_gpt_is_causal():
    model = make(GPT, norm_first=True)
    x = ids(3, 9)
    with torch.no_grad():
        base = model(x)
        changed = x.clone()
        changed[:, 5] = changed[:, 5] % 40 + 1
        out = model(changed)
    assert max_diff(out[:, :5], base[:, :5]) <= TOL
    assert max_diff(out[:, 5:], base[:, 5:]) > 1e-6


def test_padded_source_positions_change_nothing():
    """Whatever sits at padded source positions (here: a random, non-zero pad embedding and
    extra padding columns) changes no logit."""
    model = make(Transformer, share_embeddings=False)  # pad row not tied to the output layer
    src, tgt = ids(3, 7), ids(3, 5)
    src[1, 4:] = PAD
    src[2, 2:] = PAD
    with torch.no_grad():
        base = model(src, tgt)
        longer = torch.cat([src, torch.full((3, 4), PAD)], dim=1)  # more padding columns
        assert max_diff(model(longer, tgt), base) <= TOL
        model.src_embed.weight[PAD].normal_()  # the pad vector is no longer zero
        assert max_diff(model(src, tgt), base) <= TOL
        src[2, 1] = PAD  # a real token turned into padding does change the logits
        assert max_diff(model(src, tgt)[2], base[2]) > 1e-6


def test_batch_rows_equal_one_sentence_at_a_time():
    model = make(Transformer, norm_first=False)
    src_lengths, tgt_lengths = [7, 3, 5, 1], [6, 2, 6, 4]
    src = torch.full((4, 7), PAD)
    tgt = torch.full((4, 6), PAD)
    for i, (s, t) in enumerate(zip(src_lengths, tgt_lengths)):
        src[i, :s] = ids(1, s)[0]
        tgt[i, :t] = ids(1, t)[0]
    with torch.no_grad():
        batch = model(src, tgt)
        for i, (s, t) in enumerate(zip(src_lengths, tgt_lengths)):
            alone = model(src[i : i + 1, :s], tgt[i : i + 1, :t])
            assert max_diff(batch[i, :t], alone[0]) <= TOL


@pytest.mark.parametrize("chunks", [[1] * 7, [3, 1, 2, 1], [7]])
@pytest.mark.parametrize("norm_first", [False, True])
def test_cached_decoding_equals_full_decoding(chunks, norm_first):
    model = make(Transformer, norm_first=norm_first)
    src, tgt = ids(3, 6), ids(3, 7)
    src[1, 3:] = PAD
    with torch.no_grad():
        memory = model.encode(src)
        full = model.decode(tgt, memory, src.eq(PAD))
        cache, pieces, start = KVCache(), [], 0
        for n in chunks:
            assert cache.length == start
            pieces.append(model.decode(tgt[:, start : start + n], memory, src.eq(PAD), cache))
            start += n
    assert cache.length == 7
    assert max_diff(torch.cat(pieces, dim=1), full) <= TOL


def test_cache_reorder_follows_beam_reordering():
    """Decode 3 steps, reorder/drop batch rows as a beam search would, decode 3 more: the
    logits equal full decoding of the reordered sentences."""
    model = make(Transformer)
    src, tgt = ids(3, 5), ids(3, 6)
    src[2, 2:] = PAD
    index = torch.tensor([2, 0, 0])  # drop row 1, duplicate row 0, move row 2 first
    with torch.no_grad():
        memory, pad = model.encode(src), src.eq(PAD)
        cache = KVCache()
        model.decode(tgt[:, :3], memory, pad, cache)
        cache.reorder(index)
        memory, pad = memory[index], pad[index]
        new_tail = ids(3, 3)
        out = model.decode(new_tail, memory, pad, cache)
        full_tgt = torch.cat([tgt[index, :3], new_tail], dim=1)
        full = model(src[index], full_tgt)
    assert max_diff(out, full[:, 3:]) <= TOL


def test_gpt_cached_equals_full_and_reorders():
    model = make(GPT, positional="learned")
    x = ids(2, 8)
    with torch.no_grad():
        full = model(x)
        cache = KVCache()
        steps = [model(x[:, :2], cache=cache)] + [
            model(x[:, t : t + 1], cache=cache) for t in range(2, 8)
        ]
        assert max_diff(torch.cat(steps, dim=1), full) <= TOL
        cache.reorder(torch.tensor([1]))
        nxt = ids(1, 1)
        out = model(nxt, cache=cache)
        expected = model(torch.cat([x[1:], nxt], dim=1))[:, -1:]
    assert max_diff(out, expected) <= TOL


def test_attention_weights_on_request():
    model = make(Transformer)
    src, tgt = ids(2, 5), ids(2, 4)
    src[1, 3:] = PAD
    with torch.no_grad():
        logits, w = model(src, tgt, need_weights=True)
        assert max_diff(logits, model(src, tgt)) <= TOL
    assert len(w.encoder) == len(w.decoder) == len(w.cross) == 2
    assert w.encoder[0].shape == (2, 3, 5, 5) and w.cross[1].shape == (2, 3, 4, 5)
    for maps in (w.encoder, w.decoder, w.cross):
        for m in maps:
            torch.testing.assert_close(m.sum(-1), torch.ones_like(m.sum(-1)))
    assert torch.all(w.cross[0][1, :, :, 3:] == 0)  # padded source keys get weight 0
    assert torch.all(w.decoder[0].triu(1) == 0)  # no weight on future target positions


def test_bad_inputs_raise_clear_errors():
    model = make(Transformer)
    with pytest.raises(ValueError, match="src must be a"):
        model(torch.rand(2, 3), ids(2, 3))
    with pytest.raises(ValueError, match="max_len=40"):
        model(ids(1, 41), ids(1, 2))
    with pytest.raises(ValueError, match="int64"):
        KVCache().reorder(torch.tensor([0], dtype=torch.int32))
    memory = model.encode(ids(2, 3))
    with pytest.raises(ValueError, match="src_pad_mask"):
        model.decode(ids(2, 2), memory, torch.zeros(2, 1, 1, 3, dtype=torch.bool))


def test_dropout_only_in_training():
    """Dropout (embedding sums and sub-layer outputs) acts in train mode only; with P_drop = 0
    training mode computes exactly the eval-mode function."""
    src, tgt = ids(2, 5), ids(2, 4)
    model = make(Transformer, dropout=0.3)
    with torch.no_grad():
        eval_out = model(src, tgt)
        model.train()
        a, b = model(src, tgt), model(src, tgt)
    assert max_diff(a, b) > 1e-3 and max_diff(a, eval_out) > 1e-3
    no_drop = make(Transformer, dropout=0.0)
    with torch.no_grad():
        expected = no_drop(src, tgt)
        assert max_diff(no_drop.train()(src, tgt), expected) <= TOL
