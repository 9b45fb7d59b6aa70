"""Reasons a person can read: what in the history a candidate connects to, and who else took it.

Each reason is built from evidence the pipeline already holds: terms (keywords,
genres) the candidate shares with history items, the history items it often
follows in other users' sequences, how many similar users took it next, and,
where the model gave one, the model's own short reason. Ranks and scores stay
in the ranking's ``diagnostics``, never in a reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..data import Item
from ..text import item_terms

if TYPE_CHECKING:
    from ..retrieval.neighbourhood import Support

__all__ = ["explain"]

#: the history items a reason may cite: the most recent ones (a 10,000-item history made reasons quadratic)
RECENT_ITEMS = 200


def _names(names: Sequence[str]) -> str:
    quoted = [f"“{n}”" for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def _connections(candidate: Item, history: Sequence[tuple[str, frozenset[str]]]) -> str:
    """``Shares sci-fi, space with “Alien” and “Star Wars”.`` (``history``: labels and terms, most recent first)."""
    terms = item_terms(candidate)
    if not terms:
        return ""
    matches: list[tuple[int, str, list[str]]] = []
    for age, (label, seen) in enumerate(history):
        shared = [t for t in terms if t in seen]
        if shared:
            matches.append((-len(shared) * 100 + age, label, shared))
    if not matches:
        return ""
    best = sorted(matches)[:2]
    shared = list(dict.fromkeys(t for _, _, s in best for t in s))[:3]
    return f"Shares {', '.join(shared)} with {_names([name for _, name, _ in best])}."


def _support(evidence: Support | None, titles: Mapping[str, str]) -> list[str]:
    if evidence is None:
        return []
    out = []
    if evidence.follows:
        names = [titles.get(i, i) for i in evidence.follows[:2]]
        out.append(f"Other users often took it after {_names(names)}.")
    if evidence.similar_users:
        n = evidence.similar_users
        out.append(f"{n} similar user{'s' if n != 1 else ''} took it next.")
    return out


def explain(
    candidates: Sequence[Item],
    history: Sequence[Item],
    *,
    support: Mapping[str, Support],
    model: Mapping[int, str],
    ranked_by: str,
) -> list[str]:
    """One reason per candidate (by index). ``ranked_by`` names what ordered the list when no evidence does."""
    titles = {item.item_id: item.label() for item in history}
    recent = history[-RECENT_ITEMS:]
    recent_first = [(item.label(), frozenset(item_terms(item))) for item in reversed(recent)]  # once for all
    recent_first = [(label, terms) for label, terms in recent_first if terms]
    out = []
    for i, item in enumerate(candidates):
        parts = [_connections(item, recent_first), *_support(support.get(item.item_id), titles)]
        if i in model:
            parts.append(f"The model: {model[i].rstrip('.')}.")
        text = " ".join(p for p in parts if p)
        out.append(text or f"No history signal connects it; placed by {ranked_by}.")
    return out
