"""The history store: prompt on disk first, journals, interrupted runs, concurrency, damage."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import rill.history.files
from rill.errors import ExitCode, RillError, UsageError
from rill.history import (
    SCHEMA_VERSION,
    ExchangeRecorder,
    ExchangeStart,
    HistoryError,
    HistoryStore,
    new_id,
    usage_total,
)
from tests.e2e import read_until, stop, wait_until

SRC = str(Path(__file__).resolve().parents[1] / "src")


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def warnings() -> list[str]:
    return []


@pytest.fixture
def store(tmp_path: Path, warnings: list[str]) -> HistoryStore:
    return HistoryStore(tmp_path / "history", warn=warnings.append)


def start(
    prompt: str = "hello there", chat_id: str | None = None, system: str | None = None
) -> ExchangeStart:
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    return ExchangeStart(
        chat_id=chat_id,
        messages=messages,
        requested_model="openai/gpt-4o-mini",
        request={"temperature": 0.2, "max_tokens": None},
        base_url="https://openrouter.ai/api/v1",
    )


def outcome(content: str = "the answer", **extra: Any) -> dict[str, Any]:
    return {
        "content": content,
        "served_model": "openai/gpt-4o-mini-2024-07-18",
        "provider": "OpenAI",
        "generation_id": "gen-1",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15, "cost": 0.25},
        "timings": {"started_at": "2025-01-01T00:00:00Z", "ttft_ms": 12.5, "duration_ms": 40.0},
        **extra,
    }


def chat_file(store: HistoryStore, chat_id: str) -> dict[str, Any]:
    path = store.chat_path(chat_id)
    assert path is not None
    text = path.read_text()
    return tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)


def exchange(
    store: HistoryStore, prompt: str, chat_id: str | None = None, **kw: Any
) -> ExchangeRecorder:
    recorder = store.begin(start(prompt, chat_id))
    recorder.add(kw.pop("content", f"answer to {prompt}"))
    recorder.finish(outcome(content=None, **kw))
    return recorder


def index_lines(store: HistoryStore) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (store.root / "index.jsonl").read_text().splitlines()]


# --- writing -----------------------------------------------------------------------------------


def test_begin_writes_the_prompt_before_finish(store: HistoryStore) -> None:
    recorder = store.begin(start("what is rill?", system="be brief"))
    assert recorder.enabled and len(recorder.chat_id) == 12
    on_disk = chat_file(store, recorder.chat_id)
    assert on_disk["schema_version"] == SCHEMA_VERSION
    assert on_disk["title"] == "what is rill?"
    (ex,) = on_disk["exchanges"]
    assert ex["status"] == "running" and "finish_reason" not in ex
    assert ex["messages"][1] == {"role": "user", "content": "what is rill?"}
    assert ex["request"] == {"temperature": 0.2}  # None dropped
    assert recorder.journal is not None and recorder.journal.exists()
    assert [line["ev"] for line in index_lines(store)] == ["begin"]

    recorder.add("It streams")
    recorder.add(" answers.")
    recorder.finish(outcome(content=None))
    (ex,) = chat_file(store, recorder.chat_id)["exchanges"]
    assert ex["status"] == "done" and ex["finish_reason"] == "stop"
    assert ex["answer"] == {"content": "It streams answers."}
    assert ex["served_model"] == "openai/gpt-4o-mini-2024-07-18"
    assert ex["usage"]["cost"] == 0.25 and ex["timings"]["ttft_ms"] == 12.5
    assert not recorder.journal.exists()
    assert [line["ev"] for line in index_lines(store)] == ["begin", "end"]
    recorder.finish(outcome(content="ignored"))  # idempotent
    assert chat_file(store, recorder.chat_id)["exchanges"][0]["answer"]["content"] == (
        "It streams answers."
    )


def test_add_journals_every_read_at_once_before_it_is_shown(store: HistoryStore) -> None:
    recorder = store.begin(start())
    assert recorder.journal is not None

    def journalled() -> list[str]:
        lines = recorder.journal.read_text().splitlines()[1:]  # [0] is the header
        return [json.loads(line).get("c", "") for line in lines]

    recorder.add("a")
    assert journalled() == ["a"]
    recorder.add("b")
    recorder.add("c", reasoning="thinking")
    recorder.add("d")
    assert journalled() == ["a", "b", "c", "d"]
    live = store.load(recorder.chat_id)["exchanges"][0]  # this process is the live writer
    assert live["status"] == "running"
    assert live["answer"] == {"content": "abcd", "reasoning": "thinking"}
    assert store.list_chats()[0]["finish_reason"] == "running"
    recorder.finish({"finish_reason": "cancelled"})
    ex = store.load(recorder.chat_id)["exchanges"][0]
    assert ex["answer"] == {"content": "abcd", "reasoning": "thinking"}
    assert ex["finish_reason"] == "cancelled"


def wait_for_journal(recorder: ExchangeRecorder, text: str, limit: float, what: str) -> float:
    """Wait until ``text`` is in the recorder's journal; the seconds it took."""
    journal = recorder.journal
    assert journal is not None
    return wait_until(lambda: text in journal.read_text(), limit, what)


