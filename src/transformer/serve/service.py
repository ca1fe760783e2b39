"""What the web explorer computes, without the web: translate, generate, attention, runs.

`Explorer` holds the runs loaded once at start (`LoadedRun`) and the `Limits`; its methods take
plain values, check them and raise `ApiError(status, message)` for a request the server must
refuse (400 empty or unreadable input / wrong kind of run, 404 a run that is not loaded,
413 input over a limit); everything else is a bug (the app answers 500 without details).

Every method is synchronous and safe to call from several threads at once: the models are
read-only in eval mode under `torch.inference_mode`, each request builds its own tensors and
KV cache, and sampling uses a per-request `torch.Generator`. How many run at once and how many
may wait is the app's business (`transformer.serve.app`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from transformer.decoding.sampling import generate as sample_tokens
from transformer.rundir import RunOpenError
from transformer.viz.attention import KINDS, SentenceAttention, select, sentence_attention
from transformer.viz.loaded import LoadedRun


class ApiError(Exception):
    """A refused request: HTTP `status` and a one-line `message` for the user."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Limits:
    """max_chars: characters of input text; max_tokens: its tokens (also capped by each
    model's positions); max_new_tokens: tokens a generate request may ask for; workers:
    requests computed at once; queue: requests admitted to wait beyond those (more get 503);
    max_body: request bytes. (Torch's thread count is the process's: `transformer serve
    --threads` sets it.)"""

    max_chars: int = 1000
    max_tokens: int = 128
    max_new_tokens: int = 200
    workers: int = 1
    queue: int = 16
    max_body: int = 65536

    def __post_init__(self) -> None:
        for name in ("max_chars", "max_tokens", "max_new_tokens", "workers", "max_body"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not isinstance(self.queue, int) or self.queue < 0:
            raise ValueError(f"queue must be an integer >= 0, got {self.queue!r}")


class Explorer:
    """The loaded runs (by name, in the order given) and the request logic."""

    def __init__(self, runs: Sequence[LoadedRun], limits: Limits | None = None) -> None:
        if not runs:
            raise ValueError("the explorer needs at least one run")
        self.limits = limits or Limits()
        self.runs: dict[str, LoadedRun] = {}
        for loaded in runs:
            name, n = loaded.name, 2
            while name in self.runs:  # two directories with the same name: name-2, name-3
                name, n = f"{loaded.name}-{n}", n + 1
            self.runs[name] = loaded

    @classmethod
    def load(
        cls, paths: Sequence[str], limits: Limits | None = None, **overrides: object
    ) -> Explorer:
        """Load every run directory once, on the CPU, with its recorded decoding settings
        (`overrides` as in `LoadedRun.load`); raises RunOpenError naming the file."""
        return cls([LoadedRun.load(p, "cpu", **overrides) for p in paths], limits)

    # ------------------------------------------------------------------------ checks
    def run(self, name: str | None) -> tuple[str, LoadedRun]:
        if name is None or name == "":
            name = next(iter(self.runs))
        if name not in self.runs:
            known = ", ".join(self.runs)
            raise ApiError(404, f"run {name!r} is not loaded (loaded: {known})")
        return name, self.runs[name]

    def _tokens(self, loaded: LoadedRun, text: str, what: str = "text") -> list[int]:
        """The token ids of `text`, checked against the limits."""
        if not text.strip():
            raise ApiError(400, f"the {what} is empty")
        if len(text) > self.limits.max_chars:
            raise ApiError(
                413,
                f"the {what} has {len(text)} characters; at most "
                f"{self.limits.max_chars} are accepted",
            )
        try:
            ids = list(loaded.tokenizer.encode(text))
        except RunOpenError as err:  # e.g. a copy-task run, whose lines are token ids
            raise ApiError(400, str(err)) from None
        if not ids:
            raise ApiError(400, f"the {what} has no tokens")
        limit = min(self.limits.max_tokens, loaded.max_positions - 1)
        if len(ids) > limit:
            raise ApiError(413, f"the {what} has {len(ids)} tokens; at most {limit} are accepted")
        return ids

    def _translator(self, name: str, loaded: LoadedRun):
        if loaded.translator is None:
            raise ApiError(400, f"run {name!r} is a GPT run: use /api/generate or /api/attention")
        return loaded.translator

    # ------------------------------------------------------------------------ endpoints
    def describe(self) -> list[dict]:
        """What GET /api/runs answers: one entry per loaded run."""
        out = []
        for name, loaded in self.runs.items():
            cfg = loaded.run.model_config
            gpt = loaded.kind == "gpt"  # samples with each request's settings: no beam to report
            decoding = f"{loaded.choice.describe()} ({loaded.source})"
            out.append(
                {
                    "name": name,
                    "path": str(loaded.run.path),
                    "kind": loaded.kind,
                    "attention_kinds": ["decoder"] if gpt else list(KINDS),
                    "encoder_layers": 0 if gpt else cfg.n_encoder_layers,
                    "decoder_layers": cfg.n_decoder_layers,
                    "heads": cfg.n_heads,
                    "d_model": cfg.d_model,
                    "vocab_size": cfg.tgt_vocab_size,
                    "max_positions": cfg.max_len,
                    "beam": None if gpt else loaded.settings.beam,
                    "alpha": None if gpt else loaded.settings.alpha,
                    "decoding": "sampling, per request" if gpt else decoding,
                }
            )
        return out

    def translate(self, run: str | None, text: str) -> dict:
        name, loaded = self.run(run)
        translator = self._translator(name, loaded)
        ids = self._tokens(loaded, text)
        start = time.perf_counter()
        with torch.inference_mode():
            hyp = translator.translate_ids([ids])[0][0]
        return {
            "run": name,
            "text": text,
            "translation": translator.decode(hyp.tokens),
            "score": hyp.score,
            "finished": hyp.finished,
            "beam": loaded.settings.beam,
            "alpha": loaded.settings.alpha,
            "milliseconds": round(1000 * (time.perf_counter() - start), 2),
        }

    def generate(self, run: str | None, prompt: str, request: dict) -> dict:
        """A GPT continuation: request holds max_new_tokens, temperature, top_k, seed."""
        name, loaded = self.run(run)
        if loaded.kind != "gpt":
            raise ApiError(
                400, f"run {name!r} is not a GPT run (a translation model): use /api/translate"
            )
        ids = self._tokens(loaded, prompt, "prompt")
        asked = request["max_new_tokens"]
        room = loaded.max_positions - len(ids)
        if asked > min(self.limits.max_new_tokens, room):
            raise ApiError(
                413,
                f"max_new_tokens {asked} is over the limit: at most "
                f"{min(self.limits.max_new_tokens, room)} for this prompt",
            )
        generator = torch.Generator().manual_seed(request["seed"])
        prompt_t = torch.tensor([ids], dtype=torch.long, device=loaded.device)  # (1, T0)
        out = sample_tokens(
            loaded.model,
            prompt_t,
            asked,
            temperature=request["temperature"],
            top_k=request["top_k"],
            eos_id=getattr(loaded.tokenizer, "eos_id", None),
            max_positions=loaded.max_positions,
            generator=generator,
        )
        new = out[0, len(ids) :].tolist()
        return {
            "run": name,
            "prompt": prompt,
            "continuation": loaded.tokenizer.decode(new),
            "new_tokens": len(new),
        }

    def attention(
        self, run: str | None, text: str, kind: str | None, layer: int | None, head: int | None
    ) -> dict:
        """The output and the attention weights (rounded to 5 decimals) of the chosen kinds
        (all when None), layers and heads (all when None)."""
        name, loaded = self.run(run)
        self._tokens(loaded, text)
        with torch.inference_mode():
            result = sentence_attention(loaded.model, loaded.tokenizer, text, loaded.translator)
        kinds = list(result.views) if kind is None else [kind]
        if kind is not None and kind not in result.views:
            raise ApiError(
                400, f"run {name!r} has no {kind} attention (it has: {', '.join(result.views)})"
            )
        return {
            "run": name,
            "text": text,
            "output": result.output,
            "source_tokens": result.source_tokens,
            "output_tokens": result.output_tokens,
            "attention": {k: _view_json(result, k, layer, head) for k in kinds},
        }


def _view_json(result: SentenceAttention, kind: str, layer: int | None, head: int | None):
    view = result.views[kind]
    try:
        panels = select(view, None if layer is None else [layer], None if head is None else [head])
    except ValueError as err:
        raise ApiError(400, str(err)) from None
    return {
        "queries": view.queries,
        "keys": view.keys,
        "n_layers": view.n_layers,
        "n_heads": view.n_heads,
        "panels": [
            {"layer": lay, "head": h, "weights": w.double().round(decimals=5).tolist()}
            for lay, h, w in panels
        ],
    }
