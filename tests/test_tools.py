"""Tools the model may call (``--tool``, ``--mcp``, ``rill tools``), end to end.

Every test runs the installed ``rill`` against the fake server's tool-using model
(``fake/tool-use``: it calls the first offered tool until the conversation holds a tool result,
then answers "The tool said: …"; ``fake/tool-loop`` calls it every time). The tools are small
Python scripts declared in ``$RILL_HOME/tools``; a marker file tells whether one ran.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from rill.fake import FakeOpenRouter
from tests.e2e import RILL, finish, run, spawn, wait_until

HERE = Path(__file__).resolve().parent

#: Upper-cases ``text``; leaves a marker (its tool name, call id and whether it saw the key).
UPPER = """
import json, os, sys
args = json.load(sys.stdin)
with open(os.environ["MARKER"], "a") as f:
    key = "OPENROUTER_API_KEY" in os.environ
    f.write(f"{os.environ['RILL_TOOL_NAME']} {os.environ['RILL_TOOL_CALL_ID']} {key}\\n")
print(args["text"].upper())
"""
FAIL = """
import sys
sys.stdin.read()
print("half an answer")
print("boom: the database is down", file=sys.stderr)
sys.exit(3)
"""
#: Starts a child in its own process group's tree, writes both pids, then hangs.
HANG = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
with open(os.environ["MARKER"], "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
time.sleep(120)
"""
TEXT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}


def declare(home: Path, name: str, code: str, **extra: Any) -> None:
    folder = home / "tools"
    folder.mkdir(parents=True, exist_ok=True)
    table = {
        "description": f"the {name} tool",
        "command": [sys.executable, "-c", code],
        "parameters": TEXT_SCHEMA,
        **extra,
    }
    (folder / f"{name}.toml").write_text(tomli_w.dumps(table), encoding="utf-8")


@pytest.fixture
def marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "marker"
    monkeypatch.setenv("MARKER", str(path))
    return path


def events(stdout: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.decode().splitlines()]


def ask(url: str, *args: str, model: str = "fake/tool-use") -> list[str]:
    return ["--base-url", url, "-m", model, *args]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


# --- the loop ----------------------------------------------------------------------------------


