"""Benchmark: reading a large history through the index.

Generates a synthetic history of N exchanges (default 100,000) spread over a year: about 40 % of
the exchanges continue an earlier chat, a few are left unfinished (shown as interrupted), models
and usage vary. Chat files are written in the store's own format, and ``index.jsonl`` the way a
store that was never reindexed holds it: a ``begin`` line and an ``end`` line per exchange, twice
the lines a fresh ``reindex`` writes. Then times, in-process, ``HistoryStore.list_chats(20)``,
``usage()`` (by model, by day, last 30 days) and ``last_chat_id()`` — they must stay under a
second — plus ``reindex()`` for information. With ``--cli``, also times ``rill history list
--limit 20`` and ``rill usage --json`` as subprocesses when ``rill`` is on PATH.

    python bench/history_bench.py [--exchanges 100000] [--home DIR] [--cli] [--repeat 3]

``--home`` keeps the generated history in ``DIR/history`` (``RILL_HOME=DIR``) and reuses it on
the next run; without it a temporary folder is used and removed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

try:
    from rill import history
    from rill.history import records
except ImportError:  # running from a checkout without an installed package
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from rill import history
    from rill.history import records

LIMIT = 1.0  # seconds: the budget for list and usage
MODELS = [
    ("openai/gpt-4o-mini", "openai/gpt-4o-mini-2024-07-18"),
    ("anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-4.5"),
    ("google/gemini-2.5-flash", "google/gemini-2.5-flash"),
    ("deepseek/deepseek-r1", "deepseek/deepseek-r1-0528"),
    ("meta-llama/llama-3.3-70b-instruct", "meta-llama/llama-3.3-70b-instruct"),
    ("qwen/qwen3-235b-a22b", "qwen/qwen3-235b-a22b-04-28"),
    ("mistralai/mistral-large", "mistralai/mistral-large-2411"),
    ("x-ai/grok-4", "x-ai/grok-4-07-09"),
]
WORDS = ["explain", "the", "difference", "between", "tcp", "and", "udp", "write", "a", "haiku"]


def _stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _exchange(rng: random.Random, started: datetime, finished: bool) -> dict[str, Any]:
    requested, served = rng.choice(MODELS)
    prompt = " ".join(rng.choices(WORDS, k=rng.randint(4, 14))).capitalize() + "?"
    exchange: dict[str, Any] = {
        "id": rng.randbytes(8).hex(),
        "started_at": _stamp(started),
        "status": "running",
        "messages": [{"role": "user", "content": prompt}],
        "requested_model": requested,
        "request": {"temperature": 0.7},
        "base_url": "https://openrouter.ai/api/v1",
    }
    if finished:
        prompt_tokens, completion_tokens = rng.randint(20, 4000), rng.randint(10, 2000)
        exchange.update(
            status="done",
            finished_at=_stamp(started + timedelta(seconds=rng.uniform(0.5, 30))),
            answer={"content": " ".join(rng.choices(WORDS, k=40))},
            served_model=served,
            provider="SomeProvider",
            generation_id=f"gen-{rng.randbytes(6).hex()}",
            finish_reason=rng.choice(["stop"] * 20 + ["length", "cancelled", "error"]),
            usage={
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "reasoning_tokens": rng.choice([0, 0, 0, rng.randint(1, 500)]),
                "cached_tokens": rng.choice([0, 0, rng.randint(1, 1000)]),
                "cost": round(rng.uniform(0.00001, 0.05), 7),
            },
        )
    return exchange


def generate(root: Path, count: int, seed: int = 7) -> None:
    """Write ``count`` exchanges as chat files plus a never-compacted index."""
    rng = random.Random(seed)
    (root / "chats").mkdir(parents=True, mode=0o700)
    (root / "journal").mkdir(mode=0o700)
    start = datetime.now(UTC) - timedelta(days=365)
    step = timedelta(days=365) / count
    chats: dict[str, dict[str, Any]] = {}
    recent: list[str] = []
    lines: list[bytes] = []
    for n in range(count):
        finished = rng.random() > 0.001
        exchange = _exchange(rng, start + step * n, finished)
        title = None
        if recent and rng.random() < 0.4:
            chat = chats[rng.choice(recent[-500:])]
        else:
            chat_id = history.new_id()
            title = exchange["messages"][0]["content"][:60]
            chat = {"schema_version": 1, "id": chat_id, "title": title, "exchanges": []}
            chat["created"] = exchange["started_at"]
            chats[chat_id] = chat
            recent.append(chat_id)
        chat["exchanges"].append(exchange)
        chat["updated"] = exchange.get("finished_at", exchange["started_at"])
        lines.append(
            records.encode_line(records.index_record(chat["id"], exchange, "begin", title))
        )
        if finished:
            end = records.index_record(chat["id"], exchange, "end", title)
            lines.append(records.encode_line(end))
    for chat_id, chat in chats.items():
        (root / "chats" / f"{chat_id}.json").write_bytes(records.dump_chat(chat, ".json"))
    (root / "index.jsonl").write_bytes(b"".join(lines))


def best_of(repeat: int, work: Callable[[], object]) -> tuple[float, float]:
    """(first run, best run) in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        times.append(time.perf_counter() - t0)
    return times[0], min(times)


