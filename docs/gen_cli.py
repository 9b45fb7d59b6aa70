"""Write docs/cli-reference.md from the Typer app: every command's help, as ``--help`` prints it.

    python docs/gen_cli.py            # rewrite docs/cli-reference.md
    python docs/gen_cli.py --check    # exit 1 when the committed page differs

The text is click's plain formatter at a fixed width (100 columns), so the page is
the same on every machine; ``tests/test_docs.py`` checks the committed page equals it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer

PAGE = Path(__file__).resolve().parent / "cli-reference.md"
WIDTH = 100

HEADER = """\
# Command-line reference

Generated from the command line itself by `python docs/gen_cli.py` (a test checks this
page equals what it writes): every command's `--help`, at 100 columns. The tour of the
commands is [Command line](cli.md); exit codes are listed there too.
"""


# Typer builds click objects (its own copy of click in recent versions): only their API is used here.
def _commands(ctx: Any) -> Iterator[Any]:
    """``ctx`` and every command below it, depth first, in the order ``--help`` lists them."""
    yield ctx
    command = ctx.command
    if hasattr(command, "list_commands"):
        for name in command.list_commands(ctx):
            sub = command.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                yield from _commands(_context(sub, name, ctx))


def _context(command: Any, name: str, parent: Any) -> Any:
    """A context at the fixed width, of the command's own context class."""
    return command.context_class(command, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)


def render() -> str:
    """The reference page, as markdown."""
    from msrkit.cli import app

    root = _context(typer.main.get_command(app), "msrkit", None)
    parts = [HEADER]
    for ctx in _commands(root):
        help_text = "\n".join(line.rstrip() for line in ctx.command.get_help(ctx).splitlines())
        parts.append(f"## `{ctx.command_path}`\n\n```text\n{help_text.strip()}\n```\n")
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        same = PAGE.is_file() and PAGE.read_text(encoding="utf-8") == text
        print("docs/cli-reference.md is up to date" if same else "docs/cli-reference.md differs: run docs/gen_cli.py")
        return 0 if same else 1
    PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
