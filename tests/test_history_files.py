"""Private files (rill.files) and files planted in rill's folders: never followed, never chmod-ed,
never blocked on."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from rill.config.models import write_cache, write_private
from rill.fake import FakeOpenRouter
from rill.files import (
    GroupSync,
    NotRegularFile,
    append,
    make_dirs,
    open_private,
    read_private,
    write_atomic,
)
from rill.history import ExchangeStart, HistoryStore
from tests.e2e import run


def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_text("precious\n")
    path.chmod(0o644)
    return path


def untouched(path: Path) -> bool:
    return path.read_text() == "precious\n" and stat.S_IMODE(path.stat().st_mode) == 0o644


def test_write_atomic_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        make_dirs(tmp_path / "a" / "b")
        write_atomic(tmp_path / "a" / "b" / "f", b"data")
        append(tmp_path / "a" / "b" / "g", b"line\n")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    for name in ("f", "g"):
        assert stat.S_IMODE((tmp_path / "a" / "b" / name).stat().st_mode) == 0o600
    assert read_private(tmp_path / "a" / "b" / "f") == b"data"


def test_symlinks_and_fifos_are_refused_not_followed(tmp_path: Path) -> None:
    target = victim(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(target)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (link, fifo):
        with pytest.raises(NotRegularFile):
            append(path, b"evil\n")
        with pytest.raises(NotRegularFile):
            read_private(path)  # a FIFO would block a plain open: this must not
        with pytest.raises(NotRegularFile):
            open_private(path, os.O_RDWR | os.O_CREAT)
    write_atomic(link, b"new")  # replaces the link itself
    assert untouched(target) and not link.is_symlink() and link.read_bytes() == b"new"


def test_config_write_private_still_follows_a_linked_dotfile(tmp_path: Path) -> None:
    real = tmp_path / "dotfiles" / "config.toml"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "config.toml"
    link.symlink_to(real)
    write_private(link, "new")
    assert link.is_symlink() and real.read_text() == "new"
    assert stat.S_IMODE(real.stat().st_mode) == 0o600


def test_models_cache_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    target = victim(tmp_path)
    cache = tmp_path / "cache" / "models.json"
    cache.parent.mkdir()
    cache.symlink_to(target)
    write_cache(cache, "http://x", [{"id": "a/b"}], fetched_at=1.0)
    assert untouched(target) and not cache.is_symlink()
    assert json.loads(cache.read_text())["data"] == [{"id": "a/b"}]


def _start() -> ExchangeStart:
    return ExchangeStart(
        chat_id=None,
        messages=[{"role": "user", "content": "hi"}],
        requested_model="m/x",
        request={},
        base_url="http://127.0.0.1",
    )


@pytest.mark.parametrize("name", ["index.jsonl", ".lock"])
def test_planted_symlink_in_history_is_never_written_through(tmp_path: Path, name: str) -> None:
    target = victim(tmp_path)
    warnings: list[str] = []
    store = HistoryStore(tmp_path / "history", warn=warnings.append)
    first = store.begin(_start())
    first.finish({"content": "one"})
    planted = store.root / name
    planted.unlink()
    planted.symlink_to(target)
    recorder = store.begin(_start())
    recorder.add("two")
    recorder.finish({"content": "two"})
    assert untouched(target)
    assert warnings and all("Traceback" not in w for w in warnings)


def test_planted_symlink_as_journal_is_not_followed(tmp_path: Path) -> None:
    target = victim(tmp_path)
    store = HistoryStore(tmp_path / "history", warn=lambda _m: None)
    recorder = store.begin(_start())
    journal = store.journal_path(recorder.exchange_id)
    journal.unlink()
    journal.symlink_to(target)
    store.list_chats()
    list(store.export())
    assert untouched(target)
    recorder.finish({"content": "x"})
    assert untouched(target)


def test_fifo_among_chat_files_is_skipped_by_export(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    done = run(["--base-url", fake_server.url, "-m", "fake/echo", "hello"])
    assert done.returncode == 0, done.stderr
    chats = rill_env / "history" / "chats"
    os.mkfifo(chats / "aaaaaaaaaaaa.json")
    exported = run(["history", "export"], timeout=20)
    assert exported.returncode == 0, exported.stderr
    assert len(exported.stdout.splitlines()) == 1
    assert b"aaaaaaaaaaaa.json" in exported.stderr and b"Traceback" not in exported.stderr
    assert exported.stderr.count(b"\n") == 1


def test_group_sync_shares_fsyncs_and_each_caller_is_covered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    group = GroupSync()
    started: list[float] = []
    real = os.fsync

    def slow_fsync(fd: int) -> None:
        started.append(time.monotonic())
        real(fd)
        time.sleep(0.02)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    called: list[float] = []
    returned: list[float] = []
    lock = threading.Lock()

    def finish() -> None:
        with lock:
            called.append(time.monotonic())
        assert group.sync(tmp_path) == {}
        with lock:
            returned.append(time.monotonic())

    threads = [threading.Thread(target=finish) for _ in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(returned) == 32
    assert len(started) < 16  # shared: without grouping there would be 32
    for at in called:  # each caller is covered by an fsync that began after it called
        assert any(s >= at for s in started)


def test_concurrent_finishes_are_all_durable_records(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history", warn=lambda _m: None)
    recorders = [store.begin(_start()) for _ in range(40)]
    threads = [
        threading.Thread(target=r.finish, args=({"content": f"answer {i}"},))
        for i, r in enumerate(recorders)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    fresh = HistoryStore(tmp_path / "history", read_only=True)
    rows = list(fresh.export())
    assert {row["status"] for row in rows} == {"done"}
    answers = {row["answer"]["content"] for row in rows}
    assert answers == {f"answer {i}" for i in range(40)}
