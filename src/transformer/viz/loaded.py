"""A run directory loaded for inference: model, tokenizer and (for translation) a translator.

    loaded = LoadedRun.load("runs/de-en")        # the run's recorded decoding settings
    loaded.translator.translate(["Ein Hund läuft im Schnee."])[0].text
    sentence_attention(loaded.model, loaded.tokenizer, "Ein Hund ...", loaded.translator)

The figures (`transformer plot attention`) and the web explorer (`transformer serve`) open runs
through this one class, on top of `transformer.rundir.RunDir`. The search and the weights are
the run's recorded ones (RUN_DIR/decoding.json, written by `transformer evaluate --choose`),
else the paper's beam 4, alpha 0.6 on the latest weights; `overrides` replace single fields.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from transformer.decoding import SpecialIds
from transformer.decoding.translator import SearchSettings, Translator
from transformer.models import GPT
from transformer.rundir import DecodingChoice, RunDir, RunOpenError


@dataclass(frozen=True)
class LoadedRun:
    """name: the directory's name; kind: "translation" or "gpt"; translator: None for GPT;
    choice: the decoding settings and weights; source: where they came from."""

    name: str
    run: RunDir
    model: nn.Module
    translator: Translator | None
    settings: SearchSettings
    choice: DecodingChoice = dataclasses.field(default_factory=DecodingChoice)
    source: str = "defaults"

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
        device: str | torch.device = "cpu",
        **overrides: object,
    ) -> LoadedRun:
        """Open and load `path`; `overrides` (beam, alpha, exact_stop, weights, average; None
        = keep) replace the recorded settings. Raises `RunOpenError` naming the file."""
        run = RunDir.open(path)
        recorded = run.recorded_decoding()
        choice = recorded[0] if recorded else DecodingChoice()
        source = f"recorded in {run.decoding_path.name}" if recorded else "defaults"
        given = {k: v for k, v in overrides.items() if v is not None}
        if given:
            try:
                choice = dataclasses.replace(choice, **given)
            except (TypeError, ValueError) as err:
                raise RunOpenError(str(err)) from None
            source += f", {', '.join(sorted(given))} given"
        model = run.load_choice(choice, device)
        settings = SearchSettings(beam=choice.beam, alpha=choice.alpha, exact=choice.exact_stop)
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
        name = Path(path).resolve().name
        return cls(name, run, model, translator, settings, choice, source)
