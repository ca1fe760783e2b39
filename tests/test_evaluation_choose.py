"""Choosing decoding settings on validation data: the staged search against a brute force over
the whole product (a separable stubbed score), the weight options, and `evaluate --choose` on a
tiny trained copy-task run: the record, its use by `evaluate` / `translate`, flags overriding."""

from __future__ import annotations

import io
import itertools
import json

import pytest
import torch

from transformer.cli import main
from transformer.evaluation.choose import Grid, choose, weight_options
from transformer.rundir import DecodingChoice, RunDir, RunOpenError
from transformer.training.config import RunConfig
from transformer.training.copy_task import copy_sequences
from transformer.training.run import train

WEIGHTS = [("latest", 0), ("latest", 3), ("latest", 5), ("best", 0)]
W_SCORE = {("latest", 0): 1.0, ("latest", 3): 1.5, ("latest", 5): 1.2, ("best", 0): 0.3}
B_SCORE = {1: 0.0, 4: 2.0, 6: 2.6, 8: 2.4}


def separable(choice: DecodingChoice) -> dict[str, float]:
    """A score whose parts add up, so the staged search must find the product's optimum."""
    bleu = W_SCORE[(choice.weights, choice.average)] + B_SCORE[choice.beam]
    if choice.beam > 1:
        bleu += -((choice.alpha - 1.6) ** 2) + (0.5 if choice.exact_stop else 0.0)
    return {"bleu": bleu, "chrf": 0.0, "bleu_lc": 0.0}


def test_staged_search_finds_the_optimum_of_a_separable_score() -> None:
    seen: list[DecodingChoice] = []

    def score(choice):
        seen.append(choice)
        return separable(choice)

    best, candidates = choose(score, WEIGHTS, Grid())
    alphas = (0.6, 1.0, 1.2, 1.4, 1.6, 2.0)  # the grid's, and stage 4's steps around 1.4
    product = [
        DecodingChoice(beam=b, alpha=a, exact_stop=s, weights=w, average=n)
        for (w, n), b, a, s in itertools.product(WEIGHTS, (4, 6, 8), alphas, (False, True))
    ]
    want = max(product, key=lambda c: separable(c)["bleu"])
    assert best.choice == want == DecodingChoice(6, 1.6, True, "latest", 3)
    assert best.scores["bleu"] == max(c.scores["bleu"] for c in candidates)
    stages = [c.stage for c in candidates]
    assert stages == ["weights"] * 4 + ["search"] * 8 + ["beam"] * 2 + ["alpha"] * 2
    assert len(seen) == len(candidates) == len(set(seen))  # nothing decoded twice


def test_ties_keep_the_earlier_cheaper_candidate() -> None:
    best, candidates = choose(lambda c: {"bleu": 5.0}, [("latest", 0)], Grid(refine=0.0))
    assert best is candidates[0] and best.choice.beam == 1


def test_a_fixed_beam_weighs_the_checkpoints_with_it() -> None:
    best, candidates = choose(separable, WEIGHTS[:2], Grid(beams=(6,), alphas=(1.4,)))
    assert {c.choice.beam for c in candidates} == {6}
    assert best.choice == DecodingChoice(6, 1.4, True, "latest", 3)


def test_weight_options_follow_the_checkpoints_on_disk() -> None:
    grid = Grid()
    assert weight_options(grid, [3, 6, 9, 12, 15], 9) == WEIGHTS
    assert weight_options(grid, [3, 6, 9, 12, 15], 15) == WEIGHTS[:3]
    assert weight_options(grid, [3, 6, 9], None) == WEIGHTS[:2]
    assert weight_options(grid, [], None) == WEIGHTS[:1]
    with pytest.raises(ValueError, match="at least one value for beams"):
        Grid(beams=())


# ---- on a tiny trained run ---------------------------------------------------------------
CONFIG = {
    "model": {
        "preset": "tiny",
        "src_vocab_size": 12,
        "tgt_vocab_size": 12,
        "d_model": 32,
        "n_heads": 2,
        "d_ff": 64,
        "n_encoder_layers": 1,
        "n_decoder_layers": 1,
        "dropout": 0.0,
        "max_len": 32,
    },
    "data": {"task": "copy", "copy_train_size": 400, "copy_val_size": 8, "max_tokens": 256},
    "train": {
        "max_steps": 60,
        "warmup": 10,
        "lr_scale": 1.0,
        "val_every": 20,
        "save_every": 10,
        "log_every": 20,
        "keep_last": 3,
        "progress": False,
        "device": "cpu",
        "threads": 1,
    },
}


@pytest.fixture(scope="module")
def run_path(tmp_path_factory):
    before = torch.get_num_threads()
    root = tmp_path_factory.mktemp("choose")
    train(RunConfig.from_dict(CONFIG), root / "run", tensorboard=False)
    seqs = copy_sequences(12, 12, 3, 7, seed=99)
    (root / "src.txt").write_text("".join(" ".join(map(str, s)) + " 2\n" for s in seqs))
    (root / "ref.txt").write_text("".join(" ".join(map(str, s)) + "\n" for s in seqs))
    yield root
    torch.set_num_threads(before)


