"""The ``msrkit`` command line: a thin layer over the library, one module per command group.

Each command turns its flags into :class:`~msrkit.config.Settings`, makes one
library call and prints. Exit codes are :data:`msrkit.errors.EXIT_CODES`.

- :mod:`.rank` — ``rank``;
- :mod:`.summarize` — ``summarize``;
- :mod:`.evaluate` — ``eval``, ``eval-keywords``, ``export-sft``;
- :mod:`.finetune` — ``finetune`` (LoRA on the user's cases, extra ``msrkit[train]``);
- :mod:`.data` — ``data movielens|recbole|amazon``, ``index build``;
- :mod:`.agent` — ``agent`` (one conversational turn), ``chat`` (interactive);
- :mod:`.mcp_cmd` — ``mcp`` (msrkit's tools over the Model Context Protocol);
- :mod:`.admin` — ``backends``, ``prompts``, ``cache``, ``config``;
- :mod:`.options` — the options commands share, each declared once, and the settings they make;
- :mod:`.common` — errors to exit codes, logging, terminal-safe text, sharded runs.
"""

from __future__ import annotations

import typer

from . import admin, agent, data, evaluate, finetune, mcp_cmd, summarize
from . import rank as rank_module
from .common import EPILOG

__all__ = ["app", "main"]

app = typer.Typer(
    name="msrkit",
    help="Multimodal sequential recommendation with (multimodal) LLMs: rank what a user takes next.",
    epilog=EPILOG,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
app.command(epilog="Example: msrkit rank examples/history.json --top-k 5   |   msrkit rank users.jsonl --json")(
    rank_module.rank
)
app.command(epilog="Example: msrkit summarize items.jsonl --out items.enriched.jsonl")(summarize.summarize)
app.command(
    "eval",
    epilog="Example: msrkit eval data/ml-100k/cases.jsonl --catalog data/ml-100k/items.jsonl "
    "--interactions data/ml-100k/interactions.jsonl --ablations --limit 50",
)(evaluate.eval_cmd)
app.command(
    "eval-keywords",
    epilog="Example: msrkit eval-keywords items.jsonl --prompts prompts/ --prompts my_variant/ --limit 50",
)(evaluate.eval_keywords)
app.command("export-sft", epilog="Example: msrkit export-sft cases.jsonl --catalog items.jsonl --out sft.jsonl")(
    evaluate.export_sft_cmd
)
app.command(
    "finetune",
    epilog="Example: msrkit finetune data/ml-100k/cases.jsonl --catalog data/ml-100k/items.jsonl "
    "--interactions data/ml-100k/interactions.jsonl --task rank --max-steps 200 --out adapters/ml",
)(finetune.finetune_cmd)
app.command("agent", epilog="Example: msrkit agent history.json 'something lighter' --state chat.json --trace t.jsonl")(
    agent.agent_cmd
)
app.command("chat", epilog="Example: msrkit chat history.json --catalog items.jsonl --interactions inter.jsonl")(
    agent.chat_cmd
)
app.command("mcp", epilog="Example: msrkit mcp --catalog items.jsonl --interactions interactions.jsonl")(
    mcp_cmd.mcp_cmd
)
app.command(epilog="Example: msrkit backends --json")(admin.backends)
app.add_typer(admin.prompts_app, name="prompts")
app.add_typer(admin.cache_app, name="cache")
app.add_typer(admin.config_app, name="config")
app.add_typer(data.index_app, name="index")
app.add_typer(data.data_app, name="data")


def main() -> None:
    """Console-script entry point."""
    app()
