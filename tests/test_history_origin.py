"""Each exchange keeps the requested model and the server (without credentials); a chat's
origin is that of its last exchange; show says which model and which server answered."""

from __future__ import annotations

import os
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


# -- continuing a chat: its own model on its own server --------------------------------------


def _env(**changes: str | None) -> dict[str, str]:
    env = dict(os.environ)
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def test_continue_goes_on_with_the_chats_model_and_server(fake_server: FakeOpenRouter) -> None:
    # A local server, no API key and no default model: `-c` alone must find its way back.
    fake_server.require_auth = False
    env = _env(OPENROUTER_API_KEY=None)
    first = run(["-m", "local/x", "--base-url", fake_server.url, "hi"], env=env)
    assert first.returncode == 0, first.stderr
    again = run(["-c", "and then?"], env=env)
    assert again.returncode == 0, again.stderr  # not exit 3: the key check sees the chat's server
    sent = fake_server.chat_requests
    assert len(sent) == 2
    assert sent[1].body["model"] == "local/x"
    assert [m["content"] for m in sent[1].body["messages"]][::2] == ["hi", "and then?"]


def test_environment_and_config_do_not_move_a_chat(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.require_auth = False
    first = run(["-m", "local/x", "--base-url", fake_server.url, "hi"])
    assert first.returncode == 0, first.stderr
    rill_env.mkdir(parents=True, exist_ok=True)
    (rill_env / "config.toml").write_text(
        'model = "config/model"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    env = _env(RILL_MODEL="env/model", RILL_BASE_URL="http://127.0.0.1:9/api/v1")
    again = run(["-c", "and then?"], env=env)
    assert again.returncode == 0, again.stderr
    assert [r.body["model"] for r in fake_server.chat_requests] == ["local/x", "local/x"]
    # A new chat still follows the environment.
    fresh = run(["--dry-run", "hello"], env=env)
    assert b"POST http://127.0.0.1:9/api/v1/chat/completions" in fresh.stdout
    assert b'"model": "env/model"' in fresh.stdout


def test_flags_move_a_continued_chat(fake_server: FakeOpenRouter) -> None:
    fake_server.require_auth = False
    first = run(["-m", "local/x", "--base-url", fake_server.url, "hi"])
    assert first.returncode == 0, first.stderr
    chat_id = HistoryStore(Path(os.environ["RILL_HOME"]) / "history", read_only=True).resolve(
        "last"
    )
    other_model = run(["--chat", chat_id, "-m", "local/y", "again"])
    assert other_model.returncode == 0, other_model.stderr
    other_server = run(["-c", "--base-url", fake_server.openai_url, "once more"])
    assert other_server.returncode == 0, other_server.stderr
    sent = fake_server.chat_requests
    assert [(r.path, r.body["model"]) for r in sent] == [
        ("/api/v1/chat/completions", "local/x"),
        ("/api/v1/chat/completions", "local/y"),
        # the last exchange's model (local/y) on the server the flag names
        ("/v1/chat/completions", "local/y"),
    ]
    assert len(sent[2].body["messages"]) == 5  # the whole chat went along
