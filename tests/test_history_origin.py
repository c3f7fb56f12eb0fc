"""Each exchange keeps the requested model and the server (without credentials); a chat's
origin is that of its last exchange; show says which model and which server answered."""

from __future__ import annotations

from pathlib import Path

from rill.fake import FakeOpenRouter, Scenario
from rill.history import ExchangeStart, HistoryStore
from tests.e2e import run


def test_model_and_server_are_stored_without_userinfo(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    url = fake_server.url.replace("http://", "http://someone:s3cret@")
    fake_server.enqueue(
        Scenario(content=["hi"], served_model="openai/gpt-4o-mini", require_auth=False)
    )
    done = run(["--base-url", url, "-m", "openai/gpt-4o", "hello"])
    assert done.returncode == 0, done.stderr
    for path in (rill_env / "history").rglob("*"):
        if path.is_file():
            assert b"s3cret" not in path.read_bytes(), path
    store = HistoryStore(rill_env / "history", read_only=True)
    chat_id = store.resolve("last")
    assert store.origin(chat_id) == ("openai/gpt-4o", fake_server.url)
    shown = run(["history", "show", "last"])
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert "openai/gpt-4o → openai/gpt-4o-mini" in text
    assert fake_server.url in text and "s3cret" not in text


def test_origin_is_the_last_exchange(tmp_path: Path) -> None:
    store = HistoryStore(tmp_path / "history", warn=lambda _m: None)
    first = store.begin(
        ExchangeStart(None, [{"role": "user", "content": "a"}], "m/one", {}, "http://one")
    )
    first.finish({"content": "x"})
    assert first.chat_id is not None
    second = store.begin(
        ExchangeStart(
            first.chat_id, [{"role": "user", "content": "b"}], "m/two", {}, "http://u:p@two"
        )
    )
    second.finish({"content": "y"})
    assert store.origin(first.chat_id) == ("m/two", "http://two")
