"""Hostile values from upstream are normalised before they are stored; a damaged exchange is
skipped, never its whole chat; a deeply nested file is skipped, never a crash."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rill.fake import FakeOpenRouter, Scenario
from rill.history import ExchangeStart, HistoryStore
from tests.e2e import run

HOSTILE = (
    b'data: {"id":{"x":1},"model":{"name":"m"},"provider":["p"],"choices":[{"index":0,'
    b'"delta":{"content":"!"},"finish_reason":{"weird":true}}]}\n\n'
)


def rill_ok(fake_server: FakeOpenRouter, *args: str) -> str:
    done = run(["--base-url", fake_server.url, *args])
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def test_hostile_stream_is_stored_normalised_and_readable(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(
            content=["a", "b"],
            raw_event_after=2,
            raw_event=HOSTILE,
            send_finish=False,
            usage={"prompt_tokens": 3, "completion_tokens": "lots", "cost": math.nan},
        )
    )
    run(["--base-url", fake_server.url, "hello"])
    shown = run(["history", "show", "last", "--json"])
    assert shown.returncode == 0, shown.stderr
    (ex,) = json.loads(shown.stdout)["exchanges"]
    for key in ("finish_reason", "served_model", "provider", "generation_id"):
        assert ex.get(key) is None or isinstance(ex[key], str), (key, ex.get(key))
    usage = ex.get("usage") or {}
    assert all(not isinstance(v, float) or math.isfinite(v) for v in usage.values())
    fake_server.enqueue(Scenario(content=["again"]))
    assert rill_ok(fake_server, "-c", "more") == "again"
    exported = run(["history", "export"])
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 2
    usage_out = run(["usage"])
    assert usage_out.returncode == 0 and b"nan" not in usage_out.stdout.lower()


def _start(chat_id: str | None = None) -> ExchangeStart:
    return ExchangeStart(chat_id, [{"role": "user", "content": "hi"}], "m/x", {}, "http://h")


def test_one_bad_exchange_is_skipped_not_the_chat(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    rill_ok(fake_server, "-m", "fake/echo", "first")
    rill_ok(fake_server, "-m", "fake/echo", "-c", "second")
    chats = list((rill_env / "history" / "chats").glob("*.json"))
    (path,) = chats
    data = json.loads(path.read_text())
    data["exchanges"][0]["finish_reason"] = {"an": "object"}  # as older versions stored it
    path.write_text(json.dumps(data))
    shown = run(["history", "show", "last", "--json"])
    assert shown.returncode == 0, shown.stderr
    assert len(json.loads(shown.stdout)["exchanges"]) == 1
    assert path.name in shown.stderr.decode() and shown.stderr.count(b"\n") == 1
    assert rill_ok(fake_server, "-m", "fake/echo", "-c", "third") == "third"
    again = json.loads(path.read_text())
    assert len(again["exchanges"]) == 3  # the damaged one is kept on disk as it was
    exported = run(["history", "export"])
    assert exported.returncode == 0 and len(exported.stdout.splitlines()) == 2


def _deep(n: int) -> str:
    return "[" * n + "]" * n


def test_deeply_nested_files_are_skipped_with_a_warning(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    rill_ok(fake_server, "-m", "fake/echo", "good")
    chats = rill_env / "history" / "chats"
    deep = chats / "deepdeepdeep.json"
    deep.write_text('{"id": "deepdeepdeep", "exchanges": ' + _deep(100_000) + "}")
    with (rill_env / "history" / "index.jsonl").open("a") as index:
        index.write('{"ex":"x","chat":"y","ev":"end","at":"z","deep":' + _deep(100_000) + "}\n")
    for args in (["history", "export"], ["history", "search", "good"], ["history", "reindex"]):
        done = run(args)
        assert done.returncode == 0, (args, done.stderr)
        assert b"Traceback" not in done.stderr and deep.name.encode() in done.stderr
    for args in (["history", "list"], ["usage"]):
        done = run(args)
        assert done.returncode == 0 and b"Traceback" not in done.stderr, (args, done.stderr)


def test_absurdly_deep_reasoning_details_still_record_the_answer(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history", warn=lambda _m: None)
    recorder = store.begin(_start())
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    recorder.finish(
        {"content": "answer", "reasoning_details": deep, "usage": {"total_tokens": 7, "cost": 1}}
    )
    (row,) = list(store.export())
    assert row["answer"]["content"] == "answer" and row["usage"]["total_tokens"] == 7
    assert row["answer"].get("reasoning_details") is None
    assert any("reasoning_details" in note for note in row["notes"])


def test_usage_that_is_not_a_number_is_dropped_with_a_note(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history", warn=lambda _m: None)
    recorder = store.begin(_start())
    recorder.finish(
        {
            "content": "x",
            "finish_reason": {"an": "object"},
            "served_model": 42,
            "usage": {"prompt_tokens": 3, "completion_tokens": "lots", "cost": math.inf},
        }
    )
    (row,) = list(store.export())
    assert row["usage"] == {"prompt_tokens": 3}
    assert row.get("finish_reason") is None and row["served_model"] == "42"
    assert "usage.cost was not a number (inf); dropped" in row["notes"]
    assert any(note.startswith("usage.completion_tokens was not a number") for note in row["notes"])
    total = store.usage()[0]
    assert total["prompt_tokens"] == 3 and not math.isnan(total["completion_tokens"])
