"""A bounded load test of `transformer serve`: C concurrent clients send N requests in all,
then stop; every answer is checked against the one the same server gave sequentially first.

    python scripts/serve_load.py http://127.0.0.1:8000 --clients 8 --requests 400
    python scripts/serve_load.py --demo-run --clients 8 --requests 400   # starts its own

`--demo-run` builds the tests' tiny random-weight run (tests/viz_runs.py), serves it with
uvicorn on a free localhost port in this process and measures that. Requests cycle through
POST /api/translate and POST /api/attention over a few sentences. Prints one JSON line:
requests, clients, seconds, requests/s, p50/p95/max latency (ms), status counts, 5xx and
wrong answers. Exit status 1 when any answer was 5xx or differed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

SENTENCES = [
    "Ein Hund läuft im Schnee.",
    "Zwei Männer spielen.",
    "Ein Mann liest.",
    "Zwei Hunde spielen im Park.",
]


def workload() -> list[tuple[str, dict]]:
    """The distinct requests, cycled through: (path, JSON body)."""
    out = []
    for text in SENTENCES:
        out.append(("/api/translate", {"text": text}))
        out.append(("/api/attention", {"text": text, "kind": "cross", "layer": 0}))
    return out


def _essence(path: str, payload: dict) -> object:
    """The part of an answer that must not change between calls (not the timing)."""
    if path == "/api/translate":
        return payload.get("translation"), payload.get("score")
    return payload


def load_test(base_url: str, clients: int = 8, requests: int = 400) -> dict:
    """Run the bounded load test against a live server; returns the figures."""
    work = workload()
    with httpx.Client(base_url=base_url, timeout=120) as client:
        expected = [_essence(p, client.post(p, json=b).json()) for p, b in work]
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    wrong = 0
    lock = threading.Lock()
    counter = iter(range(requests))

    def client_loop() -> None:
        nonlocal wrong
        with httpx.Client(base_url=base_url, timeout=120) as http:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                path, body = work[i % len(work)]
                start = time.perf_counter()
                response = http.post(path, json=body)
                elapsed = time.perf_counter() - start
                ok = response.status_code == 200
                same = ok and _essence(path, response.json()) == expected[i % len(work)]
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] += 1
                    wrong += ok and not same

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client_loop) for _ in range(clients)]:
            future.result()
    seconds = time.perf_counter() - start
    ms = sorted(1000 * t for t in latencies)
    return {
        "requests": len(ms),
        "clients": clients,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(ms) / seconds, 1),
        "p50_ms": round(statistics.median(ms), 1),
        "p95_ms": round(ms[max(0, int(0.95 * len(ms)) - 1)], 1),
        "max_ms": round(ms[-1], 1),
        "status": {str(k): v for k, v in sorted(statuses.items())},
        "server_errors": sum(v for k, v in statuses.items() if k >= 500),
        "wrong_answers": wrong,
    }


def serve_in_thread(app, port: int = 0):
    """Start uvicorn with `app` on 127.0.0.1 (a free port when 0) in a daemon thread;
    returns (server, base_url). Stop it with `server.should_exit = True`."""
    import uvicorn

    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{bound}"


def _demo_server(workers: int, queue: int):
    import tempfile

    import torch

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "tests"))
    from transformer.serve import Explorer, Limits, create_app
    from viz_runs import make_run

    torch.set_num_threads(1)
    run = make_run(Path(tempfile.mkdtemp()) / "demo")
    explorer = Explorer.load([str(run)], Limits(workers=workers, queue=queue))
    return serve_in_thread(create_app(explorer))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url", nargs="?", help="the server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--demo-run", action="store_true", help="serve the tests' tiny run")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2, help="--demo-run's server workers")
    parser.add_argument("--queue", type=int, default=16, help="--demo-run's server queue")
    args = parser.parse_args()
    if not args.demo_run and not args.url:
        parser.error("give the server's URL or --demo-run")
    server = None
    url = args.url
    if args.demo_run:
        server, url = _demo_server(args.workers, args.queue)
    try:
        figures = load_test(url, args.clients, args.requests)
    finally:
        if server is not None:
            server.should_exit = True
    print(json.dumps(figures))
    return 1 if figures["server_errors"] or figures["wrong_answers"] else 0


if __name__ == "__main__":
    sys.exit(main())
