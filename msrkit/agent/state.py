"""Conversation state kept between turns: what was shown, accepted, rejected, and the constraints said so far.

"not that one" and "cheaper" only mean something against what was shown
last; :func:`apply_feedback` reads the few plain phrases msrkit understands by
itself (by words, not by a model) into the state, and every later turn honours
it: rejected items never come back first, constraints filter the candidates.
The message still goes to the model, which may do more with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..data import Item

__all__ = ["Constraint", "TurnState", "apply_feedback"]

_REJECT = re.compile(
    r"\b(?:not (?:that|this|it)(?: one)?|no(?:pe)?,? not|don'?t (?:like|want) (?:that|this|it)|something else|"
    r"another one|seen (?:it|that)|already (?:seen|watched|have) (?:it|that))\b",
    re.I,
)
_ACCEPT = re.compile(r"\b(?:i'?ll take (?:it|that|this)|i will take|sounds good|perfect|yes please)\b", re.I)
_CHEAPER = re.compile(r"\b(?:cheaper|less expensive|lower price|on a budget)\b", re.I)
PRICE_KEYS = ("price", "cost")


class Constraint(BaseModel):
    """A condition on an item attribute: ``attribute op value`` (``op``: eq, lt, gt)."""

    attribute: str
    op: Literal["eq", "lt", "gt"]
    value: Any

    def holds(self, item: Item | None) -> bool:
        """Whether ``item`` meets it (an item without the attribute does not)."""
        if item is None:
            return False
        actual = item.attributes.get(self.attribute)
        if actual is None:
            return False
        if self.op == "eq":
            wanted = str(self.value).lower()
            values = actual if isinstance(actual, list) else re.split(r"[|,;]", str(actual))
            return any(str(v).strip().lower() == wanted for v in values)
        try:
            return float(actual) < float(self.value) if self.op == "lt" else float(actual) > float(self.value)
        except (TypeError, ValueError):
            return False

    def text(self) -> str:
        value = f"{self.value:g}" if isinstance(self.value, float) else str(self.value)
        return f"{self.attribute} {'=' if self.op == 'eq' else '<' if self.op == 'lt' else '>'} {value}"


class TurnState(BaseModel):
    """What a conversation has established (JSON-serialisable: keep it between turns or processes)."""

    turn: int = 0
    shown: list[str] = Field(default_factory=list)
    accepted: list[str] = Field(default_factory=list)
    rejected: list[str] = Field(default_factory=list)
    constraints: list[Constraint] = Field(default_factory=list)
    log: list[dict[str, str]] = Field(default_factory=list)

    def allows(self, item_id: str, catalog: Mapping[str, Item]) -> bool:
        """Not rejected and meeting every constraint."""
        if item_id in self.rejected:
            return False
        return all(c.holds(catalog.get(item_id)) for c in self.constraints)

    def summary(self) -> str:
        """The state in one paragraph for the model (ids only: titles come with the tools' answers)."""
        parts = []
        if self.shown:
            parts.append(f"shown before: {', '.join(self.shown[:5])}")
        if self.accepted:
            parts.append(f"accepted: {', '.join(self.accepted)}")
        if self.rejected:
            parts.append(f"rejected (never recommend again): {', '.join(self.rejected)}")
        if self.constraints:
            parts.append("constraints: " + "; ".join(c.text() for c in self.constraints))
        return "; ".join(parts) or "first turn"


def _price(item: Item | None) -> float | None:
    for key in PRICE_KEYS:
        value = item.attributes.get(key) if item is not None else None
        try:
            return float(value) if value is not None else None
        except (TypeError, ValueError):
            continue
    return None


def apply_feedback(state: TurnState, message: str, catalog: Mapping[str, Item]) -> list[str]:
    """Read plain feedback on the last shown item into ``state``; returns what was understood (for the trace)."""
    notes: list[str] = []
    last = state.shown[0] if state.shown else None
    if last is not None and _REJECT.search(message) and last not in state.rejected:
        state.rejected.append(last)
        notes.append(f"rejected {last}")
    elif last is not None and _ACCEPT.search(message) and last not in state.accepted:
        state.accepted.append(last)
        notes.append(f"accepted {last}")
    if _CHEAPER.search(message):
        prices = [p for p in (_price(catalog.get(i)) for i in state.shown[:3]) if p is not None]
        if prices:
            key = next(k for k in PRICE_KEYS if any(k in (catalog[i].attributes if i in catalog else {})
                                                      for i in state.shown[:3]))  # fmt: skip
            state.constraints = [c for c in state.constraints if not (c.attribute == key and c.op == "lt")]
            state.constraints.append(Constraint(attribute=key, op="lt", value=min(prices)))
            notes.append(f"constraint {key} < {min(prices):g}")
        else:
            notes.append("'cheaper' asked, but the items shown have no price")
    return notes
