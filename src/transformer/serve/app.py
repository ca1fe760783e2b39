"""The web explorer's FastAPI app: one page, a JSON API, its OpenAPI description.

    app = create_app(Explorer.load(["runs/de-en"]))        # uvicorn.run(app, port=8000)

Routes: GET / (the page), GET /static/* (its script and style: no CDN, works offline),
GET /docs (the API described from /openapi.json, also served locally), GET /healthz,
GET /api/runs, POST /api/translate, POST /api/generate, POST /api/attention.

Errors are JSON `{"detail": "one line"}`: 400 empty or unusable input, 404 a run that is not
loaded, 413 input over a limit (characters, tokens, tokens asked, request bytes), 422 a
malformed body (not JSON, a missing or mistyped field), 503 saturated; a bug answers 500
"internal error" (the traceback goes to the server log only, never to the client).

Concurrency: the models are computed in worker threads, at most `limits.workers` at once;
at most `limits.queue` more requests are admitted to wait. A request beyond that is answered
503 at once (with Retry-After: 1), so a flood costs neither memory nor latency for the
admitted ones. The event loop itself never runs a model.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import anyio
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from transformer.serve import schemas as s
from transformer.serve.service import ApiError, Explorer

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("transformer.serve")
ERRORS = {
    code: {"model": s.ErrorResponse, "description": text}
    for code, text in (
        (400, "empty or unusable input, or the wrong kind of run"),
        (404, "the run is not loaded"),
        (413, "input over a limit"),
        (422, "malformed body"),
        (503, "the server is saturated: retry later"),
    )
}


class Gate:
    """Admission control: `workers` requests compute at once, `queue` more wait, the rest
    are refused (ApiError 503). Used from the event loop only (no lock needed)."""

    def __init__(self, workers: int, queue: int) -> None:
        self.limiter = anyio.CapacityLimiter(workers)
        self.capacity = workers + queue
        self.in_flight = 0

    async def run(self, fn, *args):
        if self.in_flight >= self.capacity:
            raise ApiError(503, f"the server is busy ({self.in_flight} requests in progress)")
        self.in_flight += 1
        try:
            return await anyio.to_thread.run_sync(
                functools.partial(fn, *args), limiter=self.limiter
            )
        finally:
            self.in_flight -= 1


def _validation_message(err: RequestValidationError) -> str:
    """One readable line from pydantic's error list."""
    parts = []
    for item in err.errors()[:3]:
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body")
        if item.get("type") == "json_invalid":
            parts.append("the body is not valid JSON")
        elif item.get("type") == "model_attributes_type":
            parts.append("the body must be a JSON object")
        else:
            parts.append(f"{where or 'body'}: {item.get('msg', 'invalid')}")
    return "; ".join(parts) or "malformed request"


def _install_errors(app: FastAPI, max_body: int) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_: Request, err: ApiError):
        headers = {"Retry-After": "1"} if err.status == 503 else None
        return JSONResponse({"detail": err.message}, status_code=err.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, err: RequestValidationError):
        return JSONResponse({"detail": _validation_message(err)}, status_code=422)

    @app.exception_handler(Exception)
    async def bug(request: Request, err: Exception):
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error (see the server log)"}, status_code=500)

    @app.middleware("http")
    async def body_limit(request: Request, call_next):
        length = request.headers.get("content-length", "0")
        if not length.isdigit() or int(length) > max_body:
            return JSONResponse(
                {"detail": f"the request body is over {max_body} bytes"}, status_code=413
            )
        return await call_next(request)


def create_app(explorer: Explorer) -> FastAPI:
    """The app over the loaded runs of `explorer` (see the module docstring)."""
    app = FastAPI(
        title="transformer explorer",
        description="Translate, continue and look at the attention of trained runs.",
        version="1",
        docs_url=None,
        redoc_url=None,
    )
    gate = Gate(explorer.limits.workers, explorer.limits.queue)
    app.state.explorer, app.state.gate = explorer, gate
    _install_errors(app, explorer.limits.max_body)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _install_info(app, explorer, gate)
    _install_api(app, explorer, gate)
    return app


def _install_info(app: FastAPI, explorer: Explorer, gate: Gate) -> None:
    """The page, the API description, /healthz and /api/runs."""

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return FileResponse(STATIC / "docs.html")

    @app.get("/healthz", response_model=s.Health, summary="liveness and load")
    async def healthz():
        return {"status": "ok", "runs": len(explorer.runs), "in_flight": gate.in_flight}

    @app.get("/api/runs", response_model=s.RunsResponse, summary="the loaded runs and limits")
    async def runs():
        lim = explorer.limits
        limits = {k: getattr(lim, k) for k in s.LimitsInfo.model_fields}
        return {"runs": explorer.describe(), "limits": limits}


def _install_api(app: FastAPI, explorer: Explorer, gate: Gate) -> None:
    """The three model endpoints, each computed in a worker thread behind `gate`."""

    @app.post(
        "/api/translate",
        response_model=s.TranslateResponse,
        responses=ERRORS,
        summary="translate a sentence (beam search with the run's settings)",
    )
    async def translate(body: s.TranslateRequest):
        return await gate.run(explorer.translate, body.run, body.text)

    @app.post(
        "/api/generate",
        response_model=s.GenerateResponse,
        responses=ERRORS,
        summary="continue a prompt (GPT runs only; 400 for a translation run)",
    )
    async def generate(body: s.GenerateRequest):
        return await gate.run(explorer.generate, body.run, body.prompt, body.model_dump())

    @app.post(
        "/api/attention",
        response_model=s.AttentionResponse,
        responses=ERRORS,
        summary="the attention weights of a sentence and of its translation",
    )
    async def attention(body: s.AttentionRequest):
        args = (body.run, body.text, body.kind, body.layer, body.head)
        return await gate.run(explorer.attention, *args)