WRITER = """
import sys, time
sys.path.insert(0, {src!r})
from pathlib import Path
from rill.history import ExchangeStart, HistoryStore
store = HistoryStore(Path({root!r}))
recorder = store.begin(ExchangeStart(None, [{{"role": "user", "content": "tell me"}}],
                                     "m", {{}}, "http://127.0.0.1"))
recorder.add("partial ")
recorder.add("answer")
print("ready", recorder.chat_id, flush=True)
time.sleep(60)
"""


def test_a_killed_writer_shows_as_interrupted_with_its_partial_answer(
    store: HistoryStore,
) -> None:
    code = WRITER.format(src=SRC, root=str(store.root))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        line = read_until(proc, b"\n", timeout=30).decode()
        assert line.startswith("ready"), line
        chat_id = line.split()[1]
        assert store.list_chats()[0]["finish_reason"] == "running"
        assert store.load(chat_id)["exchanges"][0]["status"] == "running"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    assert store.list_chats()[0]["finish_reason"] == "interrupted"
    (ex,) = store.load(chat_id)["exchanges"]
    assert ex["finish_reason"] == "interrupted"
    assert ex["answer"]["content"] == "partial answer"
    # load() wrote the resolution back: the journal is gone, the file and index say so.
    (saved,) = chat_file(store, chat_id)["exchanges"]
    assert saved["finish_reason"] == "interrupted" and saved["status"] == "done"
    assert not (store.root / "journal" / f"{ex['id']}.jsonl").exists()
    assert index_lines(store)[-1]["finish"] == "interrupted"
    assert [(c["title"], c["finish_reason"]) for c in store.list_chats()] == [
        ("tell me", "interrupted")
    ]
    assert store.conversation(chat_id)[-1] == {"role": "assistant", "content": "partial answer"}


RACER = """
import sys, time
sys.path.insert(0, {src!r})
from pathlib import Path
from rill.history import ExchangeStart, HistoryStore
root = Path({root!r})
print("ready", flush=True)
while not (root.parent / "go").exists():
    time.sleep(0.002)
store = HistoryStore(root, {fmt!r}, warn=lambda m: sys.exit(m))
recorder = store.begin(ExchangeStart({chat!r}, [{{"role": "user", "content": "racer {n}"}}],
                                     "m", {{}}, "http://127.0.0.1"))
recorder.add("answer {n}")
recorder.finish({{"finish_reason": "stop", "served_model": "m", "usage": {{"cost": 1}}}})
"""


def race(store: HistoryStore, count: int, chat: str | None, fmt: str = "json") -> None:
    scripts = [
        RACER.format(src=SRC, root=str(store.root), fmt=fmt, chat=chat, n=n) for n in range(count)
    ]
    go = store.root.parent / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", s], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for s in scripts
    ]
    try:
        deadline = time.monotonic() + 60
        for proc in procs:  # every racer has started and waits at the line
            read_until(proc, b"ready", timeout=max(deadline - time.monotonic(), 0.01))
        go.touch()
        for proc in procs:
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err.decode()
    finally:
        stop(procs)
    go.unlink()


def test_twenty_processes_creating_chats_at_once_all_land(
    store: HistoryStore, warnings: list[str]
) -> None:
    race(store, 20, None)
    chats = store.list_chats(limit=None)
    assert len(chats) == 20 and {c["finish_reason"] for c in chats} == {"stop"}
    titles = sorted(c["title"] for c in chats)
    assert titles == sorted(f"racer {n}" for n in range(20))
    for chat in chats:
        (ex,) = store.load(chat["id"])["exchanges"]
        assert ex["answer"]["content"] == f"answer {chat['title'].split()[1]}"
    assert len(index_lines(store)) == 40
    assert usage_total(store.usage())["requests"] == 20
    assert store.reindex() == 20
    assert warnings == []
    assert list((store.root / "journal").iterdir()) == []


