"""`transformer evaluate` and `transformer fill-mask` on a BERT run: masked-token accuracy,
perplexity and the most-frequent-token baseline against a direct sentence-by-sentence
computation, on the run's fixed masks and on a peer's masked_val.json; fill-mask against
the decoding function; and configs/multi30k-bert.toml training through the CLI."""

from __future__ import annotations

import importlib.util
import itertools
import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from bert_runs import LINES, bert_config, write_text
from transformer.cli import main
from transformer.decoding.fill_mask import fill_mask
from transformer.evaluation.mlm import vocab_sha256
from transformer.rundir import RunDir
from transformer.training.mlm import IGNORE
from transformer.training.mlm_data import VAL_SEED, Masking, mask_split
from transformer.training.run import train

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "hf_bert_peer.py"


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bert")
    text = write_text(tmp / "text.txt")
    train(bert_config(text, "train.max_steps=8"), tmp / "run", tensorboard=False)
    return tmp / "run"


def direct_scores(model, inputs: list[list[int]], labels: list[list[int]], top: int):
    """One unpadded sentence at a time, the head on every position, in float64."""
    nll, correct, masked, base = 0.0, 0, 0, 0
    with torch.no_grad():
        for x, y in zip(inputs, labels):
            logp = F.log_softmax(model(torch.tensor([x]))[0].double(), -1)  # (T, V)
            for t, label in enumerate(y):
                if label != IGNORE:
                    nll -= float(logp[t, label])
                    correct += int(int(logp[t].argmax()) == label)
                    masked += 1
                    base += int(label == top)
    return nll / masked, correct / masked, base / masked, masked


def split_rows(ids: np.ndarray, offsets: np.ndarray) -> list[list[int]]:
    return [ids[a:b].tolist() for a, b in itertools.pairwise(offsets)]


def baseline_token(run: RunDir) -> int:
    """The most frequent non-special token of the training lines (the first 90% of them)."""
    lines = (LINES * 4)[: round(len(LINES) * 4 * 0.9)]
    counts = Counter(t for line in lines for t in run.tokenizer.encode(line))
    return max(counts.items(), key=lambda kv: (kv[1], -kv[0]))[0]


def run_fixed_masks(run: RunDir, seed: int):
    """The run's validation sentences (the last 10% of the lines) masked with `seed`."""
    tok = run.tokenizer
    lines = [ln for ln in (LINES * 4)[round(len(LINES) * 4 * 0.9) :] if ln]
    rows = [[tok.cls_id, *tok.encode(ln)[:22], tok.sep_id] for ln in lines]  # max_len 24
    offsets = np.cumsum([0] + [len(r) for r in rows])
    inputs, labels = mask_split(np.concatenate(rows), offsets, Masking.of(tok), seed)
    return split_rows(inputs, offsets), split_rows(labels, offsets)


@pytest.mark.parametrize("seed", [None, 7])
def test_evaluate_equals_a_direct_computation(run_dir, capsys, seed):
    extra = [] if seed is None else ["--mask-seed", str(seed)]
    assert main(["evaluate", str(run_dir), "--json", *extra]) == 0
    got = json.loads(capsys.readouterr().out)
    run = RunDir.open(run_dir)
    model = run.load_model()
    inputs, labels = run_fixed_masks(run, VAL_SEED if seed is None else seed)
    nats, acc, base, masked = direct_scores(model, inputs, labels, baseline_token(run))
    assert got["val_masked"] == masked > 0
    assert got["val_nats_per_token"] == pytest.approx(nats, rel=1e-5)
    assert got["val_perplexity"] == pytest.approx(math.exp(nats), rel=1e-5)
    assert got["val_accuracy"] == pytest.approx(acc) and got["baseline_accuracy"] == base
    assert got["baseline_token"] == run.tokenizer.tokens[baseline_token(run)]
    if seed is None:  # the trainer's final validation scored the same masks
        vals = [json.loads(ln) for ln in (run_dir / "log.jsonl").read_text().splitlines()]
        last = [v for v in vals if v["kind"] == "val"][-1]
        assert last["step"] == 8 and last["val_nll"] == pytest.approx(nats, rel=1e-5)


