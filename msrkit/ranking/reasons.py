"""Reasons a person can read: which components placed a candidate, and the evidence each saw.

Each reason is built from evidence the pipeline already holds (retrieval's
:class:`~msrkit.retrieval.evidence.Support`), in the order of the components' shares in the
candidate's score: the words its title shares with a history item's title and the terms
(keywords, genres) it shares with one (item text), the history items other users took it
soon after, with how many distinct users did ("often" only from :data:`OFTEN` users up; below
that the number), how many of the similar users searched took it near an item they share with
this user, and, where the model gave one, the model's own short reason. Every count is the one
in the ranking's ``diagnostics["support"]``. An item without a title is named by its id, never
quoted as if the id were a title. Ranks and scores stay in ``diagnostics``, never in a reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..data import Item
from ..inputs.text import WORD, item_terms, words

if TYPE_CHECKING:
    from ..retrieval.evidence import Support

__all__ = ["NO_SIGNAL", "OFTEN", "explain"]

#: the history items a reason may cite: the most recent ones (a 10,000-item history made reasons quadratic)
RECENT_ITEMS = 200
#: distinct users from which "often" is said
OFTEN = 3
#: how a reason begins when no evidence connects the candidate to the history
NO_SIGNAL = "No history signal connects it"

#: which sentences speak for which component (T and L read the same transitions)
KIND = {"text": "text", "transitions": "follows", "long": "follows", "users": "similar"}
_Seen = tuple[str, frozenset[str], frozenset[str]]  # name, terms, title words


def _name(item: Item | None, item_id: str) -> str:
    """“Title”, or ``item <id>`` for an item without one (an id is not a title)."""
    if item is not None and item.title:
        return f"“{item.title}”"
    return f"item {item_id}"


def _join(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _best(candidate: frozenset[str], history: Sequence[_Seen], field: int) -> list[tuple[str, list[str]]]:
    """The (at most two) history items sharing the most of ``candidate`` in ``field``, the most recent first on ties."""
    matches = []
    for age, seen in enumerate(history):
        shared = sorted(candidate & (seen[1] if field == 1 else seen[2]))
        if shared:
            matches.append((-len(shared), age, seen[0], shared))
    return [(name, shared) for _, _, name, shared in sorted(matches)[:2]]


def _terms(candidate: Item, history: Sequence[_Seen]) -> str:
    """``Shares sci-fi, space with “Alien” and “Star Wars”.``"""
    terms = item_terms(candidate)
    best = _best(frozenset(terms), history, 1)
    if not best:
        return ""
    shared = [t for t in terms if any(t in s for _, s in best)][:3]
    return f"Shares {', '.join(shared)} with {_join([name for name, _ in best])}."


def _title_words(title: str | None) -> frozenset[str]:
    """The title's index words, numbers left out (a shared year says nothing a reader would take as a reason)."""
    return frozenset(w for w in words(title or "") if not w.isdigit())


def _title(candidate: Item, history: Sequence[_Seen]) -> str:
    """``Its title shares “Zelda” with “Zelda: Breath of the Wild”.`` (words as the candidate's title spells them)."""
    if not candidate.title:
        return ""
    best = _best(_title_words(candidate.title), history, 2)
    if not best:
        return ""
    shared = {w for _, s in best for w in s}
    title, lower = candidate.title, candidate.title.lower()
    spans = [m.span() for m in WORD.finditer(lower) if m.group() in shared]
    as_spelled = len(lower) == len(title)  # lower() kept every position: quote the title's own spelling
    spelled = list(dict.fromkeys((title if as_spelled else lower)[a:b] for a, b in spans))[:3]
    quoted = _join([f"“{w}”" for w in spelled])
    return f"Its title shares {quoted} with {_join([name for name, _ in best])}."


def _follows(evidence: Support, names: Mapping[str, str]) -> list[str]:
    often = [(names.get(i, f"item {i}"), n) for i, n in zip(evidence.follows, evidence.follow_users, strict=True)
             if n >= OFTEN][:2]  # fmt: skip
    few = [(names.get(i, f"item {i}"), n) for i, n in zip(evidence.follows, evidence.follow_users, strict=True)
           if n < OFTEN][: 2 - len(often)]  # fmt: skip
    out = []
    if often:
        out.append(f"Other users often took it soon after {_join([f'{a} ({n} users)' for a, n in often])}.")
    for name, n in few:
        out.append(f"{n} other user{'s' if n != 1 else ''} took it soon after {name}.")
    return out


def _similar(evidence: Support) -> list[str]:
    out = []
    of = f"of the {evidence.neighbours} users most like this one"
    if evidence.similar_users:
        out.append(f"{evidence.similar_users} {of} took it after an item they share.")
    if evidence.similar_before:
        out.append(f"{evidence.similar_before} {of} took it before an item they share.")
    return out


def _evidence(item: Item, evidence: Support | None, history: Sequence[_Seen], names: Mapping[str, str]) -> list[str]:
    """The sentences of each component that placed ``item``, the largest share first; item text always."""
    if evidence is None:
        return [p for p in (_title(item, history), _terms(item, history)) if p]
    by_kind = {
        "text": [_title(item, history), _terms(item, history)],
        "follows": _follows(evidence, names),
        "similar": _similar(evidence),
    }
    order = list(dict.fromkeys(KIND[c] for c in evidence.placed_by if c in KIND))
    order += [k for k in by_kind if k not in order]
    return [p for k in order for p in by_kind[k] if p]


def explain(
    candidates: Sequence[Item],
    history: Sequence[Item],
    *,
    support: Mapping[str, Support],
    model: Mapping[int, str],
    ranked_by: str,
) -> list[str]:
    """One reason per candidate (by index). ``ranked_by`` names what ordered the list when no evidence does."""
    names = {item.item_id: _name(item, item.item_id) for item in history}
    taken = Counter(item.item_id for item in history)
    recent = [
        (item.item_id, (_name(item, item.item_id), frozenset(item_terms(item)), _title_words(item.title)))
        for item in reversed(history[-RECENT_ITEMS:])
    ]  # once for all candidates
    recent = [(i, seen) for i, seen in recent if seen[1] or seen[2]]
    out = []
    for i, item in enumerate(candidates):
        others = [seen for j, seen in recent if j != item.item_id] if item.item_id in taken else [s for _, s in recent]
        parts = _evidence(item, support.get(item.item_id), others, names)
        if item.item_id in taken:  # a repeat (repeats = "allow", or a given candidate the user had)
            n = taken[item.item_id]
            parts.insert(0, f"You took it before ({n} time{'s' if n != 1 else ''}).")
        if i in model:
            parts.append(f"The model: {model[i].rstrip('.')}.")
        out.append(" ".join(parts) or f"{NO_SIGNAL}; placed by {ranked_by}.")
    return out