def test_a_tool_runs_with_yes_and_its_result_reaches_the_answer_and_the_second_request(
    fake_server: FakeOpenRouter, rill_env: Path, marker: Path
) -> None:
    declare(rill_env, "upper", UPPER)
    done = run(ask(fake_server.url, "--tool", "upper", "--yes", "hello world"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"The tool said: HELLO WORLD"  # stdout: only the final answer
    name, call_id, saw_key = marker.read_text().split()
    assert (name, saw_key) == ("upper", "False")  # the API key never reaches a tool
    first, second = (r.body for r in fake_server.chat_requests)
    assert first["tools"][0]["function"]["name"] == "upper"
    assert first["tools"][0]["function"]["parameters"] == TEXT_SCHEMA
    assistant, result = second["messages"][-2:]
    assert assistant["role"] == "assistant"
    assert assistant["tool_calls"][0]["id"] == call_id
    assert json.loads(assistant["tool_calls"][0]["function"]["arguments"]) == {
        "text": "hello world"
    }
    assert result == {"role": "tool", "tool_call_id": call_id, "content": "HELLO WORLD\n"}
    err = done.stderr.decode()
    assert 'rill: tool upper {"text":"hello world"}' in err
    assert "rill: tool upper → exit 0, 12 bytes: HELLO WORLD" in err


def test_history_keeps_every_round_usage_counts_them_and_c_continues(
    fake_server: FakeOpenRouter, rill_env: Path, marker: Path
) -> None:
    declare(rill_env, "upper", UPPER)
    assert run(ask(fake_server.url, "--tool", "upper", "--yes", "-f", "json", "hi")).returncode == 0
    chat = json.loads(run(["history", "show", "last", "--json"]).stdout)
    first, second = chat["exchanges"]
    assert first["answer"]["tool_calls"][0]["function"]["name"] == "upper"
    assert second["messages"][0]["role"] == "tool"
    assert second["tool_results"][0]["exit_code"] == 0
    assert first["usage"]["total_tokens"] > 0 and second["usage"]["total_tokens"] > 0
    shown = run(["history", "show", "last"]).stdout.decode()
    assert '[tool call] upper {"text":"hi"}' in shown
    assert "[tool upper · exit 0] HI" in shown
    assert "[assistant] The tool said: HI" in shown
    usage = json.loads(run(["usage", "--json"]).stdout)
    assert usage["total"]["requests"] == 2
    # -c sends the whole loop back: the tool call and its result are in the conversation.
    fake_server.reset()
    again = run(ask(fake_server.url, "-c", "-m", "fake/echo", "thanks"))
    assert again.returncode == 0, again.stderr
    roles = [m["role"] for m in fake_server.chat_requests[0].body["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]


def test_sse_and_jsonl_show_tool_result_events_and_one_done_with_summed_usage(
    fake_server: FakeOpenRouter, rill_env: Path, marker: Path
) -> None:
    declare(rill_env, "upper", UPPER)
    done = run(ask(fake_server.url, "--tool", "upper", "--yes", "-f", "jsonl", "abc"))
    assert done.returncode == 0, done.stderr
    got = events(done.stdout)
    names = [e["event"] for e in got]
    assert names.count("start") == 1 and names.count("done") == 1 and names[-1] == "done"
    result = next(e for e in got if e["event"] == "tool_result")
    assert result["name"] == "upper" and result["exit_code"] == 0 and result["content"] == "ABC\n"
    chat = json.loads(run(["history", "show", "last", "--json"]).stdout)
    per_round = [ex["usage"]["total_tokens"] for ex in chat["exchanges"]]
    assert len(per_round) == 2
    assert got[-1]["usage"]["total_tokens"] == sum(per_round)
    assert got[-1]["message"]["content"] == "The tool said: ABC"


def test_without_yes_and_without_a_terminal_the_tool_is_not_run_and_the_run_still_answers(
    fake_server: FakeOpenRouter, rill_env: Path, marker: Path
) -> None:
    declare(rill_env, "upper", UPPER)
    done = run(ask(fake_server.url, "--tool", "upper", "-f", "jsonl", "hello"))
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    result = next(e for e in events(done.stdout) if e["event"] == "tool_result")
    assert result["exit_code"] is None
    assert "not approved" in result["content"]
    tool_message = fake_server.chat_requests[1].body["messages"][-1]
    assert tool_message["role"] == "tool" and "not approved" in tool_message["content"]
    assert events(done.stdout)[-1]["event"] == "done"


def test_a_failing_tool_is_reported_to_the_model_and_as_a_tool_result_event(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    declare(rill_env, "flaky", FAIL)
    done = run(ask(fake_server.url, "--tool", "flaky", "--yes", "-f", "sse", "go"))
    assert done.returncode == 0, done.stderr  # a failed call never ends the run by itself
    text = done.stdout.decode()
    block = next(b for b in text.split("\n\n") if b.startswith("event: tool_result"))
    result = json.loads(block.split("data: ", 1)[1])
    assert result["exit_code"] == 3
    assert "exited with status 3" in result["content"]
    assert "boom: the database is down" in result["content"]
    assert "half an answer" in result["content"]
    sent = fake_server.chat_requests[1].body["messages"][-1]["content"]
    assert sent == result["content"]
    assert "event: done" in text
    assert "rill: tool flaky → exit 3" in done.stderr.decode()


def test_a_hanging_tool_and_what_it_started_are_killed_at_its_timeout(
    fake_server: FakeOpenRouter, rill_env: Path, marker: Path
) -> None:
    declare(rill_env, "hang", HANG, timeout=1.5)
    t0 = time.monotonic()
    done = run(ask(fake_server.url, "--tool", "hang", "--yes", "-f", "jsonl", "x"), timeout=60)
    assert time.monotonic() - t0 < 30
    assert done.returncode == 0, done.stderr
    result = next(e for e in events(done.stdout) if e["event"] == "tool_result")
    assert result["exit_code"] == 124
    assert "did not finish within 1.5 s" in result["content"]
    tool_pid, child_pid = map(int, marker.read_text().split())
    wait_until(lambda: not alive(child_pid), 10, "the tool's child to be gone")
    assert not alive(tool_pid)


def test_arguments_that_do_not_match_the_schema_are_not_run_and_the_model_is_told(
    fake_server: FakeOpenRouter, rill_env: Path, marker: Path
) -> None:
    declare(rill_env, "upper", UPPER)
    # The fake model calls the tool with the user's JSON object as its arguments.
    done = run(ask(fake_server.url, "--tool", "upper", "--yes", "-f", "jsonl", '{"text": 5}'))
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    result = next(e for e in events(done.stdout) if e["event"] == "tool_result")
    assert result["exit_code"] is None
    assert "do not match the tool's schema at text: 5 is not of type 'string'" in result["content"]
    assert fake_server.chat_requests[1].body["messages"][-1]["content"] == result["content"]


def test_the_round_limit_exits_7_and_keeps_every_round(
    fake_server: FakeOpenRouter, rill_env: Path, marker: Path
) -> None:
    declare(rill_env, "upper", UPPER)
    argv = ["--tool", "upper", "--yes", "--max-tool-rounds", "2", "-f", "jsonl", "again"]
    done = run(ask(fake_server.url, *argv, model="fake/tool-loop"))
    assert done.returncode == 7, done.stderr
    assert "the model still called tools after 2 rounds (--max-tool-rounds 2)" in (
        done.stderr.decode()
    )
    assert len(fake_server.chat_requests) == 3
    assert len(marker.read_text().splitlines()) == 2  # the third round's call was not run
    last = events(done.stdout)[-1]
    assert last["event"] == "error" and last["exit_code"] == 7
    assert last["code"] == "max_tool_rounds"
    # Every call in history has its tool message, so -c sends a conversation servers accept.
    chat = json.loads(run(["history", "show", "last", "--json"]).stdout)
    calls = [c["id"] for ex in chat["exchanges"] for c in ex["answer"].get("tool_calls", [])]
    answered = [
        m["tool_call_id"] for ex in chat["exchanges"] for m in ex["messages"] if m["role"] == "tool"
    ]
    assert calls == answered and len(calls) == 3
    assert chat["exchanges"][-1]["sent"] is False  # the last calls' results were never sent
    assert json.loads(run(["usage", "--json"]).stdout)["total"]["requests"] == 3


SLOW = """
import sys, time
sys.stdin.read()
time.sleep(4)
print("slow but done")
"""


def test_time_limits_hold_for_each_round_not_for_the_tool_loop(
    fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    declare(rill_env, "slow", SLOW)
    argv = ["--tool", "slow", "--yes", "--total-timeout", "3", "--no-history", "go"]
    done = run(ask(fake_server.url, *argv), timeout=60)
    assert done.returncode == 0, done.stderr  # 4 s of tool between two rounds of well under 3 s
    assert done.stdout == b"The tool said: slow but done"
    assert not (rill_env / "history").exists()  # --no-history: nothing written for any round


# --- consent on a terminal, and Ctrl-C --------------------------------------------------------


Answer = bytes | Callable[[subprocess.Popen[bytes]], None]


def _pty_run(argv: list[str], answers: list[Answer], timeout: float = 30) -> tuple[int, str]:
    """Run rill with stdin, stdout and stderr on a pseudo-terminal, answering each consent
    question with the next of ``answers`` (typed, or done to the process); its exit code and
    everything it showed."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        [*RILL, *argv], stdin=slave, stdout=slave, stderr=slave, start_new_session=True
    )
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout
    pending = list(answers)
    try:
        while True:
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; the terminal shows {shown!r}"
            ready, _, _ = select.select([master], [], [], min(left, 0.5))
            if ready:
                try:
                    piece = os.read(master, 65536)
                except OSError:  # the terminal closed: rill has exited
                    break
                if not piece:
                    break
                shown += piece
                if pending and shown.count(b"[a]ll: ") > len(answers) - len(pending):
                    answer = pending.pop(0)
                    if isinstance(answer, bytes):
                        os.write(master, answer)
                    else:
                        answer(proc)
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=10), shown.decode("utf-8", "replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        os.close(master)


@pytest.mark.parametrize(("answer", "runs"), [(b"y\n", True), (b"n\n", False)])
def test_consent_is_asked_on_a_terminal_and_the_answer_is_obeyed(
    fake_server: FakeOpenRouter, rill_env: Path, marker: Path, answer: bytes, runs: bool
) -> None:
    declare(rill_env, "upper", UPPER)
    code, shown = _pty_run(ask(fake_server.url, "--tool", "upper", "hello"), [answer])
    assert code == 0, shown
    assert 'rill: run tool upper {"text": "hello"}? [y]es / [n]o / [a]ll: ' in shown
    assert marker.exists() is runs
    assert ("The tool said: HELLO" in shown) is runs
    assert ("not approved" in shown) is not runs


def test_yes_to_all_on_a_terminal_approves_the_later_calls_too(
    fake_server: FakeOpenRouter, rill_env: Path, marker: Path
) -> None:
    declare(rill_env, "upper", UPPER)
    argv = ["--base-url", fake_server.url, "-m", "fake/tool-loop", "--tool", "upper"]
    code, shown = _pty_run([*argv, "--max-tool-rounds", "3", "hi"], [b"a\n"])
    assert code == 7, shown
    assert shown.count("[a]ll: ") == 1  # asked once
    assert len(marker.read_text().splitlines()) == 3


def test_ctrl_c_at_the_consent_question_runs_nothing_and_keeps_the_answer(
    fake_server: FakeOpenRouter, rill_env: Path, marker: Path
) -> None:
    declare(rill_env, "upper", UPPER)
    argv = ask(fake_server.url, "--tool", "upper", "hello")
    code, shown = _pty_run(argv, [lambda proc: proc.send_signal(signal.SIGINT)])
    assert code == 130, shown
    assert not marker.exists()
    assert "Traceback" not in shown and "cancelled by SIGINT" in shown
    chat = json.loads(run(["history", "show", "last", "--json"]).stdout)
    assert [ex["finish_reason"] for ex in chat["exchanges"]] == ["tool_calls", "cancelled"]
    assert len(fake_server.chat_requests) == 1


@pytest.mark.parametrize(
    ("signum", "code", "name"), [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")]
)
def test_ctrl_c_while_a_tool_runs_kills_its_process_group_and_keeps_everything(
    fake_server: FakeOpenRouter,
    rill_env: Path,
    marker: Path,
    signum: signal.Signals,
    code: int,
    name: str,
) -> None:
    declare(rill_env, "hang", HANG)
    proc = spawn(ask(fake_server.url, "--tool", "hang", "--yes", "-f", "jsonl", "x"))
    wait_until(lambda: marker.exists() and len(marker.read_text().split()) == 2, 20, "the tool")
    tool_pid, child_pid = map(int, marker.read_text().split())
    proc.send_signal(signum)
    exit_code, out, err = finish(proc, timeout=20)
    assert exit_code == code, err
    wait_until(lambda: not alive(child_pid), 10, "the tool's child to be gone")
    assert not alive(tool_pid)
    got = events(out)
    assert got[-1]["event"] == "done" and got[-1]["finish_reason"] == "cancelled"
    assert f"cancelled by {name}" in err.decode()
    chat = json.loads(run(["history", "show", "last", "--json"]).stdout)
    first, kept = chat["exchanges"]
    assert first["answer"]["tool_calls"][0]["function"]["name"] == "hang"
    assert kept["finish_reason"] == "cancelled"
    assert kept["messages"][0]["role"] == "tool" and "cancelled" in kept["messages"][0]["content"]
    assert len(fake_server.chat_requests) == 1  # nothing was asked after the cancel


# --- declaring tools -----------------------------------------------------------------------------


def test_an_unknown_tool_is_a_usage_error_naming_it_and_nothing_is_sent(
    fake_server: FakeOpenRouter,
) -> None:
    done = run(ask(fake_server.url, "--tool", "nope", "hi"))
    assert done.returncode == 2
    assert done.stderr.decode().startswith("rill: unknown tool 'nope'")
    assert fake_server.requests == []


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ({"command": "ls -l"}, "command must be a non-empty list"),
        ({"command": ["true"], "timeout": -1}, "timeout must be a positive number"),
        ({"command": ["true"], "parameters": {"type": "string"}}, "must describe an object"),
        (
            {"command": ["true"], "parameters": {"type": "object", "required": "x"}},
            "not a valid JSON Schema",
        ),
        ({"command": ["true"], "shell": True}, "unknown key 'shell'"),
    ],
)
def test_an_invalid_definition_is_a_usage_error_naming_the_tool(
    fake_server: FakeOpenRouter, rill_env: Path, table: dict[str, Any], why: str
) -> None:
    (rill_env / "tools").mkdir(parents=True)
    (rill_env / "tools" / "bad.toml").write_text(tomli_w.dumps(table), encoding="utf-8")
    done = run(ask(fake_server.url, "--tool", "bad", "hi"))
    assert done.returncode == 2
    err = done.stderr.decode()
    assert err.startswith("rill: invalid tool 'bad'") and why in err, err
    assert fake_server.requests == []


def test_dry_run_shows_the_tools_offered(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    declare(rill_env, "upper", UPPER)
    done = run(ask(fake_server.url, "--tool", "upper", "--dry-run", "hi"))
    assert done.returncode == 0, done.stderr
    body = json.loads(done.stdout.decode().split("\n\n", 1)[1])
    assert [t["function"]["name"] for t in body["tools"]] == ["upper"]
    assert fake_server.requests == []


def test_tools_list_show_and_run(rill_env: Path, marker: Path) -> None:
    declare(rill_env, "upper", UPPER)
    declare(rill_env, "flaky", FAIL)
    listed = run(["tools", "list"])
    assert listed.returncode == 0
    rows = [line.split("\t") for line in listed.stdout.decode().splitlines()]
    assert [(r[0], r[2]) for r in rows] == [
        ("flaky", "the flaky tool"),
        ("upper", "the upper tool"),
    ]
    shown = json.loads(run(["tools", "show", "upper"]).stdout)
    assert shown["parameters"] == TEXT_SCHEMA and shown["timeout"] == 30
    ran = run(["tools", "run", "upper", '{"text": "abc"}'])
    assert (ran.returncode, ran.stdout) == (0, b"ABC\n")
    failed = run(["tools", "run", "flaky", '{"text": "abc"}'])
    assert failed.returncode == 3 and b"boom" in failed.stdout
    invalid = run(["tools", "run", "upper", '{"text": 1}'])
    assert invalid.returncode == 2
    assert b"1 is not of type 'string'" in invalid.stderr
    assert run(["tools", "show", "nope"]).returncode == 2


def test_tool_completion_offers_the_declared_names(rill_env: Path) -> None:
    from rill.commands.completion import complete_tool

    declare(rill_env, "upper", UPPER)
    declare(rill_env, "uptime", UPPER)
    declare(rill_env, "flaky", FAIL)
    assert complete_tool("up") == ["upper", "uptime"]
    env = {**os.environ, "_RILL_COMPLETE": "complete_bash", "COMP_WORDS": "rill --tool up"}
    env["COMP_CWORD"] = "2"
    done = subprocess.run(RILL, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.split() == ["upper", "uptime"]
    env["COMP_WORDS"], env["COMP_CWORD"] = "rill tools run ", "3"
    done = subprocess.run(RILL, env=env, capture_output=True, text=True, timeout=30, check=False)
    assert done.stdout.split() == ["flaky", "upper", "uptime"]


# --- MCP -----------------------------------------------------------------------------------------


def test_an_mcp_servers_tool_runs_end_to_end(fake_server: FakeOpenRouter, rill_env: Path) -> None:
    pytest.importorskip("mcp")
    rill_env.mkdir(parents=True, exist_ok=True)
    server = {"command": [sys.executable, str(HERE / "mcp_server.py")]}
    (rill_env / "config.toml").write_text(tomli_w.dumps({"mcp": {"demo": server}}))
    done = run(ask(fake_server.url, "--mcp", "demo", "--yes", "-f", "jsonl", "hello"), timeout=90)
    assert done.returncode == 0, done.stderr
    got = events(done.stdout)
    result = next(e for e in got if e["event"] == "tool_result")
    assert (result["name"], result["exit_code"], result["content"]) == ("shout", 0, "HELLO!")
    assert got[-1]["message"]["content"] == "The tool said: HELLO!"
    offered = fake_server.chat_requests[0].body["tools"][0]["function"]
    assert offered["name"] == "shout" and offered["parameters"]["required"] == ["text"]


def test_an_unknown_mcp_server_is_a_usage_error(fake_server: FakeOpenRouter) -> None:
    done = run(ask(fake_server.url, "--mcp", "nope", "hi"))
    assert done.returncode == 2
    assert done.stderr.decode().startswith("rill: unknown MCP server 'nope'")
    assert fake_server.requests == []


def test_the_offline_demo_runs_the_tool_loop(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}
    env["RILL_HOME"] = str(tmp_path / "demo-home")
    done = subprocess.run(
        ["bash", str(HERE.parent / "scripts" / "demo"), "--tools", "one two three"],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert done.stdout == b"The tool said: 3"
    assert b"rill: tool word_count \xe2\x86\x92 exit 0" in done.stderr


def test_output_past_100_kb_is_cut_with_a_note(rill_env: Path) -> None:
    declare(rill_env, "big", "import sys; sys.stdin.read(); sys.stdout.write('x' * 300_000)")
    done = run(["tools", "run", "big", '{"text": ""}'])
    assert done.returncode == 0, done.stderr
    text = done.stdout.decode()
    assert text.startswith("x" * 102_400 + "\n[rill: the output was cut at 100 KB")
    assert "300,000 bytes in all" in text and text.count("x") == 102_400
