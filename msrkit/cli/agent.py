"""``msrkit agent`` (one conversational turn) and ``msrkit chat`` (an interactive conversation).

Both turn flags into Settings, call :meth:`~msrkit.recommender.Recommender.chat`
and print the ranking, the reply and what the agent did. ``--trace FILE`` appends
every step as JSON lines; ``--state FILE`` keeps the conversation (shown,
accepted, rejected, constraints) between one-turn commands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from ..escape import to_json
from .common import guard, safe, setup_logging
from .options import (
    CacheOptions,
    DeadlineOpt,
    GeneralOptions,
    ModelOptions,
    OptionGroup,
    RetrievalOptions,
    option_groups,
    settings,
)

__all__ = ["agent_cmd", "chat_cmd"]

TopKOpt = Annotated[int, typer.Option("--top-k", "-k", min=1, help="Show only the first K.")]
EXIT_WORDS = {"quit", "exit", "bye", ":q"}


@dataclass(frozen=True)
class AgentOptions(OptionGroup):
    """``--max-turns``, ``--deadline``, ``--plan-first``, ``--trace``: how the agent works, and its record."""

    not_settings = frozenset({"trace"})
    agent_max_turns: Annotated[int | None, typer.Option("--max-turns", min=1, help="Most model turns per request.")] = (
        None
    )
    deadline: DeadlineOpt = None
    agent_plan_first: Annotated[
        bool | None, typer.Option("--plan-first/--step-by-step", help="One planned list of tool calls, then run it.")
    ] = None
    trace: Annotated[
        Path | None, typer.Option("--trace", help="Append every step of the agent as JSON lines here.")
    ] = None


def _recommender(*groups: OptionGroup, config: Path | None) -> Any:
    """The Recommender for the command's options."""
    from ..recommender import Recommender

    return Recommender(settings=settings(*groups, config=config))


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


@option_groups
def agent_cmd(
    path: Annotated[Path, typer.Argument(help="history.json of one user.")],
    message: Annotated[str, typer.Argument(help="What the user says, e.g. 'something lighter' or 'not that one'.")],
    *,
    model: ModelOptions,
    data: RetrievalOptions,
    cache: CacheOptions,
    agent: AgentOptions,
    state: Annotated[
        Path | None, typer.Option("--state", help="Conversation state JSON: read if present, written after the turn.")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the ranking, reply and state as JSON.")] = False,
    top_k: TopKOpt = 5,
    general: GeneralOptions,
) -> None:
    """One turn of the agent: it calls msrkit's tools (bounded), then ranks; falls back to the pipeline if it must."""
    quiet, trace = general.quiet, agent.trace
    setup_logging(general.verbose, quiet)

    def run() -> None:
        with _recommender(model, data, cache, agent, config=general.config) as rec:
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


@option_groups
def chat_cmd(
    path: Annotated[Path, typer.Argument(help="history.json of one user.")],
    *,
    model: ModelOptions,
    data: RetrievalOptions,
    cache: CacheOptions,
    agent: AgentOptions,
    top_k: TopKOpt = 5,
    general: GeneralOptions,
) -> None:
    """Talk with the agent about one user's next items ('not that one', 'cheaper', ...); 'quit' or Ctrl-D ends."""
    setup_logging(general.verbose, general.quiet)

    def run() -> None:
        with _recommender(model, data, cache, agent, config=general.config) as rec:
            history = rec.load(path)
            state = None
            message: str | None = None
            while True:
                result = rec.chat(history, message, state)
                state = _after(result, trace=agent.trace, quiet=general.quiet, top_k=top_k)
                try:
                    message = input("you> ").strip()
                except EOFError:
                    break
                if message.lower() in EXIT_WORDS:
                    break

    guard(run)