def test_processes_appending_to_one_chat_lose_nothing(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history", "toml")
    first = exchange(store, "first")
    race(store, 10, first.chat_id, "json")  # the chat stays TOML
    exchanges = store.load(first.chat_id)["exchanges"]
    assert len(exchanges) == 11
    assert {ex["answer"]["content"] for ex in exchanges[1:]} == {f"answer {n}" for n in range(10)}
    assert all(ex["finish_reason"] == "stop" for ex in exchanges)
    assert store.list_chats()[0]["turns"] == 11
    assert first.path is not None and first.path.suffix == ".toml"


# --- failures and damage -------------------------------------------------------------------------


def test_an_unwritable_root_disables_the_recorder_with_one_warning(
    tmp_path: Path, warnings: list[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = HistoryStore(blocker / "history", warn=warnings.append)
    recorder = store.begin(start())
    # "No chat" is spelled None, as by session.NullRecorder (--no-history).
    assert not recorder.enabled and recorder.path is None and recorder.chat_id is None
    recorder.add("text")
    recorder.finish(outcome())
    assert len(warnings) == 1
    assert warnings[0].startswith("history: cannot write ")
    assert warnings[0].endswith("; the answer is not saved")
    # The warning is shown once, however many answers are lost; the count is kept.
    store.begin(start())
    store.begin(start())
    assert len(warnings) == 1 and store.not_saved == 3
    assert store.list_chats() == []


def test_a_chats_folder_that_takes_no_files_disables_the_recorder(
    tmp_path: Path, warnings: list[str]
) -> None:
    store = HistoryStore(tmp_path / "history", warn=warnings.append)
    exchange(store, "before")
    # Where new chat files should go, nothing can be created: a regular file stands where the
    # folder was (as a read-only folder would, without depending on who runs the tests).
    chats = store.root / "chats"
    chats.rename(tmp_path / "chats.away")
    chats.write_text("not a folder")
    try:
        recorder = store.begin(start())
    finally:
        chats.unlink()
        (tmp_path / "chats.away").rename(chats)
    assert not recorder.enabled and recorder.chat_id is None
    assert len(warnings) == 1 and warnings[0].startswith("history: cannot write ")
    assert list((store.root / "journal").iterdir()) == []  # its journal was removed again
    assert [c["title"] for c in store.list_chats()] == ["before"]


def test_an_unknown_chat_is_a_usage_error_before_anything_is_written(store: HistoryStore) -> None:
    with pytest.raises(UsageError, match="no chat matches 'abcdef123456'"):
        store.begin(start(chat_id="abcdef123456"))
    assert not store.root.exists()
    with pytest.raises(UsageError):
        store.begin(start(chat_id="../../etc/passwd"))


def damage(store: HistoryStore) -> tuple[Path, Path]:
    exchange(store, "healthy")
    broken = store.root / "chats" / "badbadbadbad.json"
    broken.write_text('{"schema_version": 1, "id": "badbadbadbad", "exchanges": [')
    wrong = store.root / "chats" / "wrongtypes00.toml"
    wrong.write_text('schema_version = 1\nid = "wrongtypes00"\nexchanges = "oops"\n')
    return broken, wrong


def test_damaged_chat_files_are_skipped_with_a_warning(
    store: HistoryStore, warnings: list[str]
) -> None:
    broken, wrong = damage(store)
    assert store.reindex() == 1
    assert len(store.list_chats()) == 1
    assert [hit["role"] for hit in store.search("HEALTHY")] == ["user", "assistant"]
    assert len(list(store.export())) == 1
    assert usage_total(store.usage())["requests"] == 1
    assert any(str(broken) in w for w in warnings) and any(str(wrong) in w for w in warnings)
    assert all("\n" not in w for w in warnings)

    with pytest.raises(HistoryError) as caught:
        store.load("badbadbadbad")
    assert str(broken) in caught.value.message and "\n" not in caught.value.message
    assert caught.value.exit_code == ExitCode.CONFIG
    with pytest.raises(HistoryError, match="exchanges is not a list"):
        store.conversation("wrongtypes00")


def test_damaged_index_lines_are_skipped_with_one_warning(
    store: HistoryStore, warnings: list[str]
) -> None:
    one = exchange(store, "one")
    with (store.root / "index.jsonl").open("a") as index:
        index.write("not json\n[1, 2]\n")
        index.write(f'{{"ex":"x","chat":"{one.chat_id}","ev":"end","at":"2","cost":"free"}}\n')
    exchange(store, "two")
    assert [(c["title"], c["turns"], c["cost"]) for c in store.list_chats()] == [
        ("two", 1, 0.25),
        ("one", 2, 0.25),
    ]
    total = usage_total(store.usage())  # a text cost is dropped: that request's cost is unknown
    assert (total["requests"], total["requests_without_cost"]) == (3, 1)
    assert warnings == [f"history: skipped 2 damaged line(s) in {store.root / 'index.jsonl'}"]


def test_a_missing_index_is_rebuilt(store: HistoryStore) -> None:
    exchange(store, "one")
    second = exchange(store, "two")
    (store.root / "index.jsonl").unlink()
    assert [c["title"] for c in store.list_chats()] == ["two", "one"]
    assert (store.root / "index.jsonl").exists()
    (store.root / "index.jsonl").unlink()
    exchange(store, "three", chat_id=second.chat_id)  # rebuilt before the new line is added
    assert [(c["title"], c["turns"]) for c in store.list_chats()] == [("two", 2), ("one", 1)]


def test_a_chat_damaged_while_running_keeps_the_answer_in_the_journal(
    store: HistoryStore, warnings: list[str]
) -> None:
    recorder = store.begin(start())
    recorder.add("precious text")
    assert recorder.path is not None and recorder.journal is not None
    recorder.path.write_text("{ edited by hand")
    recorder.finish(outcome(content=None))
    (warning,) = warnings
    assert warning.startswith(f"history: cannot save the answer to {recorder.path}: damaged")
    assert "precious text" in recorder.journal.read_text()
    recorder.path.write_text(json.dumps({"id": recorder.chat_id, "exchanges": []}))
    assert store.load(recorder.chat_id)["exchanges"] == []  # a fixed file loads again


def test_a_hundred_thousand_tiny_deltas_are_kept_whole(store: HistoryStore) -> None:
    recorder = store.begin(start())
    for _ in range(100_000):
        recorder.add("tok")
    recorder.finish({"finish_reason": "stop"})
    assert store.load(recorder.chat_id)["exchanges"][0]["answer"]["content"] == "tok" * 100_000


def test_a_chat_removed_while_running_stays_removed(store: HistoryStore) -> None:
    recorder = store.begin(start())
    store.remove(recorder.chat_id)
    recorder.finish(outcome())
    assert store.chat_path(recorder.chat_id) is None
    assert store.list_chats() == [] and store.usage() == []


# --- formats and files ------------------------------------------------------------------------


def test_toml_round_trip_keeps_text_exact_and_has_no_nulls(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path, "toml")
    tricky = 'line one\rline two\n"""quoted"""\\ and \x00 and \u2028 end'
    recorder = store.begin(start(tricky))
    assert recorder.path is not None and recorder.path.suffix == ".toml"
    recorder.finish(
        outcome(
            content="multi\nline\nanswer\n",
            reasoning=None,
            tool_calls=[{"id": "t1", "function": {"name": "f", "arguments": "{}"}, "x": None}],
            error=None,
        )
    )
    text = recorder.path.read_text()
    assert '"""\nmulti\nline\nanswer\n"""' in text  # multi-line strings stay readable
    data = tomllib.loads(text)
    (ex,) = data["exchanges"]
    assert ex["messages"][0]["content"] == tricky
    assert ex["answer"]["tool_calls"] == [
        {"id": "t1", "function": {"name": "f", "arguments": "{}"}}
    ]
    assert "error" not in ex and "reasoning" not in ex["answer"]
    # tomli_w would turn CRLF into LF inside a multi-line string: such a chat stays exact.
    crlf = exchange(store, "windows\r\ntext", content="a\r\nb\n")
    (ex,) = chat_file(store, crlf.chat_id)["exchanges"]
    assert ex["messages"][0]["content"] == "windows\r\ntext"
    assert ex["answer"]["content"] == "a\r\nb\n"
    # A JSON store reads TOML chats, and a chat keeps the format it was created with.
    json_store = HistoryStore(tmp_path, "json")
    exchange(json_store, "again", chat_id=recorder.chat_id)
    assert json_store.chat_path(recorder.chat_id) == recorder.path
    assert len(json_store.load(recorder.chat_id)["exchanges"]) == 2


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_folders_are_private_and_files_0600(store: HistoryStore, loose_umask: None) -> None:
    recorder = store.begin(start())
    recorder.add("x")
    paths = [store.root, store.root / "chats", store.root / "journal"]
    files = [recorder.path, recorder.journal, store.root / "index.jsonl", store.root / ".lock"]
    recorder.finish(outcome())
    files.remove(recorder.journal)
    assert [stat.S_IMODE(p.stat().st_mode) for p in paths] == [0o700] * 3
    assert [stat.S_IMODE(p.stat().st_mode) for p in files if p] == [0o600] * 3
    store.reindex()
    assert stat.S_IMODE((store.root / "index.jsonl").stat().st_mode) == 0o600


# --- reading -------------------------------------------------------------------------------------


def test_list_chats_newest_used_first_with_sums(store: HistoryStore) -> None:
    one = exchange(store, "one\nsecond line")
    two = exchange(store, "x" * 100)
    exchange(store, "three", chat_id=one.chat_id)
    running = store.begin(start("running"))
    rows = store.list_chats()
    assert [r["id"] for r in rows] == [running.chat_id, one.chat_id, two.chat_id]
    assert rows[0]["finish_reason"] == "running" and rows[0]["model"] == "openai/gpt-4o-mini"
    assert rows[1]["title"] == "one" and rows[1]["turns"] == 2
    assert rows[1]["prompt_tokens"] == 20 and rows[1]["completion_tokens"] == 10
    assert rows[1]["cost"] == 0.5 and rows[1]["finish_reason"] == "stop"
    assert rows[1]["model"] == "openai/gpt-4o-mini-2024-07-18"
    assert rows[1]["created"] <= rows[1]["updated"]
    assert len(rows[2]["title"]) == 60 and rows[2]["title"].endswith("…")
    assert store.list_chats(limit=1) == rows[:1]
    running.finish(outcome())


def test_resolve_last_full_id_and_prefixes(store: HistoryStore) -> None:
    with pytest.raises(UsageError, match="history is empty"):
        store.resolve("last")
    assert store.last_chat_id() is None
    ids = ["abc111111111", "abc222222222", "abd333333333"]
    for chat_id in ids:
        (store.root / "chats").mkdir(parents=True, exist_ok=True)
        (store.root / "chats" / f"{chat_id}.json").write_text(
            json.dumps({"schema_version": 1, "id": chat_id, "exchanges": []})
        )
    assert store.resolve("abd") == "abd333333333"
    assert store.resolve("abc111111111") == "abc111111111"
    with pytest.raises(UsageError, match="'abc' matches 2 chats: abc111111111, abc222222222"):
        store.resolve("abc")
    with pytest.raises(UsageError, match="no chat matches 'zzz'"):
        store.resolve("zzz")

    # Begun in distinct milliseconds: a rebuilt index orders exchanges by their start times,
    # which are recorded to the millisecond.
    older = exchange(store, "older")
    time.sleep(0.002)
    newer = store.begin(start("newer"))
    time.sleep(0.002)
    older_again = store.begin(start("again", chat_id=older.chat_id))
    newer.finish(outcome())  # finishing later does not make a chat "last"; beginning does
    assert store.resolve("last") == older.chat_id
    older_again.finish(outcome())
    third = exchange(store, "third")
    assert store.last_chat_id() == third.chat_id
    store.remove(third.chat_id)
    assert store.last_chat_id() == older.chat_id
    store.reindex()
    assert store.last_chat_id() == older.chat_id


def test_conversation_orders_turns_and_keeps_the_latest_system(store: HistoryStore) -> None:
    first = store.begin(start("q1", system="sys one"))
    first.add("a1")
    first.finish(outcome(content=None, reasoning_details=[{"type": "reasoning.text"}]))
    second = store.begin(start("q2", chat_id=first.chat_id))
    second.finish({"finish_reason": "error", "error": {"message": "boom"}})  # produced nothing
    third = store.begin(start("q3", chat_id=first.chat_id, system="sys two"))
    third.add("partial")
    third.finish({"finish_reason": "cancelled"})
    fourth = store.begin(start("q4", chat_id=first.chat_id))
    calls = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    fourth.finish({"finish_reason": "tool_calls", "tool_calls": calls})
    assert store.conversation(first.chat_id) == [
        {"role": "system", "content": "sys two"},
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "a1", "reasoning_details": [{"type": "reasoning.text"}]},
        {"role": "user", "content": "q2"},
        {"role": "user", "content": "q3"},
        {"role": "assistant", "content": "partial"},
        {"role": "user", "content": "q4"},
        {"role": "assistant", "content": None, "tool_calls": calls},
    ]


def test_search_export_and_remove(store: HistoryStore) -> None:
    one = exchange(store, "Tell me about Rome", content="Rome was not built in a day.")
    two = exchange(store, "and Paris?", content="PARIS is the capital of France")
    hits = store.search("paris")
    assert [(h["chat_id"], h["role"]) for h in hits] == [
        (two.chat_id, "user"),
        (two.chat_id, "assistant"),
    ]
    assert hits[1]["snippet"] == "PARIS is the capital of France"
    long = exchange(store, "padding " * 30 + "needle" + "\nmore" * 30, content="no")
    (hit,) = store.search("NEEDLE")
    assert hit["chat_id"] == long.chat_id and "\n" not in hit["snippet"]
    assert hit["snippet"].startswith("…") and hit["snippet"].endswith("…")
    with pytest.raises(UsageError):
        store.search("")

    rows = list(store.export())
    assert [r["chat_id"] for r in rows] == [one.chat_id, two.chat_id, long.chat_id]
    assert rows[0]["schema_version"] == 1 and rows[0]["exchange_id"] == one.exchange_id
    assert rows[0]["messages"] == [{"role": "user", "content": "Tell me about Rome"}]
    assert rows[0]["answer"]["content"] == "Rome was not built in a day."
    json.dumps(rows)

    store.remove(one.chat_id)
    assert store.chat_path(one.chat_id) is None
    assert [c["id"] for c in store.list_chats()] == [long.chat_id, two.chat_id]
    assert usage_total(store.usage())["requests"] == 2
    assert index_lines(store)[-1] == {"chat": one.chat_id, "ev": "rm", "at": ANY_TIME}
    with pytest.raises(UsageError):
        store.remove(one.chat_id)
    assert store.reindex() == 2


class _AnyTime:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and other.endswith("Z") and len(other) == 24


ANY_TIME: Any = _AnyTime()


def write_index(store: HistoryStore, records: list[dict[str, Any]]) -> None:
    store.root.mkdir(parents=True)
    lines = [json.dumps(r, separators=(",", ":")) + "\n" for r in records]
    (store.root / "index.jsonl").write_text("".join(lines))


def test_usage_by_model_and_day_since_and_total(store: HistoryStore) -> None:
    def line(n: int, at: str, served: str | None, cost: float, **usage: int) -> dict[str, Any]:
        record = {"ex": f"e{n}", "chat": f"c{n}", "ev": "end", "at": at, "model": "req"}
        return record | ({"served": served} if served else {}) | usage | {"cost": cost}

    write_index(
        store,
        [
            line(1, "2025-01-01T10:00:00.000Z", "a", 1.0, prompt_tokens=10, completion_tokens=1),
            line(2, "2025-01-02T10:00:00.000Z", "b", 3.0, reasoning_tokens=7, cached_tokens=2),
            line(3, "2025-01-02T11:00:00.000Z", "a", 0.5, prompt_tokens=5),
            line(4, "2025-01-03T09:00:00.000Z", None, 0.25),
            {"ex": "e5", "chat": "c5", "ev": "begin", "at": "2025-01-03T10:00:00.000Z"},
        ],
    )
    by_model = store.usage()
    assert [(r["key"], r["requests"], r["cost"]) for r in by_model] == [
        ("b", 1, 3.0),
        ("a", 2, 1.5),
        ("req", 1, 0.25),
        ("unknown", 1, None),  # nothing reported: unknown, not free
    ]
    assert by_model[1] == {
        "key": "a",
        "requests": 2,
        "prompt_tokens": 15,
        "completion_tokens": 1,
        "reasoning_tokens": 0,
        "cached_tokens": 0,
        "cost": 1.5,
        "requests_without_cost": 0,
    }
    assert [r["key"] for r in store.usage(by="day")] == ["2025-01-01", "2025-01-02", "2025-01-03"]
    since = datetime(2025, 1, 2, 10, 30, tzinfo=UTC)
    assert [r["requests"] for r in store.usage(since, by="day")] == [1, 2]
    total = usage_total(store.usage(since))
    assert total["key"] == "total" and total["requests"] == 3 and total["cost"] == 0.75
    assert usage_total(by_model)["cost"] == 4.75
    assert usage_total(by_model)["requests_without_cost"] == 1
    assert store.usage(datetime.now(UTC) + timedelta(days=1)) == []


def test_new_ids_are_twelve_hex_characters() -> None:
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 12 and int(i, 16) >= 0 for i in ids)


def test_last_chat_is_found_past_the_end_of_a_large_index(store: HistoryStore) -> None:
    def line(ex: str, chat: str, ev: str) -> dict[str, Any]:
        return {
            "ex": ex,
            "chat": chat,
            "ev": ev,
            "at": "2025-01-01T00:00:00.000Z",
            "pad": "x" * 200,
        }

    begun = [line(f"a{n}", "aaaaaaaaaaaa", "begin") for n in range(3000)]
    ended = [line(f"a{n}", "aaaaaaaaaaaa", "end") for n in range(6000)]  # > 1 MiB of end lines
    write_index(store, [*begun, line("b", "bbbbbbbbbbbb", "begin"), *ended])
    (store.root / "chats").mkdir()
    for chat_id in ("aaaaaaaaaaaa", "bbbbbbbbbbbb"):
        chat = {"schema_version": 1, "id": chat_id, "exchanges": []}
        (store.root / "chats" / f"{chat_id}.json").write_text(json.dumps(chat))
    assert (store.root / "index.jsonl").stat().st_size > 1 << 20
    assert store.last_chat_id() == "bbbbbbbbbbbb"
    with (store.root / "index.jsonl").open("a") as index:
        index.write(json.dumps(line("c", "aaaaaaaaaaaa", "begin"), separators=(",", ":")) + "\n")
    assert store.last_chat_id() == "aaaaaaaaaaaa"


# --- read-only stores --------------------------------------------------------------------------


def snapshot(root: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every path under ``root`` with its mode and (for files) its bytes."""
    found: dict[str, tuple[int, bytes | None]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        body = path.read_bytes() if path.is_file() else None
        found[str(path.relative_to(root))] = (info.st_mode, body)
    return found


def dead_run(store: HistoryStore, chat_id: str, partial: str) -> str:
    """An exchange of ``chat_id`` whose writer was killed: still "running" in the chat file, its
    journal unlocked and holding ``partial``. Returns the exchange id."""
    path = store.chat_path(chat_id)
    assert path is not None
    chat = json.loads(path.read_text())
    exchange_id = "deaddeaddeaddead"
    chat["exchanges"].append(
        {
            "id": exchange_id,
            "started_at": "2999-01-01T00:00:00.000Z",
            "status": "running",
            "messages": [{"role": "user", "content": "killed question"}],
            "requested_model": "m/killed",
        }
    )
    path.write_text(json.dumps(chat))
    header = {"chat": chat_id, "ex": exchange_id, "at": "2999-01-01T00:00:00.000Z"}
    store.journal_path(exchange_id).write_text(
        json.dumps(header) + "\n" + json.dumps({"c": partial}) + "\n"
    )
    return exchange_id


def test_a_read_only_store_answers_everything_and_writes_nothing(
    tmp_path: Path, warnings: list[str]
) -> None:
    writer = HistoryStore(tmp_path / "history")
    first = exchange(writer, "Tell me about Rome", content="Rome was not built in a day.")
    exchange(writer, "and Paris?", content="PARIS is the capital of France")
    exchange(writer, "more about Rome", chat_id=first.chat_id)
    assert first.chat_id is not None
    dead = dead_run(writer, first.chat_id, "half an ans")
    (writer.root / "index.jsonl").unlink()  # a writing store would rebuild it
    (writer.root / ".lock").unlink()
    before = snapshot(writer.root)

    store = HistoryStore(writer.root, warn=warnings.append, read_only=True)
    assert store.last_chat_id() == first.chat_id and store.resolve("last") == first.chat_id
    assert store.resolve(first.chat_id[:8]) == first.chat_id
    rows = store.list_chats()
    assert [(r["id"], r["turns"], r["finish_reason"]) for r in rows][0] == (
        first.chat_id,
        3,
        "interrupted",
    )
    assert usage_total(store.usage())["requests"] == 4
    assert [r["key"] for r in store.usage(by="day")]
    loaded = store.load(first.chat_id)["exchanges"][-1]
    assert loaded["id"] == dead and loaded["finish_reason"] == "interrupted"
    assert loaded["answer"] == {"content": "half an ans"}
    assert store.conversation(first.chat_id)[-1] == {"role": "assistant", "content": "half an ans"}
    assert [h["role"] for h in store.search("half an")] == ["assistant"]
    exported = {r["exchange_id"]: r for r in store.export()}
    assert exported[dead]["finish_reason"] == "interrupted" and len(exported) == 4
    for write in (
        lambda: store.begin(start()),
        lambda: store.remove(first.chat_id or ""),
        store.reindex,
    ):
        with pytest.raises(RillError) as caught:
            write()
        assert caught.value.exit_code == ExitCode.INTERNAL
    assert warnings == []
    assert snapshot(writer.root) == before  # no index, no .lock, nothing settled
    assert store.journal_path(dead).exists()


def test_a_read_only_store_of_nothing_creates_nothing(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history", read_only=True)
    assert store.list_chats() == [] and store.usage() == [] and store.last_chat_id() is None
    assert store.search("x") == [] and list(store.export()) == []
    with pytest.raises(UsageError):
        store.resolve("last")
    assert list(tmp_path.iterdir()) == []


# --- many writers at once ------------------------------------------------------------------------


@pytest.fixture
def slow_fsync(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every fsync takes 25 ms, as on a busy disk or a network file system."""
    real = os.fsync

    def fsync(fd: int) -> None:
        time.sleep(0.025)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def test_two_hundred_threads_with_slow_fsync_lose_nothing(
    store: HistoryStore, warnings: list[str], slow_fsync: None
) -> None:
    count = 200  # as `rill batch -j 200` does
    go = threading.Barrier(count, timeout=30)
    recorders: list[ExchangeRecorder] = []

    def run(n: int) -> None:
        go.wait()
        recorder = store.begin(start(f"question {n}"))
        recorder.add(f"answer {n}")
        recorder.finish(outcome(content=None, finish_reason="length"))
        recorders.append(recorder)

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 100
    for thread in threads:
        thread.join(timeout=max(deadline - time.monotonic(), 0.01))
    assert not [t for t in threads if t.is_alive()]
    assert len(recorders) == count and all(r.enabled for r in recorders)
    assert warnings == [] and store.not_saved == 0
    rows = list(store.export())
    assert len(rows) == count
    for row in rows:
        assert (row["status"], row["finish_reason"]) == ("done", "length")
        assert row["answer"]["content"] == "answer " + row["messages"][0]["content"].split()[1]
        assert row["usage"]["cost"] == 0.25
    assert usage_total(store.usage())["requests"] == count
    assert {c["finish_reason"] for c in store.list_chats(limit=None)} == {"length"}
    assert list((store.root / "journal").iterdir()) == []
    assert not [p for p in (store.root / "chats").iterdir() if p.name.startswith(".")]


def test_finish_waits_for_a_busy_lock_instead_of_giving_up(
    store: HistoryStore, warnings: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rill.history.files, "LOCK_TIMEOUT", 0.2)
    recorder = store.begin(start())
    recorder.add("kept")
    held = threading.Event()

    def hold() -> None:
        with rill.history.files.locked(store.root / ".lock"):
            held.set()
            time.sleep(0.7)  # longer than the lock timeout

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)
    recorder.finish(outcome(content=None))
    holder.join(timeout=10)
    assert not holder.is_alive()
    assert warnings == []
    (ex,) = store.load(recorder.chat_id or "")["exchanges"]
    assert (ex["finish_reason"], ex["answer"]["content"]) == ("stop", "kept")


def test_a_prompt_is_written_without_fsync_and_its_finished_exchange_is_durable(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    recorder = store.begin(start())
    assert recorder.path is not None and recorder.path.exists()  # on disk before the request
    assert synced == []  # but not waited for: a killed run keeps it, a finish makes it durable
    recorder.finish(outcome())
    chat_tmp = [p for p in synced if p.startswith(f"{store.root / 'chats'}/.")]
    assert len(chat_tmp) == 1  # the finished chat file, before its rename
    assert str(store.root / "chats") in synced and str(store.root / "index.jsonl") in synced


def test_a_run_that_just_finished_is_not_taken_for_interrupted(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    recorder = store.begin(start("the question"))
    recorder.add("the whole answer")
    assert recorder.path is not None
    stale = (recorder.path, json.loads(recorder.path.read_text()))  # read while it ran
    recorder.finish(outcome(content=None))  # then it finished: the journal is gone
    # A reader that read the chat file just before the finish finds no journal.
    monkeypatch.setattr(store, "iter_chats", lambda: iter([stale]))
    (row,) = store.export()
    assert (row["finish_reason"], row["answer"]["content"]) == ("stop", "the whole answer")
    assert [h["role"] for h in store.search("whole answer")] == ["assistant"]


def test_remove_writes_the_tombstone_before_deleting_files(
    store: HistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    keep = exchange(store, "keep")
    gone = exchange(store, "gone")
    assert gone.path is not None
    real_unlink = Path.unlink

    def unlink(self: Path, missing_ok: bool = False) -> None:
        if self == gone.path:
            raise OSError(5, "Input/output error", str(self))
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    with pytest.raises(HistoryError, match="cannot remove chat"):
        store.remove(gone.chat_id or "")
    assert index_lines(store)[-1] == {"chat": gone.chat_id, "ev": "rm", "at": ANY_TIME}
    assert [c["id"] for c in store.list_chats()] == [keep.chat_id]


def test_continuing_a_damaged_chat_fails_before_anything_is_written(store: HistoryStore) -> None:
    first = exchange(store, "first")
    assert first.path is not None and first.chat_id is not None
    first.path.write_text("{ damaged")
    before = snapshot(store.root)
    with pytest.raises(HistoryError, match="damaged chat file"):
        store.begin(start("again", chat_id=first.chat_id))
    assert snapshot(store.root) == before


def test_a_long_queue_of_threads_waits_longer_than_the_lock_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rill batch -j 64 on a slow disk: the queue as a whole outlasts LOCK_TIMEOUT, but it moves,
    # so no thread may give up (its prompt would go unrecorded).
    monkeypatch.setattr(rill.history.files, "LOCK_TIMEOUT", 0.2)
    lock = tmp_path / ".lock"
    failures: list[BaseException] = []

    def hold_briefly() -> None:
        try:
            with rill.history.files.locked(lock):
                time.sleep(0.05)
        except OSError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=hold_briefly, daemon=True) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not [t for t in threads if t.is_alive()]
    assert failures == []  # 16 × 50 ms = 0.8 s of queue, four times the timeout


def test_one_thread_keeping_the_lock_past_the_timeout_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rill.history.files, "LOCK_TIMEOUT", 0.2)
    lock = tmp_path / ".lock"
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with rill.history.files.locked(lock):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)
    try:
        with (
            pytest.raises(rill.history.files.LockTimeout, match="another thread"),
            rill.history.files.locked(lock),
        ):
            pass
    finally:
        release.set()
        holder.join(timeout=10)


def test_every_read_is_journaled_before_finish_waits_for_the_lock(
    store: HistoryStore,
) -> None:
    recorder = store.begin(start())
    assert recorder.journal is not None
    recorder.add("first ")
    recorder.add("last second")
    assert "first last second" in recorder.journal.read_text().replace('"}\n{"c":"', "")
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with rill.history.files.locked(store.root / ".lock"):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    assert held.wait(5)
    finisher = threading.Thread(target=recorder.finish, args=(outcome(content=None),), daemon=True)
    finisher.start()
    # While finish waits for the lock, a kill would lose nothing: the journal has it all.
    wait_for_journal(recorder, "last second", 5, "the last text journalled while finish waits")
    assert finisher.is_alive()
    release.set()
    finisher.join(timeout=30)
    holder.join(timeout=10)
    assert not finisher.is_alive()
    (ex,) = store.load(recorder.chat_id or "")["exchanges"]
    assert ex["answer"]["content"] == "first last second"
