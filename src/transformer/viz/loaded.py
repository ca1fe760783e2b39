"""A run directory loaded for inference: model, tokenizer and (for translation) a translator.

    loaded = LoadedRun.load("runs/de-en")                  # beam 4, alpha 0.6
    loaded.translator.translate(["Ein Hund läuft im Schnee."])[0].text
    sentence_attention(loaded.model, loaded.tokenizer, "Ein Hund ...", loaded.translator)

The figures (`transformer plot attention`) and the web explorer (`transformer serve`) open runs
through this one class, on top of `transformer.rundir.RunDir`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from transformer.decoding import SpecialIds
from transformer.decoding.translator import SearchSettings, Translator
from transformer.models import GPT
from transformer.rundir import RunDir


@dataclass(frozen=True)
class LoadedRun:
    """name: the directory's name; kind: "translation" or "gpt"; translator: None for GPT."""

    name: str
    run: RunDir
    model: nn.Module
    translator: Translator | None
    settings: SearchSettings

    @property
    def kind(self) -> str:
        return "gpt" if isinstance(self.model, GPT) else "translation"

    @property
    def tokenizer(self) -> object:
        return self.run.tokenizer

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def max_positions(self) -> int:
        return self.run.model_config.max_len

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        weights: str = "latest",
        device: str | torch.device = "cpu",
        settings: SearchSettings | None = None,
    ) -> LoadedRun:
        """Open and load `path` (raises `transformer.rundir.RunOpenError` naming the file)."""
        run = RunDir.open(path)
        model = run.load_model(weights, 0, device)
        settings = settings or SearchSettings()
        translator = None
        if not isinstance(model, GPT):
            tok = run.tokenizer
            ids = SpecialIds(bos=tok.bos_id, eos=tok.eos_id, pad=run.model_config.pad_id)
            translator = Translator(
                model,
                tok.encode,
                tok.decode,
                ids,
                settings,
                max_positions=run.model_config.max_len,
                device=device,
            )
        return cls(Path(path).resolve().name, run, model, translator, settings)
