"""One self-contained HTML page showing what was ranked and why.

:func:`write_html` writes, per user: the history (oldest first) with
thumbnails, the preference summary, the ranked candidates (rank, thumbnail,
id, title, score, reason; the score column left out where it is only a
stand-in for the rank, a caption saying what it means), the collaborative
context used, the warnings (first, under the cost line), the degraded flag,
cost, backend and prompt tags. Images are embedded as
downscaled ``data:`` URIs (read through :func:`msrkit.inputs.images.load_image`), so
the page needs no network and no JavaScript; an image that cannot be read
becomes a small box saying why. Every piece of text is HTML-escaped: titles
and reasons come from data files and models and are never trusted.

Each candidate row is ``<tr class="candidate" data-item-id="...">`` and each
history entry ``<figure class="history-item" data-item-id="...">`` so tools
and tests can find them.
"""

from __future__ import annotations

import html
import logging
import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data import History, HistoryEntry, Item, Ranking
from ..errors import MsrkitError
from ..ranking.scale import format_score, score_caption, shows_score
from .runs import replacing, write_text_atomic

if TYPE_CHECKING:
    from ..inputs.images import ImagePolicy

__all__ = ["HtmlReport", "render_html", "write_html", "render_eval_html", "write_eval_html"]

log = logging.getLogger("msrkit")

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1d232b;background:#f6f7f9}
h1{font-size:22px;margin:0 0 16px}
h2{font-size:18px;margin:0 0 6px}
h3{font-size:14px;margin:16px 0 6px;text-transform:uppercase;letter-spacing:.04em;color:#556}
section.user{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:16px 20px;margin-bottom:24px}
.meta{font-size:12px;color:#556;margin:2px 0}
.meta code{background:#eef0f3;padding:1px 4px;border-radius:3px}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}
.badge.degraded{background:#fde2e1;color:#a1261d}
.badge.ok{background:#e1f5e6;color:#1c6b34}
.badge.plain{background:#eef0f3;color:#445}
.summary{background:#f3f6fb;border-left:4px solid #4a7bd1;padding:8px 12px;margin:8px 0;white-space:pre-wrap}
.history{display:flex;flex-wrap:wrap;gap:10px}
figure.history-item{margin:0;width:%(side)dpx;font-size:12px}
figure.history-item figcaption{margin-top:4px;overflow-wrap:anywhere}
.thumb{max-width:%(side)dpx;max-height:%(side)dpx;display:block;border-radius:4px}
div.thumb{width:%(side)dpx;height:%(thin)dpx;box-sizing:border-box;border:1px dashed #b9c0c8;color:#6b7480;
  font-size:11px;padding:6px;overflow:hidden;overflow-wrap:anywhere;background:#fafbfc}
div.thumb.broken{border-color:#d9534f;color:#a1261d;background:#fff5f5}
table.candidates{border-collapse:collapse;width:100%%;font-size:13px}
table.candidates caption{caption-side:bottom;text-align:left;padding-top:6px}
table.candidates th,table.candidates td{border-bottom:1px solid #e6e9ed;padding:6px 8px;text-align:left;
  vertical-align:top}
table.candidates td.rank,table.candidates td.score{text-align:right;font-variant-numeric:tabular-nums}
table.candidates td.thumbcell{width:%(side)dpx}
table.candidates td.id{font-family:ui-monospace,monospace;overflow-wrap:anywhere}
ul.warnings li{color:#8a5a00}
ul.collab li{font-size:12px;overflow-wrap:anywhere}
table.eval{border-collapse:collapse;font-size:13px;background:#fff}
table.eval th,table.eval td{border:1px solid #dde1e6;padding:4px 8px;text-align:right}
table.eval th:first-child,table.eval td:first-child{text-align:left}
.ci{color:#6b7480;font-size:11px}
"""


def _e(value: Any) -> str:
    """Escape anything for use as element text or a quoted attribute value."""
    return html.escape("" if value is None else str(value), quote=True)


#: Encoded pictures kept for reuse within one page.
_THUMBS_KEPT = 512


class _Thumbnails:
    """Each image reference read and encoded once per page; failures kept as their reason."""

    def __init__(self, *, max_side: int, timeout: float, policy: ImagePolicy | None = None) -> None:
        self.max_side = max_side
        self.timeout = timeout
        self.policy = policy
        self._seen: dict[tuple[str, str], str | Exception] = {}

    def html(self, item: Item | None, base_dir: Path | None) -> str:
        if item is None or not item.image:
            return '<div class="thumb none">no image</div>'
        key = (item.image, str(base_dir or ""))
        if key not in self._seen:
            if len(self._seen) >= _THUMBS_KEPT:  # a long report must not hold every picture it showed
                self._seen.clear()
            self._seen[key] = self._load(item.image, base_dir)
        got = self._seen[key]
        if isinstance(got, Exception):
            return f'<div class="thumb broken" title="{_e(got)}">image unavailable: {_e(got)}</div>'
        return f'<img class="thumb" src="{got}" alt="{_e(item.label())}">'

    def _load(self, ref: str, base_dir: Path | None) -> str | Exception:
        from ..inputs.images import load_image, to_data_uri

        try:
            image = load_image(ref, base_dir=base_dir, max_side=self.max_side, timeout=self.timeout, policy=self.policy)
            return to_data_uri(image)
        except (MsrkitError, OSError, ValueError) as exc:
            log.warning("report: image %.80s left out: %s", ref, exc)
            return exc


def _lookup(history: History, catalog: Mapping[str, Item] | None) -> dict[str, Item]:
    """Every item this page may need a picture of: the catalog, then the history's own (resolved) items."""
    known: dict[str, Item] = dict(catalog or {})
    for entry in [*history.history, *(history.candidates or [])]:
        if isinstance(entry, Item):
            known[entry.item_id] = entry
    return known


def _history_html(history: History, known: Mapping[str, Item], thumbs: _Thumbnails) -> str:
    figures = []
    for entry in history.history:
        item = entry if isinstance(entry, HistoryEntry) else known.get(entry)
        item_id = entry.item_id if isinstance(entry, HistoryEntry) else entry
        caption = _e(item.label() if item else item_id)
        figures.append(
            f'<figure class="history-item" data-item-id="{_e(item_id)}">{thumbs.html(item, history.base_dir)}'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    if not figures:
        return '<p class="meta">empty history</p>'
    return f'<div class="history">{"".join(figures)}</div>'


def _candidates_html(ranking: Ranking, history: History, known: Mapping[str, Item], thumbs: _Thumbnails) -> str:
    scored = shows_score(ranking.score_kind)
    rows = []
    for r in ranking.ranking:
        item = known.get(r.item_id)
        title = r.title or (item.title if item else None) or ""
        score = f'<td class="score">{format_score(r.score)}</td>' if scored else ""
        rows.append(
            f'<tr class="candidate" data-item-id="{_e(r.item_id)}" data-rank="{r.rank}">'
            f'<td class="rank">{r.rank}</td><td class="thumbcell">{thumbs.html(item, history.base_dir)}</td>'
            f'<td class="id">{_e(r.item_id)}</td><td class="title">{_e(title)}</td>'
            f'{score}<td class="reason">{_e(r.reason)}</td></tr>'
        )
    head = (f"<tr><th>rank</th><th></th><th>item id</th><th>title</th>{'<th>score</th>' if scored else ''}"
            "<th>reason</th></tr>")  # fmt: skip
    caption = f'<caption class="meta score-caption">{_e(score_caption(ranking.score_kind))}</caption>'
    return f'<table class="candidates">{caption}<thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _list_html(css_class: str, lines: Iterable[str]) -> str:
    items = "".join(f"<li>{_e(line)}</li>" for line in lines)
    return f'<ul class="{css_class}">{items}</ul>' if items else ""


def _meta_html(ranking: Ranking) -> str:
    u = ranking.usage
    if ranking.degraded:
        badge = '<span class="badge degraded">DEGRADED: fell back to retrieval order</span>'
    elif ranking.backend in (None, "none"):
        badge = '<span class="badge plain">retrieval only (no LLM)</span>'
    else:
        badge = '<span class="badge ok">LLM ranking</span>'
    prompts = " ".join(f"<code>{_e(tag)}</code>" for tag in ranking.prompts.values()) or "none"
    return (
        f'<p class="meta">{badge} backend <code>{_e(ranking.backend or "none")}</code></p>'
        f'<p class="meta usage">llm calls {u.llm_calls}, tokens {u.prompt_tokens}+{u.completion_tokens}, '
        f"cache hits {u.cache_hits}, {u.seconds:.2f} s</p>"
        f'<p class="meta prompts">prompts: {prompts}</p>'
    )


def _user_html(history: History, ranking: Ranking, catalog: Mapping[str, Item] | None, thumbs: _Thumbnails) -> str:
    known = _lookup(history, catalog)
    user = ranking.user_id or history.user_id
    parts = [
        f'<section class="user" data-user-id="{_e(user or "")}">',
        f"<h2>{_e(f'user {user}' if user else 'ranking')}</h2>",
        _meta_html(ranking),
        *(["<h3>warnings</h3>", _list_html("warnings", ranking.warnings)] if ranking.warnings else []),
        "<h3>history (oldest first)</h3>",
        _history_html(history, known, thumbs),
        "<h3>preference summary</h3>",
        f'<p class="summary">{_e(ranking.preference_summary)}</p>'
        if ranking.preference_summary
        else '<p class="meta">none</p>',
        "<h3>ranked candidates</h3>",
        _candidates_html(ranking, history, known, thumbs),
    ]
    if ranking.collaborative_context:
        parts += ["<h3>collaborative context</h3>", _list_html("collab", ranking.collaborative_context)]
    parts.append("</section>")
    return "\n".join(parts)


def _page(title: str, body: str, *, max_side: int) -> str:
    return _head(title, max_side=max_side) + body + _TAIL


def _head(title: str, *, max_side: int) -> str:
    css = _CSS % {"side": max_side, "thin": max(40, max_side // 2)}
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{css}</style></head>\n"
        f"<body>\n<h1>{_e(title)}</h1>\n"
    )


_TAIL = "\n</body></html>\n"


def _count_html(n: int) -> str:
    return f'<p class="meta">{n} user{"s" if n != 1 else ""}</p>'


def render_html(
    results: Sequence[tuple[History, Ranking]],
    *,
    max_side: int = 160,
    title: str = "msrkit report",
    catalog: Mapping[str, Item] | None = None,
    image_timeout: float = 5.0,
    image_policy: ImagePolicy | None = None,
) -> str:
    """The report page as text (see :func:`write_html`)."""
    thumbs = _Thumbnails(max_side=max_side, timeout=image_timeout, policy=image_policy)
    users = [_user_html(h, r, catalog, thumbs) for h, r in results]
    return _page(title, _count_html(len(users)) + "\n" + "\n".join(users), max_side=max_side)


def write_html(
    path: str | Path,
    results: Iterable[tuple[History, Ranking]],
    *,
    max_side: int = 160,
    title: str = "msrkit report",
    catalog: Mapping[str, Item] | None = None,
    image_timeout: float = 5.0,
    image_policy: ImagePolicy | None = None,
) -> Path:
    """Write one self-contained HTML page for ``(history, ranking)`` pairs; returns its path.

    ``catalog`` supplies pictures for items the history names only by id
    (generated candidates, bare ids); ``image_policy`` says where images may be
    read from (default: :class:`~msrkit.inputs.images.ImagePolicy`, no private hosts).
    The file is replaced atomically. ``results`` may be a stream: each user's
    section is written as it comes (see :class:`HtmlReport`).

    >>> rec = Recommender("none")                                            # doctest: +SKIP
    >>> h = load_history("history.json")                                     # doctest: +SKIP
    >>> write_html("report.html", [(h, rec.rank(h))])                        # doctest: +SKIP
    PosixPath('report.html')
    """
    with HtmlReport(path, max_side=max_side, title=title, catalog=catalog, image_timeout=image_timeout,
                    image_policy=image_policy) as report:  # fmt: skip
        for history, ranking in results:
            report.add(history, ranking)
    return report.path


class HtmlReport:
    """The page of :func:`render_html` written one user at a time, in memory that does not grow with the users.

    Each :meth:`add` writes that user's section to a temporary file beside
    ``path``; :meth:`close` (the end of a ``with`` block) writes the page (head,
    the count of users, the sections) to ``path`` in one step. A block left by
    an error writes nothing.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_side: int = 160,
        title: str = "msrkit report",
        catalog: Mapping[str, Item] | None = None,
        image_timeout: float = 5.0,
        image_policy: ImagePolicy | None = None,
    ) -> None:
        self.path, self.title, self.max_side, self.catalog = Path(path), title, max_side, catalog
        self.thumbs = _Thumbnails(max_side=max_side, timeout=image_timeout, policy=image_policy)
        self.users = 0
        self._body = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 (closed by close())

    def add(self, history: History, ranking: Ranking) -> None:
        """Write one user's section (history, summary, ranked candidates, context, warnings, cost)."""
        self._body.write(("\n" if self.users else "") + _user_html(history, ranking, self.catalog, self.thumbs))
        self.users += 1

    def close(self) -> Path:
        """Write the page to :attr:`path` atomically; returns it."""
        with self._body, replacing(self.path) as fh:
            fh.write(_head(self.title, max_side=self.max_side) + _count_html(self.users) + "\n")
            self._body.seek(0)
            shutil.copyfileobj(self._body, fh)
            fh.write(_TAIL)
        return self.path

    def __enter__(self) -> HtmlReport:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self._body.close()


# -- evaluation ------------------------------------------------------------------------


def _fmt(value: Any) -> str:
    return "–" if value is None else f"{value:.4f}" if isinstance(value, float) else _e(value)


def _estimate_cell(est: Any) -> str:
    if not isinstance(est, Mapping):
        return f"<td>{_fmt(est)}</td>"
    ci = f'<br><span class="ci">[{_fmt(est.get("low"))}, {_fmt(est.get("high"))}]</span>'
    return f"<td>{_fmt(est.get('mean'))}{ci}</td>"


def render_eval_html(report: Mapping[str, Any] | Any, *, title: str = "msrkit evaluation") -> str:
    """A table of variants × metrics (mean and 95% interval) from a comparison or a single report."""
    data = report.model_dump(mode="json") if hasattr(report, "model_dump") else dict(report)
    rows = data.get("rows")
    if rows is None:  # a single EvalReport
        rows = [{"name": data.get("name", "run"), "metrics": data.get("metrics", {})}]
    metrics: list[str] = []
    for row in rows:
        metrics += [m for m in row.get("metrics", {}) if m not in metrics]
    head = "<tr><th>variant</th>" + "".join(f"<th>{_e(m)}</th>" for m in metrics) + "</tr>"
    body = "".join(
        f'<tr class="variant" data-variant="{_e(row.get("name"))}"><td>{_e(row.get("name"))}</td>'
        + "".join(_estimate_cell(row.get("metrics", {}).get(m)) for m in metrics)
        + "</tr>"
        for row in rows
    )
    baseline = f'<p class="meta">baseline: {_e(data["baseline"])}</p>' if data.get("baseline") else ""
    table = f'{baseline}<table class="eval"><thead>{head}</thead><tbody>{body}</tbody></table>'
    return _page(title, table, max_side=160)


def write_eval_html(path: str | Path, report: Mapping[str, Any] | Any, *, title: str = "msrkit evaluation") -> Path:
    """Write :func:`render_eval_html` to ``path`` atomically; ``report`` is a Comparison, an EvalReport or its JSON."""
    return write_text_atomic(path, render_eval_html(report, title=title))
