"""Choosing a run's decoding settings on validation data (`transformer evaluate RUN --split val
--choose`): which weights, beam size, length penalty alpha and stopping rule.

The full product of the candidates (4 weights x 3 beams x 4 alphas x 2 stopping rules = 96
decodes of the validation split) would take hours on a CPU; their effects are nearly separable,
so a staged (coordinate) search tries each group with the best of the earlier stages fixed:

1. "weights": greedy decoding with each weight option: the latest checkpoint, the average of
   the last 3 and 5 (Section 6.1; only as many as are on disk), and the best validation
   checkpoint where it is another one; greedy is cheap and ranks checkpoints as beam search
   does;
2. "search": the first beam size (4, the paper's) with every alpha x stopping rule (the
   default rule favours short outputs at large alpha, so the two are chosen together);
3. "beam": every beam size with that alpha and rule;
4. "alpha": alpha -/+ `refine` around the best, at the best beam.

That is 4 greedy and 8 + 2 + 2 beam decodes of the split by default (its cost: beam 4's
sentences/s in docs/benchmarks.md, times about 12). A candidate already
scored (the same search on the same weights) is not decoded again. The winner is the highest
sacreBLEU (cased, 13a) over every candidate, greedy included; on a tie the earlier (cheaper)
candidate stays. Flags given with --choose fix their settings (a grid of one value).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from transformer.evaluation.bleu import score_translations
from transformer.rundir import DecodingChoice

Scores = dict[str, float]  # "bleu" (the selection metric), "chrf", "bleu_lc"


@dataclass(frozen=True)
class Grid:
    """The candidate values of each stage (see the module docstring)."""

    averages: tuple[int, ...] = (1, 3, 5)  # 1 = the latest weights
    beams: tuple[int, ...] = (4, 6, 8)
    alphas: tuple[float, ...] = (0.6, 1.0, 1.4, 2.0)
    stops: tuple[bool, ...] = (False, True)  # exact_stop
    refine: float = 0.2  # stage 4's alpha step (0 = no stage 4)
    try_best: bool = True  # also the best validation checkpoint, where it is not the latest

    def __post_init__(self) -> None:
        for name in ("averages", "beams", "alphas", "stops"):
            values = tuple(getattr(self, name))
            object.__setattr__(self, name, values)
            if not values:
                raise ValueError(f"the grid needs at least one value for {name}")
        if any(not isinstance(v, int) or v < 1 for v in (*self.averages, *self.beams)):
            raise ValueError("beam sizes and checkpoint counts must be positive integers")
        if any(not a >= 0 for a in self.alphas) or not self.refine >= 0:
            raise ValueError("alpha values and the alpha step must be >= 0")


@dataclass(frozen=True)
class Candidate:
    stage: str
    choice: DecodingChoice
    scores: Scores
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "settings": self.choice.to_dict(),
            **self.scores,
            "seconds": round(self.seconds, 3),
        }


def weight_options(
    grid: Grid, steps: Sequence[int], best_step: int | None
) -> list[tuple[str, int]]:
    """(weights, average) pairs for stage 1, given the checkpoint steps on disk (oldest first)
    and the best checkpoint's step: averages of more checkpoints than exist are left out."""
    options = [("latest", n if n > 1 else 0) for n in grid.averages if n <= max(len(steps), 1)]
    if grid.try_best and best_step is not None and steps and best_step != steps[-1]:
        options.append(("best", 0))
    return list(dict.fromkeys(options))


def _key(choice: DecodingChoice) -> tuple:
    """Candidates that decode identically share a key (greedy ignores alpha and the rule)."""
    search = (1,) if choice.beam == 1 else (choice.beam, choice.alpha, choice.exact_stop)
    return (*search, choice.weights, choice.average)


class _Search:
    def __init__(self, score: Callable[[DecodingChoice], Scores], report) -> None:
        self.score, self.report = score, report
        self.candidates: list[Candidate] = []
        self._seen: dict[tuple, Candidate] = {}

    def run(self, stage: str, choices: list[DecodingChoice]) -> None:
        for choice in choices:
            if _key(choice) in self._seen:
                continue
            start = time.perf_counter()
            scores = self.score(choice)
            candidate = Candidate(stage, choice, scores, time.perf_counter() - start)
            self._seen[_key(choice)] = candidate
            self.candidates.append(candidate)
            if self.report is not None:
                self.report(candidate)

    def best(self, beam_search_only: bool = False) -> Candidate:
        pool = [c for c in self.candidates if c.choice.beam > 1 or not beam_search_only]
        top = pool[0]
        for c in pool[1:]:
            if c.scores["bleu"] > top.scores["bleu"]:
                top = c  # strictly higher: on a tie the earlier, cheaper one stays
        return top


def choose(
    score: Callable[[DecodingChoice], Scores],
    weights: Sequence[tuple[str, int]],
    grid: Grid = Grid(),
    report: Callable[[Candidate], None] | None = None,
) -> tuple[Candidate, list[Candidate]]:
    """Run the staged search; returns the best candidate and every candidate scored, in
    order. `score(choice)` decodes the validation data with `choice` and returns its scores."""
    if not weights:
        raise ValueError("no weights to choose from")
    search = _Search(score, report)
    beams = [b for b in grid.beams if b > 1]
    first = DecodingChoice(beam=1)  # greedy: cheap, and ranks checkpoints as beam search does
    if len(grid.beams) == 1:  # a fixed search: weigh the checkpoints with it
        first = DecodingChoice(beam=grid.beams[0], alpha=grid.alphas[0], exact_stop=grid.stops[0])
    search.run("weights", [dataclasses.replace(first, weights=w, average=a) for w, a in weights])
    chosen = search.best().choice
    if beams:
        at = dict(weights=chosen.weights, average=chosen.average)
        search.run(
            "search",
            [
                DecodingChoice(beam=beams[0], alpha=a, exact_stop=s, **at)
                for s in grid.stops
                for a in grid.alphas
            ],
        )
        top = search.best(beam_search_only=True).choice
        search.run("beam", [dataclasses.replace(top, beam=b) for b in beams])
        top = search.best(beam_search_only=True).choice
        if grid.refine > 0 and len(grid.alphas) > 1:
            near = [top.alpha - grid.refine, top.alpha + grid.refine]
            alphas = [round(a, 6) for a in near if a >= 0]
            search.run("alpha", [dataclasses.replace(top, alpha=a) for a in alphas])
    return search.best(), search.candidates


def bleu_scorer(
    translate: Callable[[DecodingChoice, list[str]], list[str]],
    sources: list[str],
    references: list[str],
) -> Callable[[DecodingChoice], Scores]:
    """score(choice) for `choose`: translate `sources` with the settings and score them
    (sacreBLEU cased 13a, chrF, lowercased BLEU) against `references`."""

    def score(choice: DecodingChoice) -> Scores:
        s = score_translations(translate(choice, sources), references)
        return {"bleu": s.bleu, "chrf": s.chrf, "bleu_lc": s.bleu_lc}

    return score
