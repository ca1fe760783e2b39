"""`transformer tokenizer train|encode|decode` end to end (files, stdin, errors)."""

from __future__ import annotations

import gzip
import io
import json
import sys

import pytest

from conftest import corpus_dir
from transformer.cli import main
from transformer.tokenizers import BPE, ByteBPE


def run_cli(capsys, monkeypatch, argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_train_encode_decode_round_trip(tmp_path, capsys, monkeypatch):
    root = corpus_dir("multi30k")
    out = tmp_path / "bpe.json"
    code, _, err = run_cli(
        capsys,
        monkeypatch,
        [
            "tokenizer",
            "train",
            "--merges",
            "300",
            "-o",
            str(out),
            "--codes",
            str(tmp_path / "c"),
            str(root / "val.en.gz"),
            str(root / "val.de.gz"),
        ],
    )
    assert code == 0 and "300 merges" in err
    with gzip.open(root / "val.en.gz", "rt", encoding="utf-8") as f:
        lines = f.readlines()
    with gzip.open(root / "val.de.gz", "rt", encoding="utf-8") as f:
        bpe = BPE.train(lines + f.readlines(), 300)
    assert BPE.load(out).merges == bpe.merges
    text = "".join(lines[:20])
    code, ids, _ = run_cli(capsys, monkeypatch, ["tokenizer", "encode", "-t", str(out)], text)
    assert code == 0
    assert [list(map(int, row.split())) for row in ids.splitlines()] == [
        bpe.encode(line) for line in lines[:20]
    ]
    code, back, _ = run_cli(capsys, monkeypatch, ["tokenizer", "decode", "-t", str(out)], ids)
    assert back.splitlines() == [" ".join(line.split()) for line in lines[:20]]
    code, seg, _ = run_cli(
        capsys,
        monkeypatch,
        ["tokenizer", "encode", "-t", str(out), "--format", "subword-nmt"],
        text,
    )
    assert seg.splitlines() == [bpe.segment(line).rstrip("\n") for line in lines[:20]]


def test_bytebpe_train_and_special_tokens(tmp_path, capsys, monkeypatch):
    out = tmp_path / "bytes.json"
    text = "the cat sat on the mat\n" * 20
    code, _, _ = run_cli(
        capsys,
        monkeypatch,
        [
            "tokenizer",
            "train",
            "--kind",
            "bytebpe",
            "--vocab-size",
            "270",
            "-o",
            str(out),
            "--quiet",
            "-",
        ],
        text,
    )
    assert code == 0
    tok = ByteBPE.load(out)
    line = "the mat<|endoftext|>"
    for flags, allowed in (([], ()), (["--allow-special"], "all")):
        _, ids, _ = run_cli(
            capsys, monkeypatch, ["tokenizer", "encode", "-t", str(out), *flags], line + "\n"
        )
        assert list(map(int, ids.split())) == tok.encode(line, allowed_special=allowed)


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["tokenizer", "train", "--merges", "0", "-o", "x.json"], "a b\n", "num_merges"),
        (["tokenizer", "train", "-o", "x.json"], "", "empty training corpus"),
        (["tokenizer", "train", "-o", "x.json", "missing.txt"], None, "missing.txt: cannot open"),
        (["tokenizer", "encode", "-t", "missing.json"], "a\n", "cannot read tokenizer file"),
        (["tokenizer", "decode", "-t", "TOK"], "1 two 3\n", "<stdin>:1: expected"),
        (["tokenizer", "decode", "-t", "TOK"], "1 99999\n", "<stdin>:1: id 99999 is outside"),
        (["tokenizer", "train", "--kind", "bytebpe", "--split-punct", "-o", "x"], "a\n", "are for"),
    ],
)
def test_clear_errors(tmp_path, capsys, monkeypatch, argv, stdin, message):
    monkeypatch.chdir(tmp_path)
    BPE.train(["a b ab"] * 2, 2).save(tmp_path / "TOK")
    code, _, err = run_cli(capsys, monkeypatch, argv, stdin)
    assert code == 2 and message in err


def test_split_punct_flag_trains_and_round_trips(tmp_path, capsys, monkeypatch):
    text = "Ein Hund rennt.\nZwei T-Shirts, rot.\nEin Hund, rot.\n" * 3
    out = tmp_path / "p.json"
    argv = ["tokenizer", "train", "--split-punct", "--merges", "20", "--quiet", "-o", str(out)]
    code, _, _ = run_cli(capsys, monkeypatch, [*argv, "--hf-json", str(tmp_path / "h.json")], text)
    tok = BPE.load(out)
    assert code == 0 and tok.split_punct
    normalizer = json.loads((tmp_path / "h.json").read_text(encoding="utf-8"))["normalizer"]
    assert normalizer["type"] == "Sequence"  # (the punct stage; test_tokenizers_hf checks it)
    assert tok.merges == BPE.train(text.splitlines(), 20, split_punct=True).merges
    _, ids, _ = run_cli(capsys, monkeypatch, ["tokenizer", "encode", "-t", str(out)], text)
    _, back, _ = run_cli(capsys, monkeypatch, ["tokenizer", "decode", "-t", str(out)], ids)
    assert back == text
