"""A long-running writer (``rill serve`` makes a new chat per gateway request) keeps nothing per
chat: after thousands of exchanges the store holds as much Python memory as after a few, and
no name made for one chat goes through the interpreter's table of interned strings."""

from __future__ import annotations

import collections
import gc
import pathlib
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from rill.files import child
from rill.history import ExchangeStart, HistoryStore

THREADS = 4


def _start() -> ExchangeStart:
    return ExchangeStart(
        chat_id=None,
        messages=[{"role": "user", "content": "hi"}],
        requested_model="x",
        request={"temperature": 0.2},
        base_url="http://127.0.0.1:9/v1",
    )


def _exchanges(store: HistoryStore, count: int) -> None:
    """``count`` new chats of one exchange each, begun and finished from ``THREADS`` threads at
    once, as the server's worker threads do."""

    def work() -> None:
        for _ in range(count // THREADS):
            recorder = store.begin(_start())
            for n in range(5):
                recorder.add(f"{n} ")
            recorder.finish({"finish_reason": "stop", "usage": {"prompt_tokens": 3}})

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _live_types() -> collections.Counter[str]:
    gc.collect()
    return collections.Counter(type(o).__qualname__ for o in gc.get_objects())


def test_many_new_chats_keep_no_objects_per_chat(tmp_path: Path) -> None:
    warnings: list[str] = []
    store = HistoryStore(tmp_path / "history", warn=warnings.append)
    count = 2000
    _exchanges(store, 200)  # warm: first-use caches and lazy imports
    before = _live_types()
    _exchanges(store, count)
    grown = {name: n for name, n in (_live_types() - before).items() if n >= count // 20}
    assert not grown, f"live objects, by type, more after {count} chats: {grown}"
    assert not warnings
    assert len(store.chat_files()) == 200 + count


def test_many_new_chats_keep_no_memory_per_chat(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history")
    count = 1000
    _exchanges(store, 200)
    tracemalloc.start(8)
    try:
        gc.collect()
        before = tracemalloc.take_snapshot()
        _exchanges(store, count)
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    # The interpreter's table of interned strings (pathlib interns each name it parses) may be
    # resized once along the way; it is no state of the store's (the test below keeps the
    # store's own names out of it).
    ignore = [
        tracemalloc.Filter(False, tracemalloc.__file__),
        tracemalloc.Filter(False, pathlib.__file__),
    ]
    diff = after.filter_traces(ignore).compare_to(before.filter_traces(ignore), "traceback")
    growth = sum(stat.size_diff for stat in diff)
    top = "\n".join(line for stat in diff[:3] for line in stat.traceback.format())
    # A few hundred short strings stay allocated after a run, however many chats it wrote
    # (about 130 after 1,000, 210 after 20,000): far below a dict entry or a path per chat.
    assert growth < count * 40, f"{growth} bytes more after {count} chats, mostly:\n{top}"


class _RecordingSys:
    """``sys`` as pathlib sees it, noting each string it interns."""

    def __init__(self) -> None:
        self.interned: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(sys, name)

    def intern(self, text: str) -> str:
        self.interned.append(text)
        return sys.intern(text)


def _pathlib_module() -> Any:
    module = sys.modules[Path.__module__]  # pathlib, or pathlib._local (Python 3.13)
    assert hasattr(module, "sys"), "this pathlib interns through another name"
    return module


@pytest.mark.skipif(
    not hasattr(Path, "_make_child_relpath"),
    reason="this Python's pathlib has no way to make a path without interning its name",
)
def test_new_chats_intern_no_name_of_their_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A name interned for each chat keeps the table of interned strings being rebuilt, about
    # 1 MB at a time, and the heap of a long-running server grows with every rebuild.
    store = HistoryStore(tmp_path / "history")
    _exchanges(store, 8)  # warm
    recording = _RecordingSys()
    monkeypatch.setattr(_pathlib_module(), "sys", recording)
    _exchanges(store, 40)
    monkeypatch.undo()
    assert len(store.chat_files()) == 48
    per_chat = [s for s in recording.interned if s.endswith((".json", ".jsonl", ".tmp"))]
    assert not per_chat, f"pathlib interned {len(per_chat)} names, such as {per_chat[:3]}"


def test_a_child_path_is_the_path_joined(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recording = _RecordingSys()
    monkeypatch.setattr(_pathlib_module(), "sys", recording)
    made = child(tmp_path, "ex-0123.jsonl")
    assert str(made) == f"{tmp_path}/ex-0123.jsonl"
    assert (made.name, made.suffix, made.parent) == ("ex-0123.jsonl", ".jsonl", tmp_path)
    assert made == tmp_path / "ex-0123.jsonl"
    assert made.with_suffix(".tmp").name == "ex-0123.tmp"
    if hasattr(Path, "_make_child_relpath"):  # the joining above interned it, the child did not
        assert recording.interned.count("ex-0123.jsonl") == 1
