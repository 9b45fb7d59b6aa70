"""Calls and tokens per user of a batch against a loopback OpenAI-compatible server, cold and precomputed.

    python bench/bench_batch_cost.py /tmp/ml10 --users 200 [--mode single|recurrent] [--work W]

``/tmp/ml10`` is ``msrkit data movielens --max-history 10 --out /tmp/ml10`` (10 history
items, 21 given candidates; the bench keeps 20, one listwise window). The server is
``python -m llama_cpp.server`` on 127.0.0.1 serving the embedded model
(SmolLM2-135M-Instruct, Q4_1); msrkit reaches it as any OpenAI-compatible endpoint
(``--backend openai/MODEL --base-url``), so every call is a real HTTP request to a
real engine. Two phases, each with its own response cache:

- **cold**: ``msrkit rank USERS --out`` on an empty cache: item keywords, the
  preference stage and the ranking, all made while the batch runs (later users reuse
  the item summaries earlier users made: the batch's cost line counts them "warm");
- **precomputed**: the same ``msrkit rank`` batch with every item's keywords already in
  the catalog store and an empty response cache: the ranking calls alone. The store
  is the one the cold batch wrote (what ``msrkit summarize`` of those items writes;
  without a cold phase the bench runs ``msrkit summarize`` first).

Before each batch, ``msrkit rank --dry-run`` prints what the batch would cost; the
table puts the prediction beside the measurement. Figures are the batch's own cost
line (``Ranking.usage`` summed: calls and prompt+completion tokens per user).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

ALIAS = "smollm2-135m"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server(model: Path, log: Path, threads: int) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", ALIAS,
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", str(threads)]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)  # noqa: S603 (our own command)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(240):
        if proc.poll() is not None:
            raise SystemExit(f"llama_cpp.server exited with {proc.returncode}: see {log}")
        try:
            with urllib.request.urlopen(url + "/models", timeout=2):  # noqa: S310 (loopback)
                return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise SystemExit(f"llama_cpp.server did not answer within 120 s: see {log}")


def _msrkit(*args: str, env: dict[str, str], ok: tuple[int, ...] = (0,)) -> tuple[str, float]:
    started = time.perf_counter()
    cmd = [sys.executable, "-c", "from msrkit.cli import main; main()", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)  # noqa: S603 (our own command)
    seconds = time.perf_counter() - started
    if done.returncode not in ok:
        raise SystemExit(f"msrkit {' '.join(args)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return done.stdout + done.stderr, seconds


def _cost_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if "cost:" in ln]
    if not lines:
        raise SystemExit(f"no cost line in:\n{text[-2000:]}")
    return lines[-1][lines[-1].index("cost:") :]


def _per_user(line: str) -> tuple[float, str]:
    """The whole batch's calls/user and tokens/user from a cost line."""
    m = re.search(r"cost: \d+ user\(s\), \d+ LLM calls: ([\d.]+) calls/user, (\d+\+\d+) tokens/user", line)
    if not m:
        raise SystemExit(f"cannot read the cost line: {line}")
    return float(m.group(1)), m.group(2)


