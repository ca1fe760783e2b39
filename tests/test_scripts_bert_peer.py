"""scripts/hf_bert_peer.py: the most-frequent-token baseline on a hand-made case, the fixed
validation masking (seeded, specials never chosen, a file that round-trips and names its
vocabulary), and a few seconds' run whose results.json is checked against our own WordPiece
re-tokenising the same lines."""

import importlib.util
import json
import math
import random
from collections import Counter
from pathlib import Path

import pytest
import torch

from conftest import corpus_dir

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "hf_bert_peer.py"
PAD, UNK, CLS, SEP, MASK = range(5)  # our WordPiece's special ids


@pytest.fixture(scope="module")
def peer():
    spec = importlib.util.spec_from_file_location("hf_bert_peer", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _hf():
    pytest.importorskip("transformers", reason="the peer needs transformers (.[bench])")
    pytest.importorskip("tokenizers", reason="the peer needs tokenizers")


def test_baseline_is_the_most_frequent_non_special_token(peer):
    specials = {PAD, UNK, CLS, SEP, MASK}
    # [PAD] outnumbers every word; 7 occurs 4 times, 9 three times, 8 twice.
    train = [[CLS, 7, 9, 7, SEP, PAD, PAD, PAD], [CLS, 8, 7, SEP, PAD, PAD], [CLS, 9, 7, 8, 9, SEP]]
    assert peer.most_frequent_token(train, specials) == 7
    tie = [[CLS, 12, 11, SEP], [11, 12]]
    assert peer.most_frequent_token(tie, specials) == 11  # the smaller id
    ig = peer.IGNORE
    labels = [[ig, 7, ig, 9, ig], [ig, ig, ig], [ig, 7, 7, 8, ig, 7]]  # 6 chosen, four of them 7
    assert peer.baseline_accuracy(labels, 7) == (4, 6)
    assert peer.baseline_accuracy(labels, 9) == (1, 6)
    assert peer.baseline_accuracy([[ig, ig]], 7) == (0, 0)
    with pytest.raises(SystemExit):
        peer.most_frequent_token([[CLS, SEP]], specials)


@pytest.mark.parametrize("warmup_frac", [0.1, 0.5])
def test_rate_rises_then_falls_on_the_clock(peer, warmup_frac):
    for elapsed in [0.0, 6.0, 30.0, 60.0, 90.0, 120.0, 150.0]:
        p = min(elapsed / 120.0, 1.0)
        want = p / warmup_frac if p < warmup_frac else (1 - p) / (1 - warmup_frac)
        assert peer._rate(elapsed, 120.0, 1e-3, warmup_frac) == pytest.approx(1e-3 * want)


def test_batches_hold_every_sentence_once_within_the_budget(peer):
    rng = random.Random(0)
    seqs = [[CLS] + [9] * rng.randrange(0, 40) + [SEP] for _ in range(300)]
    chunks = peer.batches(seqs, 128, random.Random(1))
    assert sorted(i for c in chunks for i in c) == list(range(300))
    assert all(len(c) * max(len(seqs[i]) for i in c) <= 128 for c in chunks)


def _tokenizer(peer, tmp_path, lines):
    from transformer.tokenizers import WordPiece

    WordPiece.train(lines, 200, criterion="frequency").save(tmp_path / "wp.json")
    return peer.load_tokenizer(str(tmp_path / "wp.json"), tmp_path, [], 0, False)


def test_the_three_tokenizer_files_give_one_tokenizer(peer, tmp_path):
    _hf()
    lines = ["Two young, White males are outside near many bushes.", "A man in an orange hat."]
    hf, info = _tokenizer(peer, tmp_path, lines * 5)  # our WordPiece JSON
    lines.append("Ünknown wörds?")  # accents stripped; words the vocabulary lacks
    want = peer.encode(hf, lines, 128)
    for name in ("tokenizer.json", "vocab.txt"):
        (tmp_path / name).rename(tmp_path / f"given-{name}")
        other, other_info = peer.load_tokenizer(
            str(tmp_path / f"given-{name}"), tmp_path, [], 0, False
        )
        assert other_info["vocab_sha256"] == info["vocab_sha256"]
        assert peer.encode(other, lines, 128) == want


def test_validation_masking_is_fixed_and_round_trips(peer, tmp_path):
    _hf()
    words = ["a", "man", "in", "an", "orange", "hat", "at", "two", "dogs", "play", "grass"]
    rng = random.Random(3)
    lines = [" ".join(rng.choice(words) for _ in range(rng.randrange(1, 25))) for _ in range(400)]
    hf, info = _tokenizer(peer, tmp_path, lines)
    seqs = peer.encode(hf, lines, 16)
    assert all(s[0] == CLS and s[-1] == SEP and len(s) <= 16 for s in seqs)
    inputs, labels = peer.mask_validation(hf, seqs, 7, 0.15)
    assert (inputs, labels) == peer.mask_validation(hf, seqs, 7, 0.15)  # seeded
    assert (inputs, labels) != peer.mask_validation(hf, seqs, 8, 0.15)
    chosen = 0
    for x, y, s in zip(inputs, labels, seqs, strict=True):
        assert len(x) == len(y) == len(s)
        for xi, yi, si in zip(x, y, s, strict=True):
            if yi == peer.IGNORE:
                assert xi == si
            else:
                assert yi == si and si > MASK  # specials are never chosen
                assert xi == MASK or xi > MASK  # no [PAD]/[CLS]/... put in a sentence
                chosen += 1
    words_total = sum(len(s) - 2 for s in seqs)
    assert abs(chosen / words_total - 0.15) < 0.03
    path = tmp_path / "masked.json"
    peer.write_masked_val(path, inputs, labels, {"vocab_sha256": info["vocab_sha256"]})
    got_x, got_y, meta = peer.read_masked_val(str(path), info["vocab_sha256"])
    assert (got_x, got_y, meta["n_sentences"]) == (inputs, labels, len(lines))
    with pytest.raises(SystemExit, match="another vocabulary"):
        peer.read_masked_val(str(path), "0" * 64)
    # the file names the vocabulary as our side can compute it: vocab.txt in id order
    tokens = (tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert info["vocab_sha256"] == peer.vocab_sha(tokens) and len(tokens) == info["vocab_size"]


def test_a_few_seconds_run_writes_the_results(peer, tmp_path):
    _hf()
    root = corpus_dir("multi30k").parent
    from transformer.data.corpus import read_lines
    from transformer.tokenizers import WordPiece

    out = tmp_path / "run"
    argv = ["--out", str(out), "--data-dir", str(root), "--budget-min", "0.05",
            "--limit-train", "500", "--limit-val", "50", "--vocab", "1000", "--d-model", "32",
            "--layers", "1", "--heads", "2", "--d-ff", "64", "--max-tokens", "1024",
            "--threads", str(torch.get_num_threads()), "--no-save"]  # fmt: skip
    res = json.loads(json.dumps(peer.run(peer.parse_args(argv))))
    assert res == json.loads((out / "results.json").read_text())
    for key in ("cpu", "cores", "threads", "torch", "transformers", "load_avg_start"):
        assert key in res["machine"]
    assert res["precision"] == "fp32" and res["steps"] > 0 and res["tokens_seen"] > 0
    assert 0 < res["minutes"] <= 0.05 + 0.05  # the loop stops at the first step past the budget
    assert res["tokens_per_s"] == pytest.approx(res["tokens_seen"] / (60 * res["minutes"]))
    assert 0 <= res["val_accuracy"] <= 1 and 1 < res["val_ppl"] < 10 * 1000
    assert math.log(res["val_ppl"]) == pytest.approx(res["val_nll"])
    # Independently: our WordPiece re-tokenises the lines; the masked file holds our encoding,
    # and the baseline is our count's most frequent word scored at the file's chosen positions.
    ours = WordPiece.load(out / "wordpiece.json")
    train = read_lines(root / "multi30k" / "train.en.gz")[:500]
    val = read_lines(root / "multi30k" / "val.en.gz")[:50]
    masked = json.loads((out / "masked_val.json").read_text())
    assert masked["vocab_sha256"] == peer.vocab_sha(ours.tokens)
    for line, x, y in zip(val, masked["input_ids"], masked["labels"], strict=True):
        assert [yi if yi != -100 else xi for xi, yi in zip(x, y)] == ours.encode(line, True)
    counts = Counter(t for line in train for t in ours.encode(line) if t not in ours.special_ids)
    top = max(counts.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    chosen = [t for row in masked["labels"] for t in row if t != -100]
    assert res["baseline_token_id"] == top and res["baseline_token"] == ours.tokens[top]
    assert res["baseline_accuracy"] == pytest.approx(chosen.count(top) / len(chosen))
    assert res["val_masked"] == len(chosen)
