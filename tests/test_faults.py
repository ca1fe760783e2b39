"""Fault injection: kills during saves, damaged checkpoints, a full disk, permissions, SIGTERM,
NaN gradients. Each case ends with a run that resumes bit-exactly from the last good
checkpoint, or with a clear error and nothing lost. The quick cases run by default; the
many-kills and external-SIGTERM cases are `slow` (figures in docs/reliability.md)."""

from __future__ import annotations

import errno
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from copy_runs import assert_identical, small, weights
from transformer import durable
from transformer.cli import main
from transformer.models import Transformer
from transformer.training import checkpoint as ckpt
from transformer.training.config import RunConfig
from transformer.training.data import build_data
from transformer.training.run import train
from transformer.training.trainer import Trainer, TrainingError

REPO = Path(__file__).resolve().parents[1]
CHILD = [sys.executable, str(REPO / "tests" / "fault_child.py")]


def tiny(*overrides: str) -> RunConfig:
    """The copy-task run of `copy_runs`, 12 steps."""
    return small("train.max_steps=12", *overrides)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: one thread


@pytest.fixture(autouse=True)
def _no_fault_hook():
    yield
    durable.fault_hook = None


@pytest.fixture
def reference(tmp_path) -> dict[str, torch.Tensor]:
    """The final weights of the uninterrupted 12-step run."""
    train(tiny(), tmp_path / "reference", tensorboard=False)
    return weights(tmp_path / "reference")


def steps(run_dir: Path) -> list[int]:
    return [s for s, _ in ckpt.step_dirs(run_dir)]


def temporaries(run_dir: Path) -> list[Path]:
    return [p for p in run_dir.rglob("*") if p.name.startswith((".tmp-", ".old-"))]


def assert_consistent(run_dir: Path) -> None:
    """Every checkpoint verifies, every JSON file is strict JSON, no damaged checkpoint."""
    for _, path in ckpt.step_dirs(run_dir):
        assert ckpt.verify(path) is None, path
    for path in run_dir.rglob("*.json"):
        if not path.parent.name.startswith(".tmp-"):
            json.loads(path.read_text(), parse_constant=_no_constant)
    assert not list(run_dir.glob("checkpoints/damaged*"))


def _no_constant(name: str) -> None:
    raise AssertionError(f"bare {name} in a JSON file")


# ---- damaged checkpoints -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        ("torn", "torn"),
        ("zeroed", "no valid safetensors header"),
        ("state", "state.pt: sha256 differs"),
    ],
)
def test_damaged_newest_checkpoint_is_skipped_and_resume_is_exact(
    tmp_path, reference, caplog, damage, reason
) -> None:
    run_dir = tmp_path / "run"
    train(tiny("train.max_steps=8"), run_dir, tensorboard=False)
    assert steps(run_dir) == [6, 8]
    newest = run_dir / "checkpoints" / "step-00000008"
    target = newest / "model.safetensors"
    if damage == "torn":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif damage == "zeroed":
        target.write_bytes(bytes(target.stat().st_size))
    else:
        state = newest / "state.pt"
        state.write_bytes(bytes(state.stat().st_size))
    caplog.set_level("WARNING", logger="transformer.training")
    train(tiny(), run_dir, resume=True, tensorboard=False)
    assert "skipping checkpoint" in caplog.text and "step-00000008" in caplog.text
    assert reason in caplog.text
    assert (run_dir / "checkpoints" / "damaged-step-00000008").is_dir()  # kept, not deleted
    assert_identical(weights(run_dir), reference)


def test_no_checkpoint_verifies_is_a_clear_error(tmp_path, capsys) -> None:
    run_dir = tmp_path / "run"
    train(tiny("train.max_steps=3"), run_dir, tensorboard=False)
    target = run_dir / "checkpoints" / "step-00000003" / "model.safetensors"
    target.write_bytes(b"")
    config = tmp_path / "c.toml"
    config.write_text(tiny().to_toml())
    status = main(["train", str(config), "--out", str(run_dir), "--resume"])
    err = capsys.readouterr().err.strip()
    assert status == 2 and len(err.splitlines()) == 1
    assert "no checkpoint verifies: step-00000003" in err