def test_evaluate_on_a_peer_masked_val_file(run_dir, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("hf_bert_peer", SCRIPT)
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    run = RunDir.open(run_dir)
    tok = run.tokenizer
    g = torch.Generator().manual_seed(3)
    inputs, labels = [], []
    for line in LINES[:6]:
        ids = [tok.cls_id, *tok.encode(line)[:22], tok.sep_id]
        y = [i if 0 < t < len(ids) - 1 and torch.rand((), generator=g) < 0.3 else IGNORE
             for t, i in enumerate(ids)]  # fmt: skip
        inputs.append([tok.mask_id if lab != IGNORE else i for i, lab in zip(ids, y)])
        labels.append(y)
    meta = dict(vocab_size=tok.vocab_size, vocab_sha256=peer.vocab_sha(tok.tokens),
                pad_id=tok.pad_id, mask_id=tok.mask_id, cls_id=tok.cls_id, sep_id=tok.sep_id,
                seed=3, mlm_probability=0.3, split="val")  # fmt: skip
    assert meta["vocab_sha256"] == vocab_sha256(tok.tokens)
    path = tmp_path / "masked_val.json"
    peer.write_masked_val(path, inputs, labels, meta)
    assert main(["evaluate", str(run_dir), "--json", "--masked-val", str(path)]) == 0
    got = json.loads(capsys.readouterr().out)
    nats, acc, base, masked = direct_scores(run.load_model(), inputs, labels, baseline_token(run))
    assert got["val_masked"] == masked and "masked_val.json" in got["masks"]
    assert got["val_nats_per_token"] == pytest.approx(nats, rel=1e-5)
    assert got["val_accuracy"] == pytest.approx(acc) and got["baseline_accuracy"] == base
    peer.write_masked_val(path, inputs, labels, {**meta, "vocab_sha256": "0" * 64})
    assert main(["evaluate", str(run_dir), "--masked-val", str(path)]) == 2
    assert "another vocabulary" in capsys.readouterr().err


def test_fill_mask_cli(run_dir, capsys):
    text = "A man [MASK] a horse on the [MASK]."
    assert main(["fill-mask", str(run_dir), text, "--top-k", "3", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    run = RunDir.open(run_dir)
    want = fill_mask(run.load_model(), run.tokenizer, text, top_k=3)
    assert [[c["token"] for c in m] for m in got["masks"]] == [[t for t, _ in m] for m in want]
    for m, w in zip(got["masks"], want):
        assert [c["probability"] for c in m] == pytest.approx([p for _, p in w], rel=1e-5)
    assert got["filled"].startswith("a man ") and "[MASK]" not in got["filled"]
    assert main(["fill-mask", str(run_dir), text]) == 0
    out = capsys.readouterr().out
    assert "[MASK] 1:" in out and "[MASK] 2:" in out
    assert main(["fill-mask", str(run_dir), "A man rides a horse."]) == 2
    assert "no [MASK]" in capsys.readouterr().err
    assert main(["fill-mask", str(run_dir), "a " * 30 + "[MASK]"]) == 2
    assert "the model reads 24" in capsys.readouterr().err
    assert main(["translate", str(run_dir)]) == 2  # not a translator: a one-line error
    assert "use `transformer fill-mask`" in capsys.readouterr().err


SHRINK = [
    "model.d_model=16", "model.n_heads=2", "model.d_ff=32", "model.n_encoder_layers=1",
    "model.max_len=24", "data.vocab_size=100", "data.max_tokens=96", "train.max_steps=3",
    "train.max_minutes=0", "train.warmup=1", "train.warmup_fraction=0.0", "train.val_every=3",
    "train.progress=false", "train.threads=1",
]  # fmt: skip


def test_multi30k_bert_config_trains_through_the_cli(tmp_path, capsys):
    from transformer.training.config import RunConfig

    run = RunConfig.from_toml("configs/multi30k-bert.toml")
    assert run.data.task == "mlm" and run.data.src_lang == "en" and run.train.max_minutes == 20
    assert run.train.max_steps == "auto" and run.train.optimizer == "adamw"
    m = run.model
    assert (m.d_model, m.n_encoder_layers, m.n_heads, m.d_ff, m.max_len) == (256, 4, 4, 1024, 128)
    assert (
        not m.norm_first and m.activation == "gelu" and run.data.wordpiece_criterion == "frequency"
    )
    text = write_text(tmp_path / "text.txt")
    sets = [f"data.text_file={str(text)!r}", *SHRINK]
    args = [x for s in sets for x in ("--set", s)]
    assert main(["train", "configs/multi30k-bert.toml", "--out", str(tmp_path / "r"), *args]) == 0
    assert "training finished at step 3" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "r")]) == 0
    assert "masked-token accuracy" in capsys.readouterr().out