def cli(argv, monkeypatch, capsys, stdin=""):
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main([str(a) for a in argv])
    return code, capsys.readouterr()


def evaluate_json(root, monkeypatch, capsys, *flags):
    argv = ["evaluate", root / "run", "--src", root / "src.txt", "--ref", root / "ref.txt"]
    code, out = cli([*argv, "--json", "--threads", 1, *flags], monkeypatch, capsys)
    assert code == 0, out.err
    return json.loads(out.out)


SMALL_GRID = ("--beams", "2,3", "--alphas", "0.6,1.2", "--averages", "1,2")


def test_choose_records_the_best_and_evaluate_and_translate_use_it(
    run_path, monkeypatch, capsys
) -> None:
    root = run_path
    argv = ["evaluate", root / "run", "--src", root / "src.txt", "--ref", root / "ref.txt"]
    code, out = cli([*argv, "--choose", "--threads", 1, *SMALL_GRID], monkeypatch, capsys)
    assert code == 0, out.err
    assert "recorded in" in out.out and "choose [weights]" in out.err
    record = json.loads((root / "run" / "decoding.json").read_text())
    candidates = record["candidates"]
    assert len(candidates) >= 2 + 4  # two weight options, 2 alphas x 2 stopping rules
    top = max(candidates, key=lambda c: c["bleu"])  # max() keeps the first of equals
    assert record["settings"] == top["settings"] and record["score"] == top["bleu"]
    assert record["checkpoint_steps"][-3:] == [40, 50, 60]
    chosen = DecodingChoice.from_dict(record["settings"])
    # A candidate's score is what `evaluate` reports with those settings as flags.
    some = DecodingChoice.from_dict(candidates[-1]["settings"])
    stop = "--exact-stop" if some.exact_stop else "--no-exact-stop"
    weights = ["--average", some.average] if some.average else ["--weights", some.weights]
    flags = ["--beam", some.beam, "--alpha", some.alpha, stop, *weights]
    report = evaluate_json(root, monkeypatch, capsys, *flags)
    assert report["bleu"] == pytest.approx(candidates[-1]["bleu"])
    assert "decoding.json" not in report["decoding_from"]
    # No flags: the recorded settings, and the report says so.
    report = evaluate_json(root, monkeypatch, capsys)
    assert report["decoding"] == chosen.to_dict() and report["bleu"] == pytest.approx(top["bleu"])
    assert "decoding.json, chosen on" in report["decoding_from"]
    # A flag overrides its setting only.
    report = evaluate_json(root, monkeypatch, capsys, "--beam", 1)
    assert report["decoding"] == {**chosen.to_dict(), "beam": 1}
    assert "beam: --beam" in report["decoding_from"]
    # translate: the recorded settings, named on stderr; output as with the flags given.
    lines = (root / "src.txt").read_text()
    code, plain = cli(["translate", root / "run", "--threads", 1], monkeypatch, capsys, lines)
    assert code == 0 and chosen.describe() in plain.err and "decoding.json" in plain.err
    stop = "--exact-stop" if chosen.exact_stop else "--no-exact-stop"
    weights = ["--average", chosen.average] if chosen.average else ["--weights", chosen.weights]
    flags = ["--beam", chosen.beam, "--alpha", chosen.alpha, stop, *weights]
    code, flagged = cli(["translate", root / "run", *flags], monkeypatch, capsys, lines)
    assert code == 0 and flagged.out == plain.out and "decoding.json" not in flagged.err


def test_choose_refuses_a_test_split_and_bad_grids(run_path, monkeypatch, capsys) -> None:
    run = run_path / "run"
    code, out = cli(
        ["evaluate", run, "--split", "test_2016_flickr", "--choose"], monkeypatch, capsys
    )
    assert code == 2 and "--split val" in out.err
    argv = ["evaluate", run, "--src", run_path / "src.txt", "--ref", run_path / "ref.txt"]
    code, out = cli([*argv, "--choose", "--beams", "4,x"], monkeypatch, capsys)
    assert code == 2 and "--beams" in out.err


def test_a_damaged_record_names_the_file(tmp_path, run_path) -> None:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_path / "run", copy)
    (copy / "decoding.json").write_text('{"format": "transformer-decoding-v1", "settings": 3}')
    with pytest.raises(RunOpenError, match=r"decoding\.json: damaged"):
        RunDir.open(copy).recorded_decoding()
    run = RunDir.open(copy)
    run.record_decoding(DecodingChoice(beam=5, alpha=1.0), score=1.0)
    choice, record = run.recorded_decoding()
    assert choice == DecodingChoice(beam=5, alpha=1.0) and record["score"] == 1.0
    with pytest.raises(ValueError, match="unknown setting 'beams'"):
        DecodingChoice.from_dict({"beams": 4})
