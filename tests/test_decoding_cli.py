"""`transformer translate` / `transformer evaluate` on a small run directory built here (random
weights): order and batching of the stream, the JSON report against the library, errors."""

from __future__ import annotations

import io
import json
import math

import pytest
import torch

from transformer.cli import main
from transformer.config import ModelConfig
from transformer.decoding import SpecialIds, beam_search
from transformer.evaluation import score_translations
from transformer.tokenizers import BPE
from transformer.training.checkpoint import save_weights
from transformer.training.config import RunConfig


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run faster on one thread, and much faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TEXT = [
    "a man rides a red bike .",
    "two dogs play in the park .",
    "a woman reads a book .",
    "the children run on the beach .",
    "a dog runs .",
]
SOURCES = [
    "a dog reads .",
    "",
    "two men ride red bikes in the park .",
    "a book .",
    "the woman runs on the beach with two dogs .",
]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("run")
    bpe = BPE.train(TEXT, 20, min_frequency=1)
    bpe.save(path / "tokenizer.json")
    model_cfg = dict(
        src_vocab_size=bpe.vocab_size,
        tgt_vocab_size=bpe.vocab_size,
        d_model=32,
        n_heads=4,
        d_ff=64,
        n_encoder_layers=2,
        n_decoder_layers=2,
        max_len=64,
        share_embeddings=True,
        tie_output=False,
    )
    run = RunConfig.from_dict({"model": model_cfg, "data": {"task": "multi30k"}})
    (path / "config.toml").write_text(run.to_toml(), encoding="utf-8")
    from transformer.models import Transformer

    torch.manual_seed(3)
    save_weights(Transformer(ModelConfig(**model_cfg)).state_dict(), path / "model.safetensors")
    return path, bpe


def cli(argv, stdin="", monkeypatch=None, capsys=None):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def one_by_one(run_dir, beam):
    """Each sentence alone, straight through the library."""
    from transformer.models import Transformer
    from transformer.training.checkpoint import load_into

    path, bpe = run_dir
    cfg = RunConfig.from_toml(path / "config.toml").model
    model = Transformer(cfg).eval()
    load_into(model, path / "model.safetensors")
    out = []
    for line in SOURCES:
        ids = bpe.encode(line)
        if not ids:
            out.append("")
            continue
        hyp = beam_search(
            model,
            torch.tensor([ids]),
            SpecialIds(1, 2, 0),
            beam_size=beam,
            alpha=0.6,
            max_positions=63,
            max_len_offset=5,
        )[0][0]
        out.append(bpe.decode(hyp.tokens))
    return out, model, bpe


def test_translate_streams_in_order(run_dir, monkeypatch, capsys):
    expect, _, _ = one_by_one(run_dir, beam=3)
    code, out = cli(
        ["translate", run_dir[0], "--beam", 3, "--max-tokens", 9, "--max-len-offset", 5],
        "\n".join(SOURCES) + "\n",
        monkeypatch,
        capsys,
    )
    assert code == 0
    assert out.out.split("\n")[:-1] == expect


def test_translate_exact_stop(run_dir, monkeypatch, capsys):
    """--exact-stop reaches beam_search(exact=True) (the two stopping rules are compared on a
    scripted decoder in test_decoding.py); without it the search stops at the current length."""
    from transformer.decoding import translator

    seen, real = [], translator.beam_search

    def spy(*args, **kwargs):
        seen.append(kwargs["exact"])
        return real(*args, **kwargs)

    monkeypatch.setattr(translator, "beam_search", spy)
    argv = ["translate", run_dir[0], "--beam", 3, "--alpha", 3, "--max-len-offset", 5]
    for flags in ([], ["--exact-stop"]):
        code, _ = cli([*argv, *flags], SOURCES[0] + "\n", monkeypatch, capsys)
        assert code == 0
    assert seen == [False, True]


