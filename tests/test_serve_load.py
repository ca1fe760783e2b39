"""A bounded load test on localhost: 8 concurrent clients send 400 requests to uvicorn, then
stop; zero 5xx and zero answers that differ from the sequential ones
(`scripts/serve_load.py`, which also measures the figures in docs/benchmarks.md)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from transformer.serve import Explorer, Limits, create_app
from viz_runs import make_run

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "serve_load.py"


@pytest.fixture(scope="module")
def load():
    spec = importlib.util.spec_from_file_location("serve_load", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_400_requests_from_8_clients(load, tmp_path):
    run = make_run(tmp_path / "m30k", layers=1, heads=2)
    # Greedy search keeps this test to seconds; the script measures the default beam 4.
    explorer = Explorer.load([str(run)], Limits(workers=2, queue=16), beam=1)
    server, url = load.serve_in_thread(create_app(explorer))
    try:
        figures = load.load_test(url, clients=8, requests=400)
    finally:
        server.should_exit = True
    assert figures["requests"] == 400
    assert figures["status"] == {"200": 400}
    assert figures["server_errors"] == 0 and figures["wrong_answers"] == 0
    assert figures["p50_ms"] <= figures["p95_ms"] <= figures["max_ms"]
