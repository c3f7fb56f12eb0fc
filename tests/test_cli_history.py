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
from tests.e2e import RILL
from tests.fakeserver import FakeOpenRouter, Scenario

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
    assert rill("history", "search", "nothing-like-this").exit_code == 1
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
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    listed = json.loads(rill("history", "list", "--limit", "50", "--json").stdout)
    assert sorted(c["title"] for c in listed) == sorted(f"prompt {i}" for i in range(20))
    for path in (rill_env / "history" / "chats").iterdir():
        json.loads(path.read_text())
    assert all(
        json.loads(line) for line in (rill_env / "history" / "index.jsonl").read_text().splitlines()
    )
    assert os.listdir(rill_env / "history" / "journal") == []