def test_translate_n_best(run_dir, monkeypatch, capsys):
    code, out = cli(
        ["translate", run_dir[0], "--beam", 3, "--n-best", 2, "--max-len-offset", 5],
        SOURCES[0] + "\n",
        monkeypatch,
        capsys,
    )
    lines = out.out.splitlines()
    assert code == 0 and len(lines) == 2
    scores = [float(line.split(" ||| ")[2]) for line in lines]
    assert [line.split(" ||| ")[0] for line in lines] == ["0", "0"] and scores[0] >= scores[1]


def test_evaluate_json_matches_library(run_dir, tmp_path, monkeypatch, capsys):
    hyps, model, bpe = one_by_one(run_dir, beam=1)
    refs = TEXT
    (tmp_path / "src.txt").write_text("\n".join(SOURCES) + "\n", encoding="utf-8")
    (tmp_path / "ref.txt").write_text("\n".join(refs) + "\n", encoding="utf-8")
    code, out = cli(
        [
            "evaluate",
            run_dir[0],
            "--src",
            tmp_path / "src.txt",
            "--ref",
            tmp_path / "ref.txt",
            "--beam",
            1,
            "--json",
            "--max-len-offset",
            5,
        ],
        "",
        monkeypatch,
        capsys,
    )
    assert code == 0
    report = json.loads(out.out)
    assert report["bleu"] == pytest.approx(score_translations(hyps, refs).bleu)
    nll, count = 0.0, 0
    for src, ref in zip(SOURCES, refs, strict=True):  # teacher forcing, one sentence at a time
        s = torch.tensor([bpe.encode(src) or [2]])
        y = [1, *bpe.encode(ref), 2]
        with torch.no_grad():
            logp = model(s, torch.tensor([y[:-1]]))[0].log_softmax(-1)
        nll -= sum(float(logp[t, y[t + 1]]) for t in range(len(y) - 1))
        count += len(y) - 1
    assert report["ref_tokens"] == count
    assert report["ref_perplexity"] == pytest.approx(math.exp(nll / count), rel=1e-4)


def test_errors_name_the_problem(run_dir, tmp_path, monkeypatch, capsys):
    code, out = cli(["translate", tmp_path / "nothing"], "", monkeypatch, capsys)
    assert code == 2 and "config.toml not found" in out.err
    (tmp_path / "a").write_text("x\ny\n", encoding="utf-8")
    (tmp_path / "b").write_text("x\n", encoding="utf-8")
    code, out = cli(
        ["evaluate", run_dir[0], "--src", tmp_path / "a", "--ref", tmp_path / "b"],
        "",
        monkeypatch,
        capsys,
    )
    assert code == 2 and "must be parallel" in out.err
    code, out = cli(["translate", run_dir[0], "--beam", 2, "--n-best", 3], "", monkeypatch, capsys)
    assert code == 2 and "n_best" in out.err


def test_copy_task_run_reads_token_ids(tmp_path, monkeypatch, capsys):
    from transformer.models import Transformer

    model_cfg = dict(
        src_vocab_size=20,
        tgt_vocab_size=20,
        d_model=16,
        n_heads=2,
        d_ff=32,
        n_encoder_layers=1,
        n_decoder_layers=1,
        max_len=32,
    )
    run = RunConfig.from_dict({"model": model_cfg, "data": {"task": "copy"}})
    (tmp_path / "config.toml").write_text(run.to_toml(), encoding="utf-8")
    save_weights(Transformer(ModelConfig(**model_cfg)).state_dict(), tmp_path / "model.safetensors")
    code, out = cli(
        ["translate", tmp_path, "--beam", 2, "--max-len-offset", 3],
        "5 6 7\n9 9\n",
        monkeypatch,
        capsys,
    )
    lines = out.out.splitlines()
    assert code == 0 and len(lines) == 2
    assert all(len(line.split()) <= n + 3 for line, n in zip(lines, (3, 2), strict=True))
    assert all(3 <= int(tok) < 20 for line in lines for tok in line.split())
    code, out = cli(["translate", tmp_path], "5 x\n", monkeypatch, capsys)
    assert code == 2 and "token ids" in out.err
