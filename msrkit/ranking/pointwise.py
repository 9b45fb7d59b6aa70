"""MLLM-MSR's pointwise scorer: p(yes) of the first answer token for "will the user take this item next?".

Scored from the backend's top log-probabilities; a backend that exposes none
gets a :class:`~msrkit.errors.ConfigError` when the scorer is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..backends.base import Backend
from ..backends.cache import forget
from ..data import Item
from ..errors import ConfigError
from ..runtime.meter import Meter
from ..runtime.modeltext import strip_think
from ..runtime.prompts import PromptSet
from .prompting import yes_no_request
from .result import Scored

__all__ = ["PointwiseScorer", "p_yes", "yes_no_from_text"]


def p_yes(top_logprobs: Sequence[dict[str, float]] | None, text: str = "") -> float | None:
    """p(yes) / (p(yes) + p(no)) from the first generated token's alternatives.

    Tokens are compared stripped and lower-cased (``" Yes"``, ``"yes"``). When
    neither appears, or there are no log-probabilities, ``None``.
    """
    if not top_logprobs or not isinstance(top_logprobs[0], dict):
        return None
    first = top_logprobs[0]
    yes = sum(_probability(lp) for tok, lp in first.items() if _word(tok) == "yes")
    no = sum(_probability(lp) for tok, lp in first.items() if _word(tok) == "no")
    if not yes + no > 0:
        return None
    return yes / (yes + no)


def _word(token: object) -> str:
    return token.strip().lower() if isinstance(token, str) else ""


def _probability(logprob: object) -> float:
    """``exp(logprob)`` for a log-probability (at most 0); 0 for anything that is not a finite number."""
    if isinstance(logprob, bool) or not isinstance(logprob, (int, float)) or not math.isfinite(logprob):
        return 0.0
    return math.exp(min(float(logprob), 0.0))


def yes_no_from_text(text: str) -> float | None:
    """p(yes) read from an answer's words: 1 for "yes...", 0 for "no...", ``None`` for anything else."""
    word = strip_think(text).strip().lower()
    return 1.0 if word.startswith("yes") else 0.0 if word.startswith("no") else None


class PointwiseScorer:
    """One yes/no call per candidate, scored by p(yes)."""

    def __init__(self, backend: Backend, *, prompts: PromptSet | None = None, top_logprobs: int = 10) -> None:
        if not backend.capabilities.logprobs:
            raise ConfigError(
                f"pointwise scoring needs token log-probabilities, which {backend.name}/{backend.model} does not "
                "expose: use the listwise reranker (the default) or a backend with logprobs (llamacpp, openai)"
            )
        self.backend = backend
        self.prompts = prompts or PromptSet.load()
        self.top_logprobs = top_logprobs

    def score(
        self,
        candidates: Sequence[Item],
        *,
        preference: str,
        meter: Meter | None = None,
        notes: Sequence[str] | None = None,
    ) -> Scored:
        """p(yes) of every candidate (from the answer's text where no log-probabilities came back);
        ``notes``: per candidate, a note after its line (:func:`.prompting.evidence_notes`)."""
        meter = meter or Meter()
        scores = []
        for n, item in enumerate(candidates):
            request = yes_no_request(
                self.prompts, preference=preference, candidate=item, top_logprobs=self.top_logprobs,
                note=notes[n] if notes else "",
            )  # fmt: skip
            response = meter.call(self.backend, request)
            p = p_yes(response.top_logprobs, response.text)
            if p is None:
                p = yes_no_from_text(response.text)
                meter.warn("some yes/no answers had no 'yes'/'no' among the top tokens: scored from the text")
            if p is None:
                forget(self.backend, request)  # neither yes nor no: not kept as an answer
                p = 0.5
            scores.append(p)
        return Scored.from_scores(scores, "pointwise", diagnostics={"scorer": "pointwise"})
