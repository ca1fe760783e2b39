"""The closed-form FLOP counts against torch's own operator-level counter (`FlopCounterMode`),
on random shapes of the reference model, forward and forward + backward."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from transformer.config import ModelConfig
from transformer.models import GPT, Transformer
from transformer.models.flops import forward_flops, gpt_forward_flops, mfu, training_flops


def _config(seed: int) -> ModelConfig:
    g = torch.Generator().manual_seed(seed)
    heads = int(torch.randint(1, 4, (1,), generator=g))
    return ModelConfig.preset(
        "tiny",
        src_vocab_size=int(torch.randint(20, 60, (1,), generator=g)),
        tgt_vocab_size=int(torch.randint(20, 60, (1,), generator=g)),
        share_embeddings=False,
        d_model=8 * heads * int(torch.randint(1, 3, (1,), generator=g)),
        n_heads=heads,
        d_ff=int(torch.randint(8, 64, (1,), generator=g)),
        n_encoder_layers=int(torch.randint(1, 3, (1,), generator=g)),
        n_decoder_layers=int(torch.randint(1, 3, (1,), generator=g)),
        dropout=0.0,
    )


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


@pytest.mark.parametrize("seed", range(4))
def test_transformer_forward_and_backward(seed):
    cfg = _config(seed)
    model = Transformer(cfg)
    b, s, t = 2 + seed, 3 + 2 * seed, 4 + seed
    src = torch.randint(4, cfg.src_vocab_size, (b, s))
    tgt = torch.randint(4, cfg.tgt_vocab_size, (b, t))
    expected = forward_flops(cfg, b, s, t)
    with torch.no_grad():
        assert _counted(lambda: model(src, tgt)) == expected
    assert _counted(lambda: model(src, tgt).sum().backward()) == training_flops(expected)


@pytest.mark.parametrize("seed", range(3))
def test_gpt_forward(seed):
    cfg = _config(seed)
    model = GPT(cfg)
    idx = torch.randint(0, cfg.tgt_vocab_size, (2, 5 + seed))
    with torch.no_grad():
        assert _counted(lambda: model(idx)) == gpt_forward_flops(cfg, 2, 5 + seed)


def test_mfu_is_achieved_over_peak():
    assert mfu(3e12, 2.0, 3e12) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        mfu(1.0, 0.0, 1.0)
