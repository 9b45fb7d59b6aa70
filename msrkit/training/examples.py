"""Training examples, built by running the inference pipeline itself.

Each case goes through :class:`~msrkit.recommender.Recommender` with a
:class:`Recorder` as its model: the request the ranking stage sends is kept, so
an example's messages are byte for byte what ``msrkit rank`` sends for the same
case, settings and prompts (summaries, collaborative context, window, the
explanation request). Only the answer is ours:

- ``rank``: candidates are retrieval's top ``n_candidates`` (the pipeline's own
  candidate generation, from an index that sees only interactions before each
  case's target), *shown in a seeded random order* so the model cannot learn to
  echo the order it is shown; the answer is the target's label alone (``[7]``).
  All the loss is on that pick: an answer that went on to list the other
  candidates spent ~95 % of its tokens on an order the model cannot know (two
  runs here learned the list's pattern, not the pick). At inference the
  ranking stage's repair appends the candidates the model did not name in the
  order shown, which in the pipeline is retrieval's, so the model promotes its
  pick and retrieval orders the rest. A case whose target retrieval did not
  find is skipped (a reranker cannot help there) and counted.
  ``rank_answer="list"`` teaches more of the order: the target's label, then
  every other label whose line shows ``evidence: top``, ``strong`` or ``some``,
  in that order, ties in the order shown; the ``weak`` rest is left to the
  repair. Everything after the pick is a function of the prompt the model can
  learn to read, unlike retrieval's own order (the earlier runs' lists), so the
  list's tokens train the model to read the evidence column, the skill the
  pick needs too. (A list that went on through the ``weak`` tail, in the order
  shown, taught the model to count up, not to read: measured, docs/finetune.md.)
- ``pointwise``: MLLM-MSR's yes/no on the same candidates, balanced: the target
  (``Yes``) and one seeded negative (``No``) per case.

The keyword task lives in :mod:`.keyword_tuning`.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from ..backends.base import Capabilities, ChatRequest, ChatResponse
from ..config import Settings
from ..data import History, Item
from ..errors import InputError
from ..inputs.io import Interaction, resolve
from ..ranking.prompting import EVIDENCE_WORDS
from ..retrieval import CollaborativeIndex, build_index, query
from ..retrieval.interactions import Interactions

__all__ = ["Example", "ExampleSet", "Recorder", "build_examples", "split_users"]

Task = Literal["rank", "pointwise"]
RankAnswer = Literal["pick", "list"]
RANKING_TEMPLATES = ("listwise_rank", "yes_no")


@dataclass(frozen=True)
class Example:
    """One supervised example: the chat messages inference sends, and the answer to learn."""

    user_id: str
    task: str
    messages: tuple[dict[str, str], ...]
    answer: str
    #: rank: the candidate ids in the order shown (the prompt's [1], [2], ...); pointwise: the one candidate
    shown: tuple[str, ...] = ()
    #: rank: retrieval's order of ``shown`` (positions, best first); for fusion and teacher answers
    retrieval_order: tuple[int, ...] = ()
    target: str | None = None
    label: int | None = None

    def to_chat(self) -> dict[str, Any]:
        """The example in the chat format of ``export-sft`` (and hosted fine-tuning APIs)."""
        return {"messages": [*self.messages, {"role": "assistant", "content": self.answer}]}


@dataclass
class ExampleSet:
    """Examples and what building them counted (cases skipped, and why)."""

    examples: list[Example] = field(default_factory=list)
    cases: int = 0
    skipped: dict[str, int] = field(default_factory=dict)

    def skip(self, why: str, n: int = 1) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + n

    def absorb(self, other: ExampleSet) -> None:
        """Add ``other``'s examples and counts to this set's (the parts of a multi-task set)."""
        self.examples.extend(other.examples)
        self.cases += other.cases
        for why, n in other.skipped.items():
            self.skip(why, n)

    @property
    def users(self) -> set[str]:
        return {e.user_id for e in self.examples}

    def digest(self) -> str:
        """A hash of the examples' text: the data identity recorded in an adapter's manifest."""
        h = hashlib.sha256()
        for e in self.examples:
            h.update(json.dumps(e.to_chat(), sort_keys=True, ensure_ascii=False).encode())
        return h.hexdigest()


class Recorder:
    """A model that keeps the ranking stage's requests and answers them with the order shown.

    Only the ranking templates (``listwise_rank``, ``yes_no``) may reach it: a
    summary request means the settings ask the model for item keywords or
    preference summaries, which a training run needs made by a real model first
    (``msrkit summarize``); it is refused with an :class:`InputError` saying so.
    """

    name = "recorder"
    model = "recorder"

    def __init__(self) -> None:
        self.requests: list[ChatRequest] = []

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(vision=False, logprobs=True, json_schema=False, tools=False)

    def identity(self) -> dict[str, str]:
        return {"backend": "recorder"}

    def chat(self, request: ChatRequest) -> ChatResponse:
        template = request.tag.split("@", 1)[0]
        if template not in RANKING_TEMPLATES:
            raise InputError(
                f"building training examples asked the model for {template!r}: make item summaries first "
                "(msrkit summarize) or train with item_summaries and preference_summary off"
            )
        self.requests.append(request)
        if template == "yes_no":  # an even verdict, with the log-probabilities a scorer reads (no fallback warning)
            return ChatResponse(text="Yes", top_logprobs=[{"Yes": -0.6931, "No": -0.6931}])
        n = request.messages[-1].text_content.count("\n[")
        return ChatResponse(text=" > ".join(f"[{i}]" for i in range(1, n + 2)))

    def close(self) -> None:
        return None


def split_users(cases: Sequence[History], *, fraction: float, seed: int) -> tuple[list[History], list[History]]:
    """Cases split by user: about ``fraction`` of the users (seeded) go to the second list."""
    users = sorted({str(c.user_id) for c in cases})
    rng = random.Random(seed)
    rng.shuffle(users)
    held = set(users[: max(1, round(len(users) * fraction))]) if fraction > 0 and len(users) > 1 else set()
    return [c for c in cases if str(c.user_id) not in held], [c for c in cases if str(c.user_id) in held]


def build_examples(
    cases: Sequence[History],
    *,
    task: Task,
    settings: Settings,
    catalog: dict[str, Item],
    interactions: Interactions | Sequence[Interaction],
    seed: int = 0,
    index: CollaborativeIndex | None = None,
    rank_answer: RankAnswer = "pick",
) -> ExampleSet:
    """Examples for ``task`` from evaluation cases (each with a ``target``); see the module docstring.

    The index, unless given, is built as every path builds it (:func:`msrkit.retrieval.build_index`) from
    ``interactions`` less each case's target and what came after it, so the candidates are those
    ``msrkit rank --interactions`` generates.
    """
    if task not in ("rank", "pointwise"):
        raise InputError(f"unknown task {task!r}: choose rank or pointwise")
    _check_targets(cases)
    if index is None:
        index = build_index(settings, rows=interactions, catalog=catalog, cases=cases)
    out = ExampleSet()
    for case in cases:
        out.cases += 1
        shown = _shown_candidates(case, index, settings, catalog, seed, out)
        if shown is not None:
            out.examples.extend(_examples(case, shown, task, settings, catalog, index, seed, rank_answer))
    return out


def _check_targets(cases: Iterable[History]) -> None:
    for n, case in enumerate(cases, 1):
        if not case.target:
            where = case.source or f"case {n} (user {case.user_id})"
            raise InputError(f"{where}: a training case needs a 'target' (the item the user took next)", path="target")


def _rng(seed: int, user: str) -> random.Random:
    return random.Random(f"{seed}:{user}")


def _shown_candidates(
    case: History, index: CollaborativeIndex, s: Settings, catalog: dict[str, Item], seed: int, out: ExampleSet
) -> tuple[list[str], list[int]] | None:
    """Retrieval's candidates in a seeded random order, and retrieval's order of them (positions)."""
    seen = [e if isinstance(e, str) else e.item_id for e in case.history]
    hood = query(index, seen, n=s.n_candidates, exclude_user=case.user_id, context_k=0, support=False)
    ranked = [i for i, _ in hood.candidates]
    if case.target not in ranked:
        out.skip("target not among retrieval's candidates")
        return None
    shown = list(ranked)
    _rng(seed, str(case.user_id)).shuffle(shown)
    where = {c: n for n, c in enumerate(shown)}
    return shown, [where[c] for c in ranked]


def _examples(
    case: History,
    shown_order: tuple[list[str], list[int]],
    task: Task,
    s: Settings,
    catalog: dict[str, Item],
    index: CollaborativeIndex,
    seed: int,
    rank_answer: RankAnswer,
) -> list[Example]:
    from ..recommender import Recommender

    shown, order = shown_order
    recorder = Recorder()
    settings = s.model_copy(update={"pointwise": task == "pointwise", "shown_order": "given"})
    history = resolve(case.model_copy(update={"candidates": list(shown), "target": None}), catalog)
    with Recommender(recorder, settings=settings, catalog=catalog, index=index, cache=False) as rec:
        rec.rank(history)
    target = str(case.target)
    user = str(case.user_id)
    if task == "rank":
        return [_rank_example(recorder.requests[-1], user, shown, order, target, rank_answer)]
    return _pointwise_examples(recorder.requests, user, shown, target, _rng(seed + 1, user))


def _messages(request: ChatRequest) -> tuple[dict[str, str], ...]:
    return tuple({"role": m.role, "content": m.text_content} for m in request.messages)


def _rank_example(
    request: ChatRequest, user: str, shown: list[str], order: list[int], target: str, rank_answer: RankAnswer
) -> Example:
    pick = shown.index(target)
    labels = [pick]
    if rank_answer == "list":
        levels = evidence_levels(request.messages[-1].text_content, len(shown))
        # the weak tail is left to the repair (the order shown): as list tokens it taught "count up"
        labels += sorted((i for i in range(len(shown)) if i != pick and levels[i] < WEAK), key=lambda i: (levels[i], i))
    answer = " > ".join(f"[{i + 1}]" for i in labels)
    return Example(user, "rank", _messages(request), answer, tuple(shown), tuple(order), target)


_LEVELS = {word: n for n, word in enumerate(EVIDENCE_WORDS)}
WEAK = _LEVELS["weak"]


def evidence_levels(prompt: str, count: int) -> list[int]:
    """Per label ``[1]..[count]``, the rank of the evidence word its candidate line in ``prompt`` ends with.

    ``top`` 0 to ``weak`` 3; a label whose line carries no evidence note gets 4 (so with evidence off
    every label ties and a ``list`` answer keeps the order shown).
    """
    levels = [len(_LEVELS)] * count
    for line in prompt.splitlines():
        head, sep, word = line.rpartition(" | evidence: ")
        if not sep or word not in _LEVELS or not head.startswith("["):
            continue
        label = head[1 : head.find("]")]
        if label.isdigit() and 1 <= int(label) <= count:
            levels[int(label) - 1] = _LEVELS[word]
    return levels


def _pointwise_examples(
    requests: list[ChatRequest], user: str, shown: list[str], target: str, rng: random.Random
) -> list[Example]:
    """The target's yes/no request (``Yes``) and one seeded negative's (``No``)."""
    if len(requests) != len(shown):
        raise InputError(f"expected one yes/no request per candidate, got {len(requests)} for {len(shown)}")
    negative = rng.choice([c for c in shown if c != target])
    out = []
    for item, request in zip(shown, requests, strict=True):
        if item in (target, negative):
            label = int(item == target)
            out.append(Example(user, "pointwise", _messages(request), "Yes" if label else "No", (item,), (), target,
                               label))  # fmt: skip
    return out
