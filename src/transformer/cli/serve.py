"""`transformer serve RUN_DIR [RUN_DIR ...]`: the web attention explorer (FastAPI + uvicorn).

One page at http://HOST:PORT/ (translate or continue a sentence, see its attention per
layer and head), a JSON API (POST /api/translate, /api/generate, /api/attention; GET
/api/runs, /healthz) described at /docs and /openapi.json. Every asset is served by the app
(it works offline). Binds to 127.0.0.1 unless --host says otherwise.

Each run translates with its recorded decoding settings (RUN_DIR/decoding.json from
`transformer evaluate --choose`; else beam 4, alpha 0.6, latest weights) unless --beam,
--alpha or --weights say otherwise. The models load once, at start. At most --workers
requests compute at once (with --threads torch threads) and at most --queue more wait; a
request beyond that is answered 503 (Retry-After: 1) at once instead of queueing without
bound. Input is limited to --max-chars characters and --max-tokens tokens, a continuation to
--max-new-tokens tokens; a request over a limit gets 413, an empty or malformed one 400/422,
with a one-line reason.
"""

from __future__ import annotations

import argparse
import importlib

import torch

from transformer.cli.errors import UserError
from transformer.rundir import RunOpenError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "serve",
        help="the web attention explorer (translate, attention views, JSON API)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="training run directories")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument(
        "--weights", default=None, help="'latest', 'best' or a file (default: recorded)"
    )
    parser.add_argument("--beam", type=int, default=None, help="beam size (default: recorded)")
    parser.add_argument("--alpha", type=float, default=None, help="length penalty (recorded)")
    parser.add_argument("--workers", type=int, default=1, help="requests computed at once (1)")
    parser.add_argument("--queue", type=int, default=16, help="requests that may wait (16)")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch CPU threads for the process (default 1)"
    )
    parser.add_argument("--max-chars", type=int, default=1000, help="input characters (1000)")
    parser.add_argument("--max-tokens", type=int, default=128, help="input tokens (128)")
    parser.add_argument(
        "--max-new-tokens", type=int, default=200, help="tokens a continuation may ask (200)"
    )
    parser.set_defaults(run=run)


def _web_stack():
    """(transformer.serve, uvicorn): they need the `serve` extra (fastapi, uvicorn), so they are
    imported when the command runs and `transformer` works without them."""
    try:
        return importlib.import_module("transformer.serve"), importlib.import_module("uvicorn")
    except ImportError as err:
        raise UserError(
            f"transformer serve needs the web extra: pip install -e '.[serve]' ({err})"
        ) from None


def run(args: argparse.Namespace) -> int:
    serve, uvicorn = _web_stack()
    Explorer, Limits, create_app = serve.Explorer, serve.Limits, serve.create_app

    if not 0 <= args.port < 65536:
        raise UserError(f"--port must be in 0 .. 65535, got {args.port}")
    try:
        limits = Limits(
            max_chars=args.max_chars,
            max_tokens=args.max_tokens,
            max_new_tokens=args.max_new_tokens,
            workers=args.workers,
            queue=args.queue,
        )
        if args.threads < 1:
            raise ValueError(f"--threads must be >= 1, got {args.threads}")
        torch.set_num_threads(args.threads)
        choice = {"beam": args.beam, "alpha": args.alpha, "weights": args.weights}
        explorer = Explorer.load(args.run_dirs, limits, **choice)
    except (RunOpenError, ValueError) as err:
        raise UserError(str(err)) from None
    names = ", ".join(explorer.runs)
    print(f"serving {names} on http://{args.host}:{args.port}/ (API at /docs)", flush=True)
    connections = limits.workers + limits.queue + 64  # uvicorn answers 503 beyond this
    uvicorn.run(
        create_app(explorer),
        host=args.host,
        port=args.port,
        log_level="warning",
        limit_concurrency=connections,
    )
    return 0
