"""The issue's time table, measured: one user (20 candidates, full pipeline) against a misbehaving server.

Default settings throughout (retry policy, timeouts, circuit breaker), except
the request deadline (``--deadline``, default 25 s: the bound the hang and the
trickle run into; the other behaviours do not depend on it). The server is the
tests' loopback fault server (``tests/faultserver.py``). Then: 5 users against
HTTP 500, 100 users against a dead server (then it recovers: one probe after
the breaker's cool-down), and the trust inputs (devices, FIFOs, private URLs, a
trickling image server) through ``Recommender.rank``.

Prints one markdown row per behaviour: seconds, requests the server saw, the outcome.

    python bench/bench_faults.py                    # everything (about 2 minutes)
    python bench/bench_faults.py --only hang 500    # some rows
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from faultserver import (  # noqa: E402
    FaultServer,
    Reply,
    SlowImageServer,
    hang,
    insufficient_quota,
    malformed_json,
    no_choices,
    rate_limited,
    server_error,
    status,
    trickle,
)

from msrkit.errors import MsrkitError  # noqa: E402
from msrkit.recommender import Recommender  # noqa: E402

IDS = [f"C{i:02d}" for i in range(20)]
BEHAVIOURS: dict[str, Reply] = {
    "hang": hang(600),
    "429 Retry-After: 100000": rate_limited(100000),
    "429 Retry-After: inf": rate_limited("inf"),
    "429 retry-after-ms: 1e9": rate_limited(None, retry_after_ms=10**9),
    "429 insufficient_quota": insufficient_quota(),
    "500 always": server_error(500),
    "invalid JSON": malformed_json(),
    "choices: []": no_choices(),
    "trickle 1 byte/s": trickle(1.0),
    "401 bad key": status(401, "Incorrect API key provided"),
}


def history(user: str = "u", image: str | None = None) -> dict[str, Any]:
    seen = [{"item_id": f"H{i}", "title": f"seen {i}", "description": "a film"} for i in range(4)]
    if image is not None:
        seen[0]["image"] = image
    return {"user_id": user, "history": seen,
            "candidates": [{"item_id": c, "title": f"movie {c}", "description": "a film"} for c in IDS]}  # fmt: skip


def outcome(ranking: Any) -> str:
    whole = sorted(ranking.item_ids()) == IDS
    return f"{'permutation' if whole else 'NOT A PERMUTATION'}, degraded={ranking.degraded} ({ranking.degraded_by})"


def row(name: str, seconds: float, requests: int | str, result: str) -> None:
    print(f"| {name} | {seconds:.1f} s | {requests} | {result} |", flush=True)


def one_user(name: str, reply: Reply, deadline: float) -> None:
    with FaultServer(max_hang=600) as server:
        server.always(reply)
        with Recommender(backend="openai/x", base_url=server.url, api_key="k-bench-0123456789", cache=False,
                         deadline=deadline) as rec:  # fmt: skip
            started = time.monotonic()
            ranking = rec.rank(history())
            row(name, time.monotonic() - started, len(server.requests), outcome(ranking))


def many_users(n: int, reply: Reply, *, recover: bool) -> None:
    with FaultServer() as server:
        server.always(reply)
        with Recommender(backend="openai/x", base_url=server.url, api_key="k-bench-0123456789", cache=False) as rec:
            started = time.monotonic()
            rankings = [rec.rank(history(f"u{k}")) for k in range(n)]
            took = time.monotonic() - started
            whole = all(sorted(r.item_ids()) == IDS and r.degraded for r in rankings)
            row(f"{n} users, {reply.status} always", took, len(server.requests),
                f"{len(rankings)} of {n} ranked, {'all degraded permutations' if whole else 'SOME WRONG'}")  # fmt: skip
            if recover:
                server.always(None)
                cooldown = rec.settings.breaker_cooldown
                time.sleep(cooldown)
                started = time.monotonic()
                again = rec.rank(history("back"))
                row(f"server recovered, after the {cooldown:g} s cool-down", time.monotonic() - started,
                    "-", outcome(again))  # fmt: skip


def trust_inputs() -> None:
    folder = Path(tempfile.mkdtemp())
    fifo = folder / "fifo.jpg"
    os.mkfifo(fifo)
    images = SlowImageServer(interval=1.0).__enter__()
    slow = images.url
    cases: list[tuple[str, str, dict[str, Any]]] = [
        ("image /dev/zero", "/dev/zero", {}),
        ("image /dev/urandom", "/dev/urandom", {}),
        ("image FIFO", str(fifo), {}),
        ("image http://2130706433/ (loopback)", "http://2130706433/x.jpg", {}),
        ("image http://169.254.169.254/ (metadata)", "http://169.254.169.254/latest/meta-data/", {}),
        ("image URL trickling 1 byte/s (private hosts allowed)", slow, {"image_private_hosts": True}),
    ]
    for name, image, options in cases:
        options = {"api_key": "k-bench-0123456789", "cache": False, "backend_options": {"vision": True}, **options}
        with FaultServer() as llm, Recommender(backend="openai/x", base_url=llm.url, **options) as rec:
            started = time.monotonic()
            try:
                ranking = rec.rank(history(image=image))
                result = outcome(ranking) + "; " + next((w for w in ranking.warnings if "image" in w), "")[:110]
            except MsrkitError as exc:
                result = f"{type(exc).__name__}: {exc}"[:160]
            row(name, time.monotonic() - started, len(llm.requests), result)
    images.__exit__()


def history_fifo() -> None:
    from msrkit.inputs.io import load_histories

    fifo = Path(tempfile.mkdtemp()) / "history.json"
    os.mkfifo(fifo)
    started = time.monotonic()
    try:
        load_histories(fifo)
        result = "read"
    except MsrkitError as exc:
        result = f"{type(exc).__name__}: {exc}"
    row("history file is a FIFO", time.monotonic() - started, "-", result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--deadline", type=float, default=25.0, help="Settings.deadline for the one-user rows.")
    parser.add_argument("--only", nargs="*", help="Run only rows whose name contains one of these words.")
    args = parser.parse_args()
    rows: list[tuple[str, Callable[[], None]]] = [
        *((name, lambda n=name, r=reply: one_user(n, r, args.deadline)) for name, reply in BEHAVIOURS.items()),
        ("5 users 500", lambda: many_users(5, server_error(500), recover=False)),
        ("100 users 503 recover", lambda: many_users(100, server_error(503), recover=True)),
        ("trust images", trust_inputs),
        ("trust history fifo", history_fifo),
    ]
    print(f"one user: 20 candidates, full pipeline, default settings, deadline {args.deadline:g} s\n")
    print("| behaviour | time | requests seen | outcome |\n|---|---:|---:|---|")
    for name, run in rows:
        if not args.only or any(word in name for word in args.only):
            run()


if __name__ == "__main__":
    main()