# ---- a full disk, no permission ------------------------------------------------------------
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES])
def test_write_error_during_a_save_loses_nothing(tmp_path, reference, monkeypatch, code):
    run_dir = tmp_path / "run"
    original = ckpt.save_checkpoint

    def fail_at_step_6(run_dir_, step, *args, **kwargs):
        if step == 6:
            calls = {"n": 0}

            def hook(label: str) -> None:
                calls["n"] += 1
                if label == "write" and calls["n"] > 3:  # inside the second file
                    raise OSError(code, os.strerror(code))

            durable.fault_hook = hook
        try:
            return original(run_dir_, step, *args, **kwargs)
        finally:
            durable.fault_hook = None

    monkeypatch.setattr(ckpt, "save_checkpoint", fail_at_step_6)
    with pytest.raises(OSError) as err:
        train(tiny(), run_dir, tensorboard=False)
    assert err.value.errno == code and "step-00000006" in err.value.filename
    assert steps(run_dir) == [3, 4] and not temporaries(run_dir)  # 4: a new best
    assert_consistent(run_dir)
    monkeypatch.setattr(ckpt, "save_checkpoint", original)
    train(tiny(), run_dir, resume=True, tensorboard=False)
    assert_identical(weights(run_dir), reference)


def test_disk_full_through_the_command_is_one_line(tmp_path, monkeypatch, capsys) -> None:
    def full(label: str) -> None:
        if label == "write":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(durable, "fault_hook", full)
    config = tmp_path / "c.toml"
    config.write_text(tiny("train.max_steps=3").to_toml())
    status = main(["train", str(config), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert status == 1 and len(err.splitlines()) == 1, err
    assert err.startswith("transformer train: error: ") and "No space left on device" in err
    assert "config.toml" in err  # the first file the run writes
    assert not temporaries(tmp_path / "run")


# ---- signals -------------------------------------------------------------------------------
def _signal_at(model: torch.nn.Module, call: int, *signals: int) -> None:
    calls = {"n": 0}

    def hook(module, args):
        if module.training:
            calls["n"] += 1
            if calls["n"] == call:
                for sig in signals:
                    os.kill(os.getpid(), sig)

    model.register_forward_pre_hook(hook)


def _trainer(run: RunConfig, run_dir: Path, resume: bool = False) -> Trainer:
    run_dir.mkdir(parents=True, exist_ok=True)
    data, model_cfg = build_data(run, run_dir)
    torch.manual_seed(run.train.seed)
    (run_dir / "config.toml").write_text(run.to_toml())
    return Trainer(run, run_dir, data, Transformer(model_cfg), resume=resume, tensorboard=False)


def test_sigterm_saves_and_resumes_exactly(tmp_path, reference) -> None:
    trainer = _trainer(tiny(), tmp_path / "run")
    _signal_at(trainer.model, 5, signal.SIGTERM)
    result = trainer.fit()
    assert result.status == "interrupted" and result.step == 5
    assert steps(tmp_path / "run")[-1] == 5
    train(tiny(), tmp_path / "run", resume=True, tensorboard=False)
    assert_identical(weights(tmp_path / "run"), reference)


def test_second_signal_stops_at_once_and_loses_nothing(tmp_path, reference) -> None:
    trainer = _trainer(tiny(), tmp_path / "run")
    _signal_at(trainer.model, 5, signal.SIGTERM, signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit()
    assert steps(tmp_path / "run") == [3, 4]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored
    train(tiny(), tmp_path / "run", resume=True, tensorboard=False)
    assert_identical(weights(tmp_path / "run"), reference)


# ---- non-finite values ---------------------------------------------------------------------
def _poison_gradients(model: torch.nn.Module, calls: set[int] | None, after: int = 10**9):
    """NaN gradients (with a finite loss) in the given backward calls and from `after` on."""
    count = {"n": 0}
    weight = next(model.parameters())

    def hook(grad):
        count["n"] += 1
        if count["n"] in (calls or set()) or count["n"] >= after:
            return grad * float("nan")
        return grad

    return weight.register_hook(hook)


def test_nan_gradients_are_skipped_then_stop_and_resume_exactly(tmp_path, caplog) -> None:
    # reference: backward call 5 gives a NaN gradient once; the step is skipped
    ref = _trainer(tiny(), tmp_path / "ref")
    _poison_gradients(ref.model, {5})
    caplog.set_level("WARNING", logger="transformer.training")
    assert ref.fit().step == 12 and ref.nonfinite_steps == 1
    assert "gradient norm became nan" in caplog.text and "update skipped" in caplog.text
    assert_consistent(tmp_path / "ref")
    # the same, then NaN for good from call 11: 5 skipped in a row stop it after step 9
    run = _trainer(tiny(), tmp_path / "run")
    _poison_gradients(run.model, {5}, after=11)
    stop = r"gradient norm became nan .* at step 10 \(5 steps in a row"
    with pytest.raises(TrainingError, match=stop):
        run.fit()
    assert steps(tmp_path / "run") == [8, 9] and run.nonfinite_steps == 6
    assert_consistent(tmp_path / "run")
    resumed = _trainer(tiny(), tmp_path / "run", resume=True)
    resumed.fit()
    assert resumed.nonfinite_steps == 1  # the count as of step 9
    assert_identical(weights(tmp_path / "run"), weights(tmp_path / "ref"))


def test_nonfinite_weights_are_never_saved_and_nan_is_never_best(tmp_path) -> None:
    trainer = _trainer(tiny(), tmp_path / "run")
    trainer.save({"val_loss": 2.0, "val_nll": 1.5, "val_ppl": 4.5})
    assert not trainer._improves({"val_loss": float("nan"), "val_nll": float("nan")})
    trainer.best_val = None
    assert not trainer._improves({"val_nll": float("nan")})
    with torch.no_grad():
        next(trainer.model.parameters())[0] = float("inf")
    trainer.step = 1
    with pytest.raises(TrainingError, match=r"NaN/inf values at step 1 .*not saved"):
        trainer.save({"val_nll": 1.0})
    assert steps(tmp_path / "run") == [0]
    durable.write_json(tmp_path / "x.json", {"v": float("nan"), "w": [float("-inf")]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"v": "nan", "w": ["-inf"]}


# ---- SIGKILL during saves ------------------------------------------------------------------
def _kill_and_resume(tmp_path: Path, kill_points: list[int], max_steps: int = 8) -> dict:
    """Run the child, SIGKILLed at each of `kill_points` in turn (a point is one step of a
    durable write; the child resumes from whatever the previous kill left), then once to
    the end in this process. Checks the run directory after every kill. Returns the figures."""
    run = tiny(f"train.max_steps={max_steps}", "train.save_every=2")
    config = tmp_path / "c.toml"
    config.write_text(run.to_toml())
    run_dir = tmp_path / "run"
    figures = {"kills": 0, "survived": 0, "finished_early": 0, "lost": 0}
    for point in kill_points:
        before = max(steps(run_dir), default=0)
        proc = subprocess.run([*CHILD, str(config), str(run_dir), str(point)],
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        if proc.returncode == -signal.SIGKILL:
            figures["kills"] += 1
        elif proc.returncode == 0:  # the point lay after the end: start a new run
            figures["finished_early"] += 1
            run_dir.rename(tmp_path / f"done-{figures['finished_early']}")
            continue
        else:
            raise AssertionError(proc.stderr)
        assert_consistent(run_dir)
        after = max(steps(run_dir), default=0)
        figures["lost"] += after < before
        figures["survived"] += after >= before
    train(run, run_dir, resume=bool(steps(run_dir)), tensorboard=False)
    assert steps(run_dir)[-1] == max_steps and not temporaries(run_dir)
    assert_consistent(run_dir)
    return figures


def _reference(tmp_path: Path, max_steps: int = 8) -> dict[str, torch.Tensor]:
    train(tiny(f"train.max_steps={max_steps}", "train.save_every=2"), tmp_path / "ref",
          tensorboard=False)  # fmt: skip
    return weights(tmp_path / "ref")


def test_sigkill_during_saves_then_resume_is_exact(tmp_path) -> None:
    figures = _kill_and_resume(tmp_path, [37])  # in the second checkpoint (step 4)
    assert figures["kills"] == 1 and figures["lost"] == 0
    assert_identical(weights(tmp_path / "run"), _reference(tmp_path))


@pytest.mark.slow
def test_sigkill_at_50_random_points_of_saves(tmp_path) -> None:
    rng = random.Random(29)
    start = time.perf_counter()
    probe = [*CHILD, str(_probe_config(tmp_path)), str(tmp_path / "probe"), "0"]
    proc = subprocess.run(probe, capture_output=True, text=True, check=True)
    total = int(proc.stdout.split()[-1])  # how many write points a whole run has
    points = [rng.randint(1, 40) for _ in range(55)]  # 1 to 2 saves past each resume
    figures = _kill_and_resume(tmp_path, points)
    assert figures["kills"] >= 50 and figures["lost"] == 0
    assert_identical(weights(tmp_path / "run"), _reference(tmp_path))
    print(f"\nSIGKILL: {total} write points per run; {figures}; "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip


def _probe_config(tmp_path: Path) -> Path:
    path = tmp_path / "probe.toml"
    path.write_text(tiny("train.max_steps=8", "train.save_every=2").to_toml())
    return path


@pytest.mark.slow
def test_external_sigterm_saves_then_resume_is_exact(tmp_path) -> None:
    config = tmp_path / "c.toml"
    config.write_text(tiny("train.max_steps=400", "train.save_every=100").to_toml())
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([*CHILD, str(config), str(run_dir), "0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 120
    while not steps(run_dir) and time.monotonic() < deadline:
        time.sleep(0.05)
    first = steps(run_dir)[-1]  # the first checkpoint is on disk: the run is under way
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err  # the run saved and returned ("interrupted")
    stopped = steps(run_dir)[-1]
    assert first <= stopped < 400 and b"SIGTERM: finishing this step" in err
    train(tiny("train.max_steps=400", "train.save_every=100"), run_dir, resume=True,
          tensorboard=False)  # fmt: skip
    train(tiny("train.max_steps=400", "train.save_every=100"), tmp_path / "ref",
          tensorboard=False)  # fmt: skip
    assert_identical(weights(run_dir), weights(tmp_path / "ref"))


# ---- bad input: one line, before any work ----------------------------------------------------
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_unavailable_device_is_refused_before_any_work(tmp_path, capsys) -> None:
    config = tmp_path / "c.toml"
    config.write_text(tiny().to_toml())
    status = main(["train", str(config), "--out", str(tmp_path / "run"), "--set",
                   "train.device='cuda'"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.endswith("train.device = 'cuda' but no CUDA device is available")
    assert not (tmp_path / "run").exists()  # no data prepared, no config.toml written


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("train.lr_scale=inf", "train.lr_scale must be a finite positive number, got inf"),
        ("train.clip_norm=nan", "train.clip_norm must be a finite number >= 0"),
        ("train.max_minutes=inf", "train.max_minutes must be a finite number >= 0"),
        ("model.layer_norm_eps=inf", "layer_norm_eps must be a finite number > 0, got inf"),
        ("train.device='tpu'", "train.device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
    ],
)
def test_non_finite_and_bad_values_name_the_field(tmp_path, capsys, setting, message) -> None:
    config = tmp_path / "c.toml"
    config.write_text(tiny().to_toml())
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--set", setting]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and "c.toml" in err


def test_debug_shows_the_traceback(tmp_path, capsys, monkeypatch) -> None:
    argv = ["average", str(tmp_path), "--out", str(tmp_path / "no" / "x.safetensors")]
    assert main(argv) == 2
    assert "Traceback" not in capsys.readouterr().err
    monkeypatch.setenv("TRANSFORMER_DEBUG", "1")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1].endswith("does not exist")
