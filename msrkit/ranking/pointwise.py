"""MLLM-MSR's pointwise scorer: p(yes) of the first answer token for "will the user take this item next?".

Scored from the backend's top log-probabilities; a backend that exposes none
gets a :class:`~msrkit.errors.ConfigError` when the scorer is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..backends.base import Backend
from ..data import Item
from ..errors import ConfigError
from ..meter import Meter
from ..prompts import PromptSet
from .parse import strip_think
from .prompting import yes_no_request
from .result import Scored

__all__ = ["PointwiseScorer", "p_yes"]


def p_yes(top_logprobs: Sequence[dict[str, float]] | None, text: str = "") -> float | None:
    """p(yes) / (p(yes) + p(no)) from the first generated token's alternatives.

    Tokens are compared stripped and lower-cased (``" Yes"``, ``"yes"``). When
    neither appears, or there are no log-probabilities, ``None``.
    """
    if not top_logprobs:
        return None
    first = top_logprobs[0]
    yes = sum(math.exp(lp) for tok, lp in first.items() if tok.strip().lower() == "yes")
    no = sum(math.exp(lp) for tok, lp in first.items() if tok.strip().lower() == "no")
    if yes + no == 0:
        return None
    return yes / (yes + no)


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

    def score(self, candidates: Sequence[Item], *, preference: str, meter: Meter | None = None) -> Scored:
        """p(yes) of every candidate (from the answer's text where no log-probabilities came back)."""
        meter = meter or Meter()
        scores = []
        for item in candidates:
            request = yes_no_request(
                self.prompts, preference=preference, candidate=item, top_logprobs=self.top_logprobs
            )
            response = meter.call(self.backend, request)
            p = p_yes(response.top_logprobs, response.text)
            if p is None:
                word = strip_think(response.text).strip().lower()
                p = 1.0 if word.startswith("yes") else 0.0 if word.startswith("no") else 0.5
                meter.warn("some yes/no answers had no 'yes'/'no' among the top tokens: scored from the text")
            scores.append(p)
        return Scored.from_scores(scores, "pointwise", diagnostics={"scorer": "pointwise"})
