"""`transformer bench attention` on tiny inputs: its adapters and agreement checks (no timing is
asserted: timings are benchmark figures, not tests)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import attention as bench
from transformer.cli import main


@pytest.mark.parametrize("level", ["queries", "heads"])
def test_exercise_level_rows_all_agree_with_the_loop(level, capsys):
    times = bench._exercise_level(level, 2, torch.Generator().manual_seed(0))
    out = capsys.readouterr().out
    assert "**NO**" not in out
    assert out.count("| yes |") == 4  # broadcasting, einsum, SDPA, attend
    assert all(len(t) == 2 for t in times.values())


@pytest.mark.parametrize("rank", [2, 3, 4])
def test_layout_adapters_match_the_exercise_loops(rank):
    """The SDPA/attend rows see the exercise's tensors through `_bhtd`: check it on each level."""
    slow = {2: bench.A.slow_queries_attention, 3: bench.A.slow_heads_attention}
    slow = slow.get(rank, bench.A.slow_multi_head_attention)
    shape = [(2, 3, 2, 4), (2, 5, 2, 4), (2, 5, 2, 4), (2, 3, 5)]
    drop = {2: (0, 2), 3: (0,), 4: ()}[rank]  # leading batch and/or head axis removed
    Q, K, V = (
        torch.randn(s)[tuple(0 if i in drop else slice(None) for i in range(4))] for s in shape[:3]
    )
    mask = torch.randint(0, 2, shape[3])[0 if rank < 4 else slice(None)]
    for variant in (bench._bhtd(bench._sdpa), bench._bhtd(bench._attend), bench._einsum_any_level):
        got = variant(Q, K, V, mask)
        expected = slow(Q, K, V, mask)
        seen = ~mask.bool().all(-1)  # rows with a visible key (SDPA's zero rows vary by version)
        torch.testing.assert_close(got[seen], expected[seen])


@pytest.mark.parametrize("backward", [False, True])
@pytest.mark.parametrize("kind", ["none", "padding", "causal"])
@pytest.mark.parametrize("shape", [(2, 2, 8, 8), (2, 2, 3, 8)])
def test_long_table_variants_agree(shape, kind, backward, monkeypatch):
    monkeypatch.setattr(bench, "CASE_BUDGET_S", 0.0)  # one repeat
    med, peak, agree = bench._compare(shape, kind, backward, 1, torch.Generator(), memory=True)
    assert agree
    assert {"broadcasting", "SDPA", "attend"} <= set(med)
    assert all(p is None or p >= 0 for p in peak.values())


def test_bad_options_are_user_errors(capsys):
    assert main(["bench", "attention", "--n-tries", "0"]) == 2
    assert "--n-tries must be at least 1" in capsys.readouterr().err
