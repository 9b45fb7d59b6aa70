"""Prompt templates: files in ``prompts/``, one per task, validated when loaded.

A template is a TOML file::

    id = "listwise_rank"
    version = 1
    placeholders = ["preference", "candidates", "count"]   # each must appear
    max_tokens = 160
    system = "..."
    user = "... $preference ... $candidates ..."

Placeholders are ``$name`` (``$$`` for a literal dollar). The template's
content hash travels into every cache key and every Ranking, so editing a
prompt invalidates exactly the entries it produced. Data put into a prompt is
wrapped by :func:`quote` so item text can never pose as instructions.
"""

from __future__ import annotations

import functools
import hashlib
import re
import string
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..backends.base import ChatRequest, ImagePart, Message, TextPart
from ..data import Item
from ..errors import TemplateError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["PromptTemplate", "PromptSet", "TASKS", "default_prompts_dir", "quote", "render_item"]

#: Every task msrkit prompts for, with the placeholders its template must use.
TASKS: dict[str, tuple[str, ...]] = {
    "image_description": (),
    "item_keywords": ("item", "max_keywords"),
    "item_keywords_batch": ("items", "count", "max_keywords"),
    "preference_first": ("items",),
    "preference_next": ("previous", "items"),
    "listwise_rank": ("preference", "collaborative", "candidates", "count"),
    "yes_no": ("preference", "candidate"),
    "agent": ("request", "history", "state", "candidates", "tools"),
    "agent_plan": ("request", "history", "state", "candidates", "tools"),
}

_PLACEHOLDER = re.compile(r"\$(?:(\$)|([_a-z][_a-z0-9]*)|\{([_a-z][_a-z0-9]*)\})", re.I)


def default_prompts_dir() -> Path:
    """The shipped templates: inside the installed package, or the checkout's ``prompts/``."""
    package = Path(__file__).resolve().parents[1]  # msrkit/ (this module is msrkit/runtime/prompts.py)
    for candidate in (package / "prompts", package.parent / "prompts"):
        if candidate.is_dir():
            return candidate
    raise TemplateError(f"the shipped prompt templates are missing (looked in {package / 'prompts'})")


def quote(text: str | None) -> str:
    """Make untrusted text inert inside a prompt: one line, no delimiters, bounded."""
    if not text:
        return ""
    text = " ".join(str(text).split())
    for bad in ("<<<", ">>>", "<|", "|>"):
        text = text.replace(bad, " ")
    return text[:2000]


def _names(text: str) -> set[str]:
    return {m.group(2) or m.group(3) for m in _PLACEHOLDER.finditer(text) if not m.group(1)}


@dataclass(frozen=True)
class PromptTemplate:
    """One validated template."""

    id: str
    version: int
    system: str
    user: str
    placeholders: tuple[str, ...]
    max_tokens: int = 256
    description: str = ""
    source: str = ""

    @functools.cached_property
    def hash(self) -> str:
        body = "\x00".join((self.id, str(self.version), self.system, self.user, str(self.max_tokens)))
        return hashlib.sha256(body.encode()).hexdigest()[:12]

    @functools.cached_property
    def tag(self) -> str:
        """``id@version#hash``: names exactly which prompt produced a result."""
        return f"{self.id}@v{self.version}#{self.hash}"

    @classmethod
    def from_file(cls, path: Path) -> PromptTemplate:
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{path}: cannot read template: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise TemplateError(f"{path}: not valid TOML: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> PromptTemplate:
        for key in ("id", "version", "user"):
            if key not in data:
                raise TemplateError(f"{source}: template lacks the key '{key}'")
        tid = str(data["id"])
        required = tuple(data.get("placeholders", TASKS.get(tid, ())))
        tpl = cls(
            id=tid,
            version=int(data["version"]),
            system=str(data.get("system", "")),
            user=str(data["user"]),
            placeholders=required,
            max_tokens=int(data.get("max_tokens", 256)),
            description=str(data.get("description", "")),
            source=source,
        )
        tpl._validate()
        return tpl

    def _validate(self) -> None:
        used = _names(self.system) | _names(self.user)
        needed = set(self.placeholders) | set(TASKS.get(self.id, ()))
        missing = sorted(needed - used)
        if missing:
            raise TemplateError(f"{self.source}: template '{self.id}' never uses required placeholder(s) {missing}")
        for text in (self.system, self.user):
            try:
                string.Template(text).substitute({n: "" for n in used})
            except ValueError as exc:
                raise TemplateError(f"{self.source}: template '{self.id}' has a malformed '$': {exc}") from exc

    def render_text(self, **values: Any) -> tuple[str, str]:
        """The system and user text with values filled in."""
        try:
            system = string.Template(self.system).substitute(values)
            user = string.Template(self.user).substitute(values)
        except KeyError as exc:
            raise TemplateError(f"template '{self.id}' needs a value for {exc}") from exc
        return system, user

    def request(self, *, images: list[ImagePart] | None = None, **values: Any) -> ChatRequest:
        """A chat request from this template; images go before the user text."""
        system, user = self.render_text(**values)
        messages = []
        if system.strip():
            messages.append(Message.text("system", system))
        parts: tuple[ImagePart | TextPart, ...] = (*(images or []), TextPart(user))
        messages.append(Message("user", parts))
        return ChatRequest(tuple(messages), max_tokens=self.max_tokens, tag=self.tag)


class PromptSet:
    """The templates for every task, from the shipped folder overlaid by a user's folder."""

    def __init__(self, templates: Mapping[str, PromptTemplate]) -> None:
        self._templates = dict(templates)

    @classmethod
    def load(cls, directory: str | Path | None = None) -> PromptSet:
        found = {t.id: t for t in _load_dir(default_prompts_dir())}
        if directory is not None:
            path = Path(directory)
            if not path.is_dir():
                raise TemplateError(f"{path}: no such prompts folder")
            overrides = _load_dir(path)
            if not overrides:
                raise TemplateError(f"{path}: holds no *.toml templates")
            found.update({t.id: t for t in overrides})
        missing = sorted(set(TASKS) - set(found))
        if missing:
            raise TemplateError(f"no template for task(s) {missing}")
        return cls(found)

    def __getitem__(self, task: str) -> PromptTemplate:
        try:
            return self._templates[task]
        except KeyError:
            raise TemplateError(f"no template '{task}'; known: {sorted(self._templates)}") from None

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(sorted(self._templates.values(), key=lambda t: t.id))

    def tags(self) -> dict[str, str]:
        return {t.id: t.tag for t in self._templates.values()}


def _load_dir(path: Path) -> list[PromptTemplate]:
    return [PromptTemplate.from_file(p) for p in sorted(path.glob("*.toml"))]


def render_item(item: Item, *, max_chars: int = 300, with_description: bool = True) -> str:
    """One line describing an item for a prompt: title, keywords, image description, attributes.

    Every piece of item text passes through :func:`quote`, so it stays data.
    """
    parts = [quote(item.title) or quote(item.item_id)]
    if item.keywords:
        parts.append("keywords: " + quote(", ".join(item.keywords)))
    elif with_description and item.description:
        parts.append(quote(item.description)[:max_chars])
    if item.image_description:
        parts.append("image: " + quote(item.image_description)[:max_chars])
    for key in ("genres", "genre", "category", "categories", "brand"):
        value = item.attributes.get(key)
        if value:
            parts.append(f"{key}: " + quote(", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    return " | ".join(p for p in parts if p)[: max_chars * 2]