def run_cli(args: list[str], home: Path) -> Callable[[], object]:
    env = dict(os.environ, RILL_HOME=str(home))

    def work() -> object:
        done = subprocess.run(args, env=env, capture_output=True, timeout=60)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed: {done.stderr.decode()[:300]}")
        return done

    return work


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exchanges", type=int, default=100_000)
    parser.add_argument("--home", type=Path, help="RILL_HOME to generate into (and reuse)")
    parser.add_argument("--cli", action="store_true", help="also time the rill commands")
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()

    home = opts.home or Path(tempfile.mkdtemp(prefix="rill-history-bench-"))
    root = home / "history"
    try:
        if not (root / "index.jsonl").exists():
            t0 = time.perf_counter()
            generate(root, opts.exchanges)
            seconds = time.perf_counter() - t0
            print(f"generated {opts.exchanges:,} exchanges in {root} ({seconds:.1f} s)")
        size = (root / "index.jsonl").stat().st_size
        print(f"index.jsonl: {size / 1e6:.1f} MB\n")
        store = history.HistoryStore(root, warn=lambda m: print(f"warning: {m}", file=sys.stderr))
        since = datetime.now(UTC) - timedelta(days=30)
        rows: list[tuple[str, Callable[[], object], bool]] = [
            ("list_chats(20)", lambda: store.list_chats(20), True),
            ("usage()", store.usage, True),
            ("usage(by='day')", lambda: store.usage(by="day"), True),
            ("usage(since=30 days ago)", lambda: store.usage(since), True),
            ("last_chat_id()", store.last_chat_id, True),
        ]
        if opts.cli:
            rill = shutil.which("rill")
            if rill is None:
                print("rill is not on PATH: skipping the CLI timings\n")
            else:
                rows.append(
                    (
                        "rill history list --limit 20",
                        run_cli([rill, "history", "list", "--limit", "20"], home),
                        True,
                    )
                )
                rows.append(("rill usage --json", run_cli([rill, "usage", "--json"], home), True))
        rows.append(("reindex() (for information)", store.reindex, False))
        print(f"{'operation':<32} {'first':>9} {'best':>9}  budget")
        failed = False
        for name, work, budgeted in rows:
            first, best = best_of(opts.repeat, work)
            verdict = ("ok" if best < LIMIT else "SLOW") if budgeted else "-"
            failed |= budgeted and best >= LIMIT
            print(f"{name:<32} {first * 1000:8.0f}ms {best * 1000:8.0f}ms  {verdict}")
        chats = store.list_chats(None)
        total = history.usage_total(store.usage())
        print(f"\n{len(chats):,} chats, {total['requests']:,} requests, ${total['cost']:,.2f}")
        print(json.dumps(chats[0], ensure_ascii=False))
        if failed:
            raise SystemExit(1)
    finally:
        if opts.home is None:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
