"""Try the `transformer` command with bad input and faults; print what each gets (a Markdown
table for docs/reliability.md): the exit status and the exact message, with the scratch
directory written as $TMP.

    PYTHONPATH=src python scripts/bad_inputs.py
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from transformer import durable
from transformer.cli import main
from transformer.training.checkpoint import load_weights, weights_bytes

COPY = """[model]
preset = "tiny"
src_vocab_size = 12
tgt_vocab_size = 12
d_model = 16
n_heads = 2
d_ff = 32
n_encoder_layers = 1
n_decoder_layers = 1
max_len = 32
[data]
task = "copy"
copy_train_size = 60
copy_val_size = 8
max_tokens = 48
[train]
max_steps = 4
warmup = 2
save_every = 2
val_every = 2
progress = false
threads = 1
"""


def run(argv: list[str], tmp: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(argv)
    lines = [line for line in err.getvalue().splitlines() if line.startswith("transformer ")]
    return status, (lines[-1] if lines else err.getvalue().strip()).replace(str(tmp), "$TMP")


def cases(tmp: Path) -> list[tuple[str, list[str] | None]]:
    cfg = tmp / "copy.toml"
    cfg.write_text(COPY)
    run_dir = tmp / "run"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(["train", str(cfg), "--out", str(run_dir), "--set", "train.device='cpu'"])
    bad_utf8 = tmp / "bad.txt"
    bad_utf8.write_bytes(b"one line\ntwo line\nthree \xff line\n")
    empty = tmp / "empty.txt"
    empty.write_bytes(b"")
    aliased = tmp / "aliases.safetensors"
    blob = bytearray(weights_bytes(load_weights(run_dir / "model.safetensors")))
    at = blob.find(b'"aliases":"')
    blob[at + 11 : at + 12] = b"["  # the aliases field is no longer JSON
    aliased.write_bytes(bytes(blob))
    broken = tmp / "broken"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "config.toml").write_text((run_dir / "config.toml").read_text())
    step = broken / "checkpoints" / "step-00000004"
    step.mkdir()
    for name in ("model.safetensors", "state.pt"):
        (step / name).write_bytes(bytes(100))
    train = ["train", str(cfg), "--out", str(tmp / "new")]
    return [
        ("train.device = 'tpu'", [*train, "--set", "train.device='tpu'"]),
        (
            "train.device = 'cuda' on a machine without CUDA",
            [*train, "--set", "train.device='cuda'"],
        ),
        ("train.lr_scale = inf", [*train, "--set", "train.lr_scale=inf"]),
        ("train.clip_norm = nan", [*train, "--set", "train.clip_norm=nan"]),
        ("train.max_minutes = inf", [*train, "--set", "train.max_minutes=inf"]),
        ("model.layer_norm_eps = inf", [*train, "--set", "model.layer_norm_eps=inf"]),
        ("train.max_nonfinite_steps = 0", [*train, "--set", "train.max_nonfinite_steps=0"]),
        ("a config file that does not exist", ["train", str(tmp / "nope.toml"), "--out", "x"]),
        (
            "--resume where no checkpoint verifies",
            ["train", str(cfg), "--out", str(broken), "--resume"],
        ),
        ("the disk fills up during the first write (ENOSPC, injected)", ["ENOSPC", *train]),
        ("no permission to write (EACCES, injected)", ["EACCES", *train]),
        (
            "data.task multi30k, corpus missing, --offline",
            [
                "--offline",
                *train,
                "--set",
                "data.task='multi30k'",
                "--set",
                f"data.data_dir='{tmp}'",
            ],
        ),
        (
            "tokenizer train -o into a missing directory",
            ["tokenizer", "train", "-o", str(tmp / "no" / "bpe.json"), str(bad_utf8)],
        ),
        (
            "tokenizer train on a file with invalid UTF-8 in line 3",
            ["tokenizer", "train", "-o", str(tmp / "bpe.json"), str(bad_utf8)],
        ),
        (
            "tokenizer train on an empty file",
            ["tokenizer", "train", "-o", str(tmp / "e.json"), str(empty)],
        ),
        (
            "tokenizer encode with a tokenizer file that does not exist",
            ["tokenizer", "encode", "-t", str(tmp / "none.json"), str(empty)],
        ),
        (
            "evaluate --output into a missing directory",
            [
                "evaluate",
                str(run_dir),
                "--src",
                str(empty),
                "--ref",
                str(empty),
                "--output",
                str(tmp / "no" / "out.txt"),
            ],
        ),
        (
            "evaluate --src/--ref empty files",
            ["evaluate", str(run_dir), "--src", str(empty), "--ref", str(empty)],
        ),
        (
            "evaluate --src with invalid UTF-8",
            ["evaluate", str(run_dir), "--src", str(bad_utf8), "--ref", str(bad_utf8)],
        ),
        (
            "average --out into a file's place as directory",
            ["average", str(run_dir), "--last", "1", "--out", str(cfg / "avg.safetensors")],
        ),
        (
            "translate --weights with a damaged 'aliases' field",
            ["translate", str(run_dir), "--weights", str(aliased)],
        ),
        ("translate --device tpu", ["translate", str(run_dir), "--device", "tpu"]),
        ("translate a run directory that is not one", ["translate", str(tmp)]),
        ("translate ... piped into `head -1` (stdout closed)", None),
    ]


def inject(kind: str):
    code = errno.ENOSPC if kind == "ENOSPC" else errno.EACCES

    def hook(label: str) -> None:
        if label == "write":
            raise OSError(code, os.strerror(code))

    return hook


def broken_pipe(tmp: Path) -> tuple[int, str]:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    cmd = (f"yes '5 6 7 2' | head -5000 | {sys.executable} -m transformer translate "
           f"{tmp / 'run'} --beam 1 | head -1")  # fmt: skip
    proc = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True,
                          text=True, env=env)  # fmt: skip
    return proc.returncode, proc.stderr.strip().replace(str(tmp), "$TMP")


def table() -> str:
    rows = ["| bad input or fault | exit | message |", "|---|---|---|"]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name).resolve()
        for what, argv in cases(tmp):
            if argv is None:
                status, message = broken_pipe(tmp)
            elif argv[0] in ("ENOSPC", "EACCES"):
                durable.fault_hook = inject(argv[0])
                try:
                    status, message = run(argv[1:], tmp)
                finally:
                    durable.fault_hook = None
            else:
                status, message = run(argv, tmp)
            rows.append(f"| {what} | {status} | `{message.replace('|', '/')}` |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
