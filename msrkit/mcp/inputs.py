"""What an MCP client may send: the tools' input types, with every cap in the type (so in the schema).

The MCP SDK builds each tool's JSON schema from its signature and validates every call against
it, so a wrong shape (``history`` that is not a list, ``top_k=-1``, 300 ids) is refused before
msrkit runs, with an error naming the field. The caps bound what one call can cost: the ids one
call may summarize, the candidates one ranking may hold (each window is a model call), the
history it reads. A :class:`ToolHistory` *is* a :class:`~msrkit.data.History` (only its lists
capped), so the tools hand it to the Recommender as it is.

Nothing here imports the SDK.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..data import History, HistoryEntry, Item

__all__ = [
    "MAX_CANDIDATES",
    "MAX_HISTORY",
    "MAX_IDS",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "ItemId",
    "ItemIds",
    "Query",
    "Message",
    "TopK",
    "NeighbourK",
    "Limit",
    "ToolHistory",
]

#: item ids one ``summarize_items`` or ``similar_users`` call may name
MAX_IDS = 100
#: candidates one ranking may hold (a window of ``window`` candidates is one model call)
MAX_CANDIDATES = 200
#: history entries one ranking may read
MAX_HISTORY = 200
#: characters of one id
MAX_ID_CHARS = 200
#: characters of a query or a message
MAX_TEXT_CHARS = 2000

ItemId = Annotated[str, Field(min_length=1, max_length=MAX_ID_CHARS)]
ItemIds = Annotated[list[ItemId], Field(min_length=1, max_length=MAX_IDS, description=f"at most {MAX_IDS} item ids")]
Query = Annotated[str, Field(min_length=1, max_length=MAX_TEXT_CHARS)]
Message = Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
TopK = Annotated[int, Field(ge=1, le=MAX_CANDIDATES, description="how many ranked items to return")]
NeighbourK = Annotated[int, Field(ge=1, le=50, description="how many similar users")]
Limit = Annotated[int, Field(ge=1, le=100, description="how many items to return")]


class ToolHistory(History):
    """A ``history.json`` object as an MCP client sends it: at most :data:`MAX_HISTORY` entries and
    :data:`MAX_CANDIDATES` candidates (bare item ids or items)."""

    user_id: Annotated[str, Field(max_length=MAX_ID_CHARS)] | None = None
    history: list[HistoryEntry | ItemId] = Field(default_factory=list, max_length=MAX_HISTORY)
    candidates: list[Item | ItemId] | None = Field(default=None, max_length=MAX_CANDIDATES)
