"""History through the command line: recording, continuing, listing, usage, damage, privacy."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from rill.cli import app
from rill.fake import FakeOpenRouter, Scenario
from rill.history import ExchangeStart, HistoryStore
from tests.e2e import RILL, closed_stdout, stop
from tests.test_history import dead_run, snapshot

runner = CliRunner()


def rill(*args: str, input: str | None = None) -> Any:
    return runner.invoke(app, list(args), input=input)


def ask(fake_server: FakeOpenRouter, *args: str) -> Any:
    result = rill("--base-url", fake_server.url, *args)
    assert result.exit_code == 0, result.stderr
    return result


def show(ref: str = "last") -> dict[str, Any]:
    result = rill("history", "show", ref, "--json")
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def test_exchange_is_recorded_with_everything(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(content=["Hi", " there"], served_model="openai/gpt-4o-mini", provider="Azure")
    )
    ask(fake_server, "-m", "openai/gpt-4o", "-s", "be brief", "--temperature", "0.2", "hello")
    chat = show()
    assert chat["schema_version"] == 1
    ex = chat["exchanges"][-1]
    assert ex["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hello"},
    ]
    assert ex["answer"]["content"] == "Hi there"
    assert ex["requested_model"] == "openai/gpt-4o"
    assert ex["served_model"] == "openai/gpt-4o-mini"
    assert ex["provider"] == "Azure"
    assert ex["generation_id"].startswith("gen-")
    assert ex["finish_reason"] == "stop"
    assert ex["usage"]["total_tokens"] > 0 and "cost" in ex["usage"]
    assert ex["request"]["temperature"] == 0.2
    assert {"started_at", "duration_ms", "ttft_ms"} <= set(ex["timings"])


def test_continue_sends_earlier_turns_in_order(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(content=["first answer"]),
        Scenario(content=["other"]),
        Scenario(content=["second answer"]),
        Scenario(content=["third"]),
    )
    ask(fake_server, "-s", "sys", "first question")
    first_id = show()["id"]
    ask(fake_server, "unrelated chat")
    # --chat with a unique prefix, then -c continues the most recently *used* chat
    ask(fake_server, "--chat", first_id[:6], "second question")
    assert fake_server.chat_requests[-1].body["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    ask(fake_server, "-c", "third question")
    messages = fake_server.chat_requests[-1].body["messages"]
    assert [m["content"] for m in messages] == [
        "sys",
        "first question",
        "first answer",
        "second question",
        "second answer",
        "third question",
    ]
    chat = show(first_id)
    assert len(chat["exchanges"]) == 3
    listed = json.loads(rill("history", "list", "--json").stdout)
    assert listed[0]["id"] == first_id and listed[0]["turns"] == 3


def test_continue_with_unknown_chat_is_a_usage_error(fake_server: FakeOpenRouter) -> None:
    result = rill("--base-url", fake_server.url, "--chat", "nope", "hi")
    assert result.exit_code == 2
    assert "nope" in result.stderr
    assert fake_server.chat_requests == []


def test_no_history_writes_nothing_at_all(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    ask(fake_server, "--no-history", "hello")
    assert not rill_env.exists() or not any(rill_env.rglob("*"))


def test_files_are_private_and_never_hold_the_key(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    ask(fake_server, "hello")
    fake_server.enqueue(Scenario.error(401))
    rill("--base-url", fake_server.url, "hello again")
    history = rill_env / "history"
    assert stat.S_IMODE(history.stat().st_mode) == 0o700
    files = [p for p in rill_env.rglob("*") if p.is_file()]
    assert files
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert fake_server.api_key.encode() not in path.read_bytes(), path


def test_toml_history_format(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    rill_env.mkdir(parents=True, exist_ok=True)
    (rill_env / "config.toml").write_text('history_format = "toml"\n')
    fake_server.enqueue(
        Scenario(content=["line one\n", "line two"], usage_style=None, send_done=True)
    )
    ask(fake_server, "hello")
    files = list((rill_env / "history").rglob("*.toml"))
    assert len(files) == 1
    data = tomllib.loads(files[0].read_text())
    assert data["exchanges"][0]["answer"]["content"] == "line one\nline two"
    assert show()["exchanges"][0]["answer"]["content"] == "line one\nline two"


def test_failed_run_keeps_partial_answer_and_error(fake_server: FakeOpenRouter) -> None:
    result = rill("--base-url", fake_server.url, "-m", "fake/midstream-error", "hi")
    assert result.exit_code == 7
    ex = show()["exchanges"][-1]
    assert ex["finish_reason"] == "error"
    assert ex["answer"]["content"]
    assert ex["error"]["exit_code"] == 7 and ex["error"]["message"]


def test_damaged_chat_file_is_skipped_with_a_warning(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    ask(fake_server, "good one")
    ask(fake_server, "bad one")
    bad = Path(rill_env / "history" / "chats" / f"{show()['id']}.json")
    bad.write_text("{ not json")
    search = rill("history", "search", "one", "--json")
    assert search.exit_code == 0 and bad.name in search.stderr
    assert [h["title"] for h in json.loads(search.stdout)] == ["good one"]
    shown = rill("history", "show", bad.stem)
    assert shown.exit_code == 3 and bad.name in shown.stderr and "Traceback" not in shown.stderr
    reindex = rill("history", "reindex")
    assert reindex.exit_code == 0 and bad.name in reindex.stderr
    with (rill_env / "history" / "index.jsonl").open("a") as index:
        index.write("half a line of garbage\n")
    listed = rill("history", "list", "--json")
    assert listed.exit_code == 0
    assert [c["title"] for c in json.loads(listed.stdout)] == ["good one"]
    usage = rill("usage", "--json")
    assert usage.exit_code == 0
    assert json.loads(usage.stdout)["total"]["requests"] == 1


def test_unwritable_history_never_stops_the_answer(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    rill_env.mkdir(parents=True, exist_ok=True)
    (rill_env / "history").write_text("a file where the folder should be")
    result = rill("--base-url", fake_server.url, "-m", "fake/echo", "still", "answers")
    assert result.exit_code == 0
    assert result.stdout == "still answers"
    assert "history" in result.stderr and result.stderr.count("\n") == 1


def test_list_show_search_export_rm(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(
        Scenario(content=["the capital is Paris"]),
        Scenario(content=["blue, because of Rayleigh scattering"]),
    )
    ask(fake_server, "capital of France?")
    ask(fake_server, "why is the sky blue?")
    listed = json.loads(rill("history", "list", "--limit", "1", "--json").stdout)
    assert len(listed) == 1 and listed[0]["title"] == "why is the sky blue?"
    text = rill("history", "list").stdout
    assert "capital of France?" in text and "why is the sky blue?" in text
    hits = json.loads(rill("history", "search", "rayleigh", "--json").stdout)
    assert len(hits) == 1 and hits[0]["chat_id"] == listed[0]["id"]
    nothing = rill("history", "search", "nothing-like-this")  # no hits: empty, and exit 0
    assert (nothing.exit_code, nothing.stdout, nothing.stderr) == (0, "", "")
    exported = [json.loads(line) for line in rill("history", "export").stdout.splitlines()]
    assert len(exported) == 2
    assert rill("history", "rm", listed[0]["id"]).exit_code == 0
    assert len(json.loads(rill("history", "list", "--json").stdout)) == 1
    shown = rill("history", "show", "last")
    assert "capital of France?" in shown.stdout and "Paris" in shown.stdout


def test_usage_totals_by_model_and_day(fake_server: FakeOpenRouter) -> None:
    usage = {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
        "cost": 0.5,
        "completion_tokens_details": {"reasoning_tokens": 2},
        "prompt_tokens_details": {"cached_tokens": 1},
    }
    fake_server.enqueue(
        Scenario(content=["a"], usage=usage, served_model="x/one"),
        Scenario(content=["b"], usage=usage, served_model="x/one"),
        Scenario(content=["c"], usage=usage, served_model="x/two"),
    )
    for prompt in ("p1", "p2", "p3"):
        ask(fake_server, "-m", "x/requested", prompt)
    report = json.loads(rill("usage", "--json").stdout)
    rows = {r["key"]: r for r in report["rows"]}
    assert set(rows) == {"x/one", "x/two"}  # grouped by the served model
    assert rows["x/one"]["requests"] == 2 and rows["x/one"]["cost"] == pytest.approx(1.0)
    assert rows["x/one"]["reasoning_tokens"] == 4 and rows["x/one"]["cached_tokens"] == 2
    assert report["total"]["prompt_tokens"] == 30
    by_day = json.loads(rill("usage", "--by", "day", "--since", "7d", "--json").stdout)
    assert len(by_day["rows"]) == 1 and by_day["rows"][0]["requests"] == 3
    future = json.loads(rill("usage", "--since", "2999-01-01", "--json").stdout)
    assert future["total"]["requests"] == 0
    assert rill("usage", "--since", "yesterday").exit_code == 2
    table = rill("usage").stdout
    assert "x/one" in table and "TOTAL" in table


def test_twenty_processes_finishing_at_once_all_land(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(Scenario(content=["x"], delay_headers=0.3, repeat=20))
    procs = [
        subprocess.Popen(
            [*RILL, "--base-url", fake_server.url, "-m", "m/x", f"prompt {i}"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(20)
    ]
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
    finally:
        stop(procs)  # after a failure, none of them is left running
    listed = json.loads(rill("history", "list", "--limit", "50", "--json").stdout)
    assert sorted(c["title"] for c in listed) == sorted(f"prompt {i}" for i in range(20))
    for path in (rill_env / "history" / "chats").iterdir():
        json.loads(path.read_text())
    assert all(
        json.loads(line) for line in (rill_env / "history" / "index.jsonl").read_text().splitlines()
    )
    assert os.listdir(rill_env / "history" / "journal") == []


def record(home: Path, prompt: str, answer: str) -> str:
    """One finished exchange written straight into the history under ``home``; its chat id."""
    store = HistoryStore(home / "history")
    recorder = store.begin(
        ExchangeStart(None, [{"role": "user", "content": prompt}], "m/req", {}, "http://x")
    )
    recorder.add(answer)
    recorder.finish({"finish_reason": "stop", "served_model": "m/served", "usage": {"cost": 1}})
    assert recorder.chat_id is not None
    return recorder.chat_id


def test_no_history_continue_only_reads(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    chat_id = record(rill_env, "first question", "first answer")
    store = HistoryStore(rill_env / "history")
    dead_run(store, chat_id, "cut short")  # a killed run: a writing load would settle it
    (rill_env / "history" / "index.jsonl").unlink()  # a writing store would rebuild it
    (rill_env / "history" / ".lock").unlink()
    before = snapshot(rill_env)
    ask(fake_server, "--no-history", "-c", "next question")
    assert snapshot(rill_env) == before  # --no-history writes nothing at all
    assert fake_server.chat_requests[-1].body["messages"][-3:] == [
        {"role": "user", "content": "killed question"},
        {"role": "assistant", "content": "cut short"},
        {"role": "user", "content": "next question"},
    ]


def test_completing_a_chat_id_writes_nothing(rill_env: Path) -> None:
    from rill.commands.completion import complete_chat

    chat_id = record(rill_env, "a question", "an answer")
    (rill_env / "history" / "index.jsonl").unlink()
    (rill_env / "history" / ".lock").unlink()
    before = snapshot(rill_env)
    assert complete_chat(chat_id[:3]) == [chat_id]
    assert snapshot(rill_env) == before


@pytest.mark.parametrize(
    "args",
    [
        ["history", "export"],
        ["history", "list"],
        ["history", "list", "--json"],
        ["history", "show", "last"],
        ["history", "search", "answer"],
        ["usage"],
        ["usage", "--json"],
    ],
)
def test_a_closed_stdout_ends_quietly_with_141(args: list[str], rill_env: Path) -> None:
    record(rill_env, "a question", "an answer")
    done = closed_stdout(*args)
    assert (done.returncode, done.stderr.decode()) == (141, "")


def test_export_into_head_ends_quietly_with_141(
    rill_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # only to write the history quickly
    for n in range(200):  # far more than a pipe holds
        record(rill_env, f"question {n}", "x" * 1000)
    rill = subprocess.Popen(
        [*RILL, "history", "export"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        head = subprocess.run(
            ["head", "-c", "100"], stdin=rill.stdout, capture_output=True, timeout=60
        )
        assert rill.stdout is not None and rill.stderr is not None
        rill.stdout.close()
        code = rill.wait(timeout=60)
        err = rill.stderr.read()
    finally:
        stop([rill])  # after a failure or a timeout, rill is not left running
    assert (code, err) == (141, b"")
    assert len(head.stdout) == 100


def test_a_since_too_far_back_is_a_usage_error() -> None:
    for since in ("99999999d", "99999999999999999999w"):
        result = rill("usage", "--since", since)
        assert result.exit_code == 2, result.output
        assert "--since" in result.stderr and "Traceback" not in result.stderr


def test_show_and_search_neutralise_control_sequences_on_a_terminal(
    fake_server: FakeOpenRouter, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_server.enqueue(Scenario(content=["\x1b]0;pwned\x07 a \x1b[31mred\x1b[0m word"]))
    ask(fake_server, "colour me")
    # Into a pipe, the text is exact.
    assert "\x1b]0;pwned\x07 a \x1b[31mred" in rill("history", "show").stdout
    assert "\x1b[31mred" in rill("history", "search", "red").stdout
    monkeypatch.setattr("rill.commands.history.stdout_is_terminal", lambda: True)
    for args in (["history", "show"], ["history", "search", "red"]):
        out = rill(*args).stdout
        assert "\x1b" not in out and "\x07" not in out, args
        assert "\u241b[31mred" in out, args


def test_tabs_and_newlines_inside_cells_keep_tsv_rows_whole(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    fake_server.enqueue(Scenario(content=["x"], served_model="evil\tmodel\nname"))
    ask(fake_server, "-m", "m/req", "a\ttabbed title")
    (row,) = rill("history", "list").stdout.splitlines()
    cells = row.split("\t")
    assert len(cells) == 8
    assert cells[2] == "evil model name" and cells[7] == "a tabbed title"
    lines = rill("usage").stdout.splitlines()
    assert len(lines) == 2 and [len(line.split("\t")) for line in lines] == [7, 7]
    assert lines[0].startswith("evil model name\t")
