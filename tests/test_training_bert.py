"""BERT training (data.task = "mlm"): the batches (token budget, masking from the data position,
a fixed validation masking), the task's loss against a direct computation, a run that resumes
bit-exactly after Ctrl-C, and a run directory that opens as a BERT run."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bert_runs import LINES, bert_config, write_text
from transformer.config import ConfigError
from transformer.models import BERT
from transformer.rundir import RunDir
from transformer.tokenizers import WordPiece
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig
from transformer.training.data import build_data
from transformer.training.logging import read_log
from transformer.training.mlm import IGNORE
from transformer.training.mlm_data import Masking, MLMBatcher, mask_split, most_frequent_token
from transformer.training.run import train
from transformer.training.task import MLMTask, task_for
from transformer.training.trainer import Trainer


@pytest.fixture
def text_file(tmp_path):
    return write_text(tmp_path / "text.txt")


def ragged(rows):
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    return np.concatenate([np.asarray(r, dtype=np.int32) for r in rows]), offsets


MASKING = Masking(vocab_size=50, mask_id=4, special_ids=(0, 1, 2, 3, 4))


def test_batches_keep_the_budget_and_mask_from_the_position():
    rng = np.random.default_rng(0)
    rows = [[2, *rng.integers(5, 50, n).tolist(), 3] for n in rng.integers(1, 20, 300)]
    ids, offsets = ragged(rows)
    batcher = MLMBatcher(ids, offsets, 100, masking=MASKING, seed=3)
    seen = []
    for batch in batcher.epoch(0):
        B, T = batch.inputs.shape
        assert B * T <= 100 and max(len(rows[i]) for i in batch.indices.tolist()) == T
        chosen = batch.labels != IGNORE
        for r, i in enumerate(batch.indices.tolist()):
            row = torch.tensor(rows[i])
            assert torch.equal(batch.labels[r, : len(row)][chosen[r, : len(row)]],
                               row[chosen[r, : len(row)]])  # fmt: skip
            assert (batch.inputs[r, len(row) :] == 0).all() and not chosen[r, len(row) :].any()
            assert not chosen[r, 0] and not chosen[r, len(row) - 1]  # [CLS], [SEP]
        assert batch.n_masked == int(chosen.sum()) and batch.n_tokens == int(
            (batch.inputs != 0).sum()
        )
        seen += batch.indices.tolist()
    assert sorted(seen) == list(range(300))  # each sentence once an epoch
    # A batch is the same whether reached from the start or resumed at its position.
    first = [b for _, b in zip(range(4), batcher.iterate((1, 0)))]
    again = next(MLMBatcher(ids, offsets, 100, masking=MASKING, seed=3).iterate((1, 3)))
    assert torch.equal(first[3].inputs, again.inputs) and torch.equal(first[3].labels, again.labels)
    # New masks every epoch (dynamic masking); another seed, other batches.
    e0 = {tuple(b.indices.tolist()): b.labels for b in batcher.epoch(0)}
    e1 = {tuple(b.indices.tolist()): b.labels for b in batcher.epoch(1)}
    same = [k for k in e0 if k in e1]
    assert all(not torch.equal(e0[k], e1[k]) for k in same if e0[k].numel() > 40)


def test_masked_rate_over_a_split_and_fixed_validation_masks():
    rng = np.random.default_rng(1)
    rows = [[2, *rng.integers(5, 50, n).tolist(), 3] for n in rng.integers(5, 30, 2000)]
    ids, offsets = ragged(rows)
    inputs, labels = mask_split(ids, offsets, MASKING, seed=7)
    again = mask_split(ids, offsets, MASKING, seed=7)
    assert np.array_equal(inputs, again[0]) and np.array_equal(labels, again[1])
    n = len(ids) - 2 * len(rows)  # non-special tokens
    m = int((labels != IGNORE).sum())
    assert abs(m - 0.15 * n) < 5 * (n * 0.15 * 0.85) ** 0.5
    assert np.array_equal(labels[labels != IGNORE], ids[labels != IGNORE])
    assert most_frequent_token(np.array([2, 7, 7, 9, 9, 3, 3, 3]), {2, 3}) == 7  # tie: smallest


def test_mlm_loss_is_the_mean_cross_entropy_of_the_chosen():
    torch.manual_seed(0)
    from transformer.models.bert import bert_config as small

    model = BERT(small(src_vocab_size=50, d_model=16, n_heads=2, d_ff=32, n_encoder_layers=1,
                       max_len=16, dropout=0.0, attention_dropout=0.0)).eval()  # fmt: skip
    rows = [[2, 5, 6, 7, 8, 3], [2, 9, 10, 3], [2, 11, 12, 13, 14, 15, 16, 3]]
    batch = next(iter(MLMBatcher(*ragged(rows), 64, masking=MASKING, seed=5)))
    with torch.no_grad():
        loss, nll = MLMTask().loss(model, batch, model.config, torch.device("cpu"), False, 0.0)
        logits = model(batch.inputs)  # (B, T, V): the head on every position
    direct = F.cross_entropy(logits.flatten(0, 1), batch.labels.flatten(), reduction="sum",
                             ignore_index=IGNORE)  # fmt: skip
    assert float(nll) == pytest.approx(float(direct), rel=1e-5) and float(loss) == float(nll)
    assert MLMTask().counts([batch])[0] == batch.n_masked > 0


@pytest.mark.parametrize(
    "override,message",
    [
        ("data.task='bert'", "data.task must be one of"),
        ("data.wordpiece_criterion='bpe'", "data.wordpiece_criterion must be one of"),
        ("data.n_segments=-1", "data.n_segments must be an integer >= 0"),
        ("data.vocab_size=0", "data.vocab_size must be a positive integer"),
    ],
)
def test_config_errors(text_file, override, message):
    with pytest.raises(ConfigError, match=message):
        bert_config(text_file, override)


def test_mlm_exact_resume_is_bit_identical(tmp_path, text_file):
    """Stopped by Ctrl-C at step 6, then resumed: the weights equal the uninterrupted run's
    bit for bit (the masks follow from the data position, dropout from the saved RNG)."""
    run = bert_config(text_file)
    straight = train(run, tmp_path / "a", tensorboard=False)
    assert straight.status == "finished" and straight.step == 12
    (tmp_path / "b").mkdir()
    data, model_cfg = build_data(run, tmp_path / "b")
    torch.manual_seed(run.train.seed)
    model = task_for(run.data).build_model(model_cfg)
    calls = {"n": 0}

    def interrupt_on_sixth(module, args, kwargs):
        if module.training:
            calls["n"] += 1
            if calls["n"] == 6:
                os.kill(os.getpid(), signal.SIGINT)  # as a user's Ctrl-C

    model.register_forward_pre_hook(interrupt_on_sixth, with_kwargs=True)
    run_b = RunConfig(model_cfg, run.data, run.train)
    (tmp_path / "b" / "config.toml").write_text(run_b.to_toml())
    half = Trainer(run_b, tmp_path / "b", data, model, tensorboard=False).fit()
    assert half.status == "interrupted" and half.step == 6
    resumed = train(run, tmp_path / "b", resume=True, tensorboard=False)
    assert resumed.step == 12
    a = ckpt.load_weights(tmp_path / "a" / "model.safetensors")
    b = ckpt.load_weights(tmp_path / "b" / "model.safetensors")
    assert sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)
    record = next(iter(read_log(tmp_path / "a", "data")))
    assert record["train_sentences"] + record["skipped_empty"] == round(len(LINES) * 4 * 0.9)
    assert record["skipped_empty"] == 3 and record["val_sentences"] == 3
    assert record["batches_per_epoch"] < 12  # the runs cross an epoch boundary
    vals = list(read_log(tmp_path / "a", "val"))
    assert vals and all(v["val_loss"] == pytest.approx(v["val_nll"]) for v in vals)


def test_mlm_run_directory_opens_as_bert(tmp_path, text_file):
    run = bert_config(text_file, "train.max_steps=4", "data.n_segments=0")
    train(run, tmp_path / "r", tensorboard=False)
    opened = RunDir.open(tmp_path / "r")
    assert opened.is_mlm and isinstance(opened.tokenizer, WordPiece)
    model = opened.load_model(average=2)
    assert isinstance(model, BERT) and model.segment is None and not model.training
    assert model.config.src_vocab_size == opened.tokenizer.vocab_size <= 120


@pytest.mark.parametrize("kind", ["json", "vocab.txt"])
def test_a_given_tokenizer_is_used(tmp_path, text_file, kind):
    tok = WordPiece.train(LINES, 90)
    path = tmp_path / ("given.json" if kind == "json" else "vocab.txt")
    tok.save(path) if kind == "json" else tok.write_vocab(path)
    run = bert_config(text_file, f"data.tokenizer={str(path)!r}")
    (tmp_path / "r").mkdir()
    data, model_cfg = build_data(run, tmp_path / "r")
    assert WordPiece.load(tmp_path / "r" / "tokenizer.json").tokens == tok.tokens
    assert model_cfg.src_vocab_size == tok.vocab_size == data.tokenizer.vocab_size
    first = [tok.cls_id, *tok.encode(LINES[0])[:22], tok.sep_id]  # cut to max_len 24
    assert data.train.ids[: len(first)].tolist() == first
    bad = tmp_path / "bpe.json"
    bad.write_text('{"format": "transformer.tokenizers.BPE", "version": 1}')
    with pytest.raises(ValueError, match="WordPiece"):
        build_data(bert_config(text_file, f"data.tokenizer={str(bad)!r}"), tmp_path / "s")


def test_auto_schedule_trial_leaves_no_trace(tmp_path, text_file, monkeypatch):
    """max_steps "auto" (the config's mode): the discarded trial steps rewind the data
    position, so the masks too; the fitted figures given explicitly train the same weights."""
    from test_training_budget import FakeClock

    FakeClock().install(monkeypatch)
    auto = ["train.max_steps='auto'", "train.max_minutes=3.0", "train.warmup_fraction=0.1"]
    train(bert_config(text_file, *auto), tmp_path / "a", tensorboard=False)
    fitted = RunConfig.from_toml(tmp_path / "a" / "config.toml").train
    assert fitted.max_steps > 12  # crosses epochs
    monkeypatch.undo()
    torch.set_num_threads(1)
    explicit = [f"train.max_steps={fitted.max_steps}", f"train.warmup={fitted.warmup}"]
    train(bert_config(text_file, *explicit), tmp_path / "b", tensorboard=False)
    a = ckpt.load_weights(tmp_path / "a" / "model.safetensors")
    b = ckpt.load_weights(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)
