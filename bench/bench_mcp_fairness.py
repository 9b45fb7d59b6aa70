"""One MCP client's model-heavy call against another's cheap one (issue 20, row 3: the second waited 43.5 s).

Client A calls ``summarize_items`` on N ids, over a scripted backend taking 50 ms per model
call; client B calls ``search_catalog`` 0.5 s later; A cancels its call 2 s after it began.
Prints how long B waited, and the model calls made for A after it cancelled. Both clients are the SDK's
in-process client (nothing binds). Runs against whichever msrkit is importable, so the same
script measures a checkout before and after (before the caps, pass N=300; after, at most 100).

    python bench/bench_mcp_fairness.py --ids 100
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from mcp import Client

from msrkit.backends.fake import FakeBackend
from msrkit.data import Item
from msrkit.inputs.io import Interaction
from msrkit.mcp.server import build_server
from msrkit.recommender import Recommender

CALL_SECONDS = 0.05


def slow(request: Any) -> str:
    time.sleep(CALL_SECONDS)
    return "alpha, beta"


async def measure(server: Any, fake: FakeBackend, ids: list[str]) -> tuple[float, int, int]:
    """B's wait; A's model calls when A cancels (2 s after it began), and those made after that."""
    async with Client(server) as a, Client(server) as b:

        async def cheap() -> float:
            start = time.monotonic()
            await b.call_tool("search_catalog", {"query": "space", "limit": 3})
            return time.monotonic() - start

        job = asyncio.create_task(a.call_tool("summarize_items", {"item_ids": ids}))
        await asyncio.sleep(0.5)
        other = asyncio.create_task(cheap())
        await asyncio.sleep(1.5)
        job.cancel()
        at_cancel = fake.calls
        await asyncio.gather(job, return_exceptions=True)
        waited = await other
    await asyncio.sleep(2.0)
    return waited, at_cancel, fake.calls - at_cancel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ids", type=int, default=100)
    args = parser.parse_args()
    items = {f"i{n}": Item(item_id=f"i{n}", title=f"Title number {n} space") for n in range(max(args.ids, 20))}
    rows = [Interaction(f"u{n % 20}", i, float(n)) for n, i in enumerate(items)]
    fake = FakeBackend(default=slow)
    with Recommender(fake, catalog=items, interactions=rows, cache=False) as rec:
        waited, at_cancel, after = asyncio.run(measure(build_server(rec), fake, list(items)[: args.ids]))
    print(f"summarize_items on {args.ids} ids ({CALL_SECONDS * 1000:.0f} ms per model call): search_catalog waited "
          f"{waited:.2f} s; A cancelled after {at_cancel} model calls, {after} made after that")  # fmt: skip


if __name__ == "__main__":
    main()