def _precompute(made: Path, cache: Path, items: Path, backend_args: list[str], env: dict[str, str]) -> str:
    """Every item's keywords in ``cache``'s catalog store: the cold batch's store, else ``msrkit summarize``."""
    from msrkit.summaries.store import STORE_FILE

    if made.exists():
        cache.mkdir(parents=True, exist_ok=True)
        with sqlite3.connect(made) as src, sqlite3.connect(cache / STORE_FILE) as dst:
            src.backup(dst)  # a consistent copy, whatever a write-ahead log still holds
        return f"the cold batch's catalog store ({made}), no response cache"
    text, secs = _msrkit("summarize", str(items), *backend_args, env=env, ok=(0, 1))
    return f"msrkit summarize: {text.strip().splitlines()[-1]} ({secs:.0f} s)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", help="a folder with cases.jsonl and items.jsonl (msrkit data movielens --out)")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--mode", choices=["single", "recurrent"], default="single")
    p.add_argument("--summary-batch", type=int, default=8)
    p.add_argument("--candidates", type=int, default=20, help="given candidates per user (MovieLens cases have 21)")
    p.add_argument("--work", default="bench-batch-cost")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--phases", default="cold,precomputed")
    p.add_argument("-o", "--backend-option", action="append", default=[], help="KEY=VALUE, passed to msrkit")
    args = p.parse_args()
    if args.users < 2:
        p.error("--users: 2 at least (the cost line read here is a batch's, printed for more than one user)")
    from msrkit.backends.auto import embedded_model_path
    from msrkit.summaries.store import STORE_FILE

    data, work = Path(args.data), Path(args.work) / args.mode
    work.mkdir(parents=True, exist_ok=True)
    cases = [json.loads(line) for line in (data / "cases.jsonl").open(encoding="utf-8")][: args.users]
    for c in cases:  # at most --candidates given candidates (one listwise window), the target kept where it is
        extra = [i for i in reversed(c.get("candidates", [])) if i != c.get("target")]
        drop = set(extra[: max(len(c.get("candidates", [])) - args.candidates, 0)])
        c["candidates"] = [i for i in c.get("candidates", []) if i not in drop]
    users = work / "users.jsonl"
    with users.open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({k: v for k, v in c.items() if k != "target"}) + "\n" for c in cases)
    catalog = {json.loads(line)["item_id"]: line for line in (data / "items.jsonl").open(encoding="utf-8")}
    touched = dict.fromkeys(str(e["item_id"] if isinstance(e, dict) else e)
                            for c in cases for e in [*c["history"], *c.get("candidates", [])])  # fmt: skip
    items = work / "items.jsonl"
    items.write_text("".join(catalog[i] for i in touched if i in catalog), encoding="utf-8")
    env = {**os.environ, "MSRKIT_PREFERENCE_MODE": args.mode, "MSRKIT_SUMMARY_BATCH": str(args.summary_batch),
           "MSRKIT_DEADLINE": "3600", "OPENAI_API_KEY": "loopback"}  # fmt: skip
    proc, url = _server(embedded_model_path(), work / "server.log", args.threads)
    rows: list[dict[str, Any]] = []
    try:
        for phase in args.phases.split(","):
            cache = work / f"cache-{phase}"
            common = ["--catalog", str(items), "--backend", f"openai/{ALIAS}", "--base-url", url,
                      "--cache-dir", str(cache), *[a for o in args.backend_option for a in ("-o", o)]]  # fmt: skip
            row: dict[str, Any] = {"phase": phase}
            if phase == "precomputed":
                row["summaries"] = _precompute(work / "cache-cold" / STORE_FILE, cache, items, common[2:], env)
                print(f"summaries: {row['summaries']}", flush=True)
            dry, _ = _msrkit("rank", str(users), *common, "--dry-run", env=env)
            row["predicted"] = _cost_line(dry)
            text, secs = _msrkit("rank", str(users), *common, "--out", str(work / f"{phase}.jsonl"), env=env)
            row["measured"], row["seconds"] = _cost_line(text), round(secs)
            row["calls/user"], row["tokens/user"] = _per_user(row["measured"])
            rows.append(row)
            print(json.dumps(row, indent=1), flush=True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    print(
        f"\n{len(cases)} users, preference_mode {args.mode}, summary_batch {args.summary_batch}, "
        f"{len(touched)} distinct items; server: llama_cpp.server, embedded model, {args.threads} threads"
    )
    print("| phase | calls/user | prompt+completion tokens/user | predicted (dry run) | wall |")
    print("|---|---:|---:|---|---:|")
    for r in rows:
        print(f"| {r['phase']} | {r['calls/user']:.2f} | {r['tokens/user']} | {r['predicted']} | {r['seconds']} s |")


if __name__ == "__main__":
    main()
