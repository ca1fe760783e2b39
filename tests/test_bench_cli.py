"""`transformer bench`: its sub-commands come from the top-level `benchmarks` package (outside
the library), and an install without that package says so in one line."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from copy_runs import small
from transformer.cli import bench as bench_cli
from transformer.cli import main


def test_every_benchmark_is_a_module_of_the_benchmarks_package() -> None:
    for module_name, _help in bench_cli.BENCHES.values():
        module = importlib.import_module(f"benchmarks.{module_name}")
        assert callable(module.add_arguments) and callable(module.run)
        assert not module.__name__.startswith("transformer")


def test_the_library_never_imports_the_benchmarks() -> None:
    import transformer

    src = Path(transformer.__file__).parent
    for path in src.rglob("*.py"):
        if path.parent.name == "cli":
            continue  # cli/bench.py is the one place that does
        text = path.read_text(encoding="utf-8")
        assert "import benchmarks" not in text and "from benchmarks" not in text, path


def test_a_missing_benchmarks_package_is_one_clear_line(monkeypatch, capsys) -> None:
    real = importlib.import_module

    def import_module(name: str, package: str | None = None):
        if name.startswith("benchmarks"):  # as an install without benchmarks/ raises it
            raise ModuleNotFoundError("No module named 'benchmarks'", name="benchmarks")
        return real(name, package)

    monkeypatch.setattr(bench_cli.importlib, "import_module", import_module)
    assert main(["bench", "attention"]) == 2
    err = capsys.readouterr().err
    assert "benchmarks/" in err and "Traceback" not in err


@pytest.mark.parametrize("what", sorted(bench_cli.BENCHES))
def test_every_sub_command_still_parses_its_flags(what: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["bench", what, "--help"])
    assert exit_info.value.code == 0
    assert "--reference" in capsys.readouterr().out


def test_training_bench_runs_both_arms(tmp_path, capsys) -> None:
    """`bench training` end to end on the copy task: both arms step and report a ratio."""
    config = tmp_path / "copy.toml"
    config.write_text(small().to_toml(), encoding="utf-8")
    argv = ["bench", "training", "--config", str(config), "--work", str(tmp_path / "work")]
    assert main([*argv, "--steps", "2", "--warmup-steps", "1", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "| trainer |" in out and "| plain |" in out and "trainer / plain" in out
