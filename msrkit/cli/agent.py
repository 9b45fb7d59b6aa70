"""``msrkit agent`` (one conversational turn) and ``msrkit chat`` (an interactive conversation).

Both turn flags into Settings, call :meth:`~msrkit.recommender.Recommender.chat`
and print the ranking, the reply and what the agent did. ``--trace FILE`` appends
every step as JSON lines; ``--state FILE`` keeps the conversation (shown,
accepted, rejected, constraints) between one-turn commands.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ..escape import to_json
from .common import (
    AdapterOpt,
    BackendOpt,
    BackendOptionOpt,
    BaseUrlOpt,
    CacheDirOpt,
    CatalogOpt,
    ConfigOpt,
    DeadlineOpt,
    IndexOpt,
    InteractionsOpt,
    NoCacheOpt,
    QuietOpt,
    VerboseOpt,
    guard,
    safe,
    settings,
    setup_logging,
)

__all__ = ["agent_cmd", "chat_cmd"]

TraceOpt = Annotated[Path | None, typer.Option("--trace", help="Append every step of the agent as JSON lines here.")]
MaxTurnsOpt = Annotated[int | None, typer.Option("--max-turns", min=1, help="Most model turns per request.")]
PlanFirstOpt = Annotated[
    bool | None, typer.Option("--plan-first/--step-by-step", help="One planned list of tool calls, then run it.")
]
EXIT_WORDS = {"quit", "exit", "bye", ":q"}


def _recommender(config: Path | None, no_cache: bool, **given: Any) -> Any:
    """The Recommender for the given flags (renamed to their settings)."""
    from ..recommender import Recommender

    keys = {"max_turns": "agent_max_turns", "plan_first": "agent_plan_first", "backend_option": "backend_options"}
    flags = {keys.get(k, k): v for k, v in given.items()}
    return Recommender(settings=settings(flags, config=config, no_cache=no_cache))


def _load_state(path: Path | None) -> Any:
    from ..agent import TurnState
    from ..errors import InputError

    if path is None or not path.exists():
        return None
    try:
        return TurnState.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise InputError(f"not a conversation state: {exc}", source=str(path)) from None


def _show(result: Any, *, quiet: bool, top_k: int) -> None:
    from rich.console import Console
    from rich.markup import escape

    from .rank import print_ranking

    ranking = result.ranking.model_copy(update={"ranking": result.ranking.ranking[:top_k]})
    print_ranking(ranking, quiet=quiet)
    console = Console()
    console.print(f"[bold]agent:[/bold] {escape(safe(result.reply))}", highlight=False)
    if not quiet:
        s = result.trace.summary()
        did = ", ".join(f"{st.tool}[{st.status}]" for st in result.trace.steps if st.kind == "tool") or "no tool calls"
        console.print(f"[dim]{s['model_turns']} model turn(s): {escape(safe(did))}"
                      + (f" — fell back: {escape(safe(s['fallback']))}" if s["fallback"] else "") + "[/dim]",
                      highlight=False)  # fmt: skip


def _after(result: Any, *, trace: Path | None, quiet: bool, top_k: int) -> Any:
    """Write the turn's trace, show it; the state for the next turn."""
    if trace is not None:
        result.trace.write_jsonl(trace)
    _show(result, quiet=quiet, top_k=top_k)
    return result.state


def agent_cmd(
    path: Annotated[Path, typer.Argument(help="history.json of one user.")],
    message: Annotated[str, typer.Argument(help="What the user says, e.g. 'something lighter' or 'not that one'.")],
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    backend_option: BackendOptionOpt = None,
    adapter: AdapterOpt = None,
    catalog: CatalogOpt = None,
    interactions: InteractionsOpt = None,
    index: IndexOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    max_turns: MaxTurnsOpt = None,
    deadline: DeadlineOpt = None,
    plan_first: PlanFirstOpt = None,
    trace: TraceOpt = None,
    state: Annotated[
        Path | None, typer.Option("--state", help="Conversation state JSON: read if present, written after the turn.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the ranking, reply and state as JSON.")] = False,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Show only the first K.")] = 5,
    config: ConfigOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """One turn of the agent: it calls msrkit's tools (bounded), then ranks; falls back to the pipeline if it must."""
    setup_logging(verbose, quiet)

    def run() -> None:
        with _recommender(config, no_cache, backend=backend, base_url=base_url, backend_option=backend_option,
                          adapter=adapter, catalog=catalog, interactions=interactions, index=index,
                          cache_dir=cache_dir, max_turns=max_turns, plan_first=plan_first,
                          deadline=deadline) as rec:  # fmt: skip
            result = rec.chat(path, message, _load_state(state))
        if state is not None:
            state.write_text(to_json(result.state, indent=2), encoding="utf-8")
        if json_out:
            out = {"ranking": result.ranking.model_dump(), "reply": result.reply, "state": result.state.model_dump(),
                   "trace": result.trace.summary()}  # fmt: skip
            if trace is not None:
                result.trace.write_jsonl(trace)
            typer.echo(to_json(out))
        else:
            _after(result, trace=trace, quiet=quiet, top_k=top_k)

    guard(run)


def chat_cmd(
    path: Annotated[Path, typer.Argument(help="history.json of one user.")],
    backend: BackendOpt = None,
    base_url: BaseUrlOpt = None,
    backend_option: BackendOptionOpt = None,
    adapter: AdapterOpt = None,
    catalog: CatalogOpt = None,
    interactions: InteractionsOpt = None,
    index: IndexOpt = None,
    cache_dir: CacheDirOpt = None,
    no_cache: NoCacheOpt = False,
    max_turns: MaxTurnsOpt = None,
    deadline: DeadlineOpt = None,
    plan_first: PlanFirstOpt = None,
    trace: TraceOpt = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="Show only the first K.")] = 5,
    config: ConfigOpt = None,
    verbose: VerboseOpt = 0,
    quiet: QuietOpt = False,
) -> None:
    """Talk with the agent about one user's next items ('not that one', 'cheaper', ...); 'quit' or Ctrl-D ends."""
    setup_logging(verbose, quiet)

    def run() -> None:
        with _recommender(config, no_cache, backend=backend, base_url=base_url, backend_option=backend_option,
                          adapter=adapter, catalog=catalog, interactions=interactions, index=index,
                          cache_dir=cache_dir, max_turns=max_turns, plan_first=plan_first,
                          deadline=deadline) as rec:  # fmt: skip
            history = rec.load(path)
            state = None
            message: str | None = None
            while True:
                result = rec.chat(history, message, state)
                state = _after(result, trace=trace, quiet=quiet, top_k=top_k)
                try:
                    message = input("you> ").strip()
                except EOFError:
                    break
                if message.lower() in EXIT_WORDS:
                    break

    guard(run)
