"""The candidate bus: item ids that tools read and write, each with where it came from.

Tools put candidates on the bus (search, similar users, similar items), take
them off (filter), and reorder them (rank); the model only ever sees counts and
a few titles (:meth:`CandidateBus.view`), never the whole catalog. With a fixed
candidate list (a history that gives ``candidates``, as in evaluation) the bus
can never hold anything else: the final ranking stays a permutation of them,
and what a tool finds among them is moved to the front (:meth:`CandidateBus.promote`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

from ..data import Item
from ..runtime.prompts import quote

__all__ = ["CandidateBus", "describe"]


def describe(item_id: str, catalog: Mapping[str, Item], *, max_chars: int = 60) -> str:
    """``[id] title`` for the model (the title quoted: item text is data)."""
    item = catalog.get(item_id)
    title = quote(item.title)[:max_chars] if item is not None and item.title else ""
    return f"[{item_id}] {title}".rstrip()


class CandidateBus:
    """Ordered candidate ids with their first source; ``allowed``: the only ids it may ever hold (or ``None``)."""

    def __init__(self, allowed: Iterable[str] | None = None) -> None:
        self.allowed = frozenset(allowed) if allowed is not None else None
        self._items: dict[str, str] = {}
        self.removed: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def ids(self) -> list[str]:
        return list(self._items)

    def source(self, item_id: str) -> str | None:
        return self._items.get(item_id)

    def add(self, ids: Iterable[str], source: str) -> list[str]:
        """Put ``ids`` on the bus (after the ones there); returns those newly added."""
        added = []
        for i in ids:
            if i in self._items or (self.allowed is not None and i not in self.allowed):
                continue
            self._items[i] = source
            self.removed.pop(i, None)
            added.append(i)
        return added

    def promote(self, ids: Iterable[str], source: str) -> list[str]:
        """Move ``ids`` already on the bus to the front (in the order given), now credited to ``source``."""
        moved = [i for i in dict.fromkeys(ids) if i in self._items]
        for i in moved:
            self._items[i] = source
        self.reorder(moved)
        return moved

    def remove(self, ids: Iterable[str], why: str) -> list[str]:
        """Take ``ids`` off the bus; returns those that were on it."""
        gone = [i for i in dict.fromkeys(ids) if i in self._items]
        for i in gone:
            del self._items[i]
            self.removed[i] = why
        return gone

    def reorder(self, ranked: Iterable[str]) -> None:
        """``ranked`` ids first, in that order; the others keep theirs after them."""
        first = [i for i in dict.fromkeys(ranked) if i in self._items]
        rest = [i for i in self._items if i not in set(first)]
        self._items = {i: self._items[i] for i in [*first, *rest]}

    def counts(self) -> dict[str, int]:
        """How many candidates came from each source."""
        return dict(Counter(self._items.values()))

    def view(self, catalog: Mapping[str, Item], *, shown: int = 5) -> str:
        """What the model sees: the count, the count by source, and the first ``shown`` titles."""
        if not self._items:
            return "the candidate list is empty"
        by_source = ", ".join(f"{n} from {s}" for s, n in self.counts().items())
        head = "; ".join(describe(i, catalog) for i in list(self._items)[:shown])
        more = f" (and {len(self._items) - shown} more)" if len(self._items) > shown else ""
        return f"{len(self._items)} candidates ({by_source}); first: {head}{more}"
