"""The JSON bodies of the explorer's API (pydantic models: they are the OpenAPI schema)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RUN = Field(None, description="a loaded run's name (GET /api/runs); default: the first")


class TranslateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: str | None = RUN
    text: str = Field(..., description="the source sentence", examples=["Ein Hund läuft."])


class TranslateResponse(BaseModel):
    run: str
    text: str
    translation: str
    score: float = Field(..., description="length-normalised log-probability")
    finished: bool = Field(..., description="False when cut at the length limit")
    beam: int
    alpha: float
    milliseconds: float


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: str | None = RUN
    prompt: str = Field(..., description="the text to continue")
    max_new_tokens: int = Field(50, ge=1, description="tokens to add (server limit applies)")
    temperature: float = Field(1.0, ge=0.0, le=10.0, description="0 = greedy")
    top_k: int | None = Field(None, ge=1)
    seed: int = Field(0, ge=0, description="the same seed gives the same continuation")


class GenerateResponse(BaseModel):
    run: str
    prompt: str
    continuation: str
    new_tokens: int


class AttentionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    run: str | None = RUN
    text: str = Field(..., description="the sentence (translated first for a translation run)")
    kind: Literal["encoder", "decoder", "cross"] | None = Field(None, description="default all")
    layer: int | None = Field(None, ge=0, description="default: all layers")
    head: int | None = Field(None, ge=0, description="default: all heads")


class Panel(BaseModel):
    layer: int
    head: int | None
    weights: list[list[float]] = Field(..., description="(queries, keys); rows sum to 1")


class View(BaseModel):
    queries: list[str]
    keys: list[str]
    n_layers: int
    n_heads: int
    panels: list[Panel]


class AttentionResponse(BaseModel):
    run: str
    text: str
    output: str = Field(..., description="the translation ('' for a GPT run)")
    source_tokens: list[str]
    output_tokens: list[str]
    attention: dict[str, View]


class RunInfo(BaseModel):
    name: str
    path: str
    kind: Literal["translation", "gpt"]
    attention_kinds: list[str]
    encoder_layers: int
    decoder_layers: int
    heads: int
    d_model: int
    vocab_size: int
    max_positions: int
    beam: int | None = Field(..., description="a translation run's beam; None for a GPT run")
    alpha: float | None = Field(..., description="its length penalty; None for a GPT run")
    decoding: str = Field(..., description="search and weights, and where they came from")


class LimitsInfo(BaseModel):
    max_chars: int
    max_tokens: int
    max_new_tokens: int
    workers: int
    queue: int


class RunsResponse(BaseModel):
    runs: list[RunInfo]
    limits: LimitsInfo


class Health(BaseModel):
    status: Literal["ok"]
    runs: int
    in_flight: int


class ErrorResponse(BaseModel):
    detail: str = Field(..., description="what was wrong, in one line")
