"""``rill batch``: the engine's pieces in-process, and the command end to end against the fake
server (``rill`` as a subprocess, so concurrency, signals and resuming are real)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from rill.batch import (
    BackoffGate,
    Defaults,
    GatedPolicy,
    Item,
    Output,
    Reporter,
    Tally,
    build_request,
    check_unique,
    completed_ids,
    encode_line,
    parse_item,
    parse_lines,
)
from rill.config.settings import Settings
from rill.errors import Cancelled, ExitCode, TimeoutError_, UsageError
from rill.events import Done, Error
from rill.fake import FakeOpenRouter, Gate, Scenario
from rill.history import HistoryStore, usage_total
from rill.stream.client import ChatClient
from rill.stream.control import Control, Limits
from rill.stream.protocol import Request
from tests.e2e import RILL, finish, read_until, run, spawn, wait_until

# --- helpers -------------------------------------------------------------------------------------


def jsonl(*objs: Any) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def items(n: int, **extra: Any) -> bytes:
    return jsonl(*({"id": i, "prompt": f"item {i}", **extra} for i in range(1, n + 1)))


def lines_of(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def prompts(server: FakeOpenRouter) -> list[str]:
    return [r.body["messages"][-1]["content"] for r in server.chat_requests]


def exchanges(home: Path) -> list[dict[str, Any]]:
    return list(HistoryStore(home / "history").export())


def subprocess_spawn(args: list[str], stderr: int = subprocess.DEVNULL) -> Any:
    return subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr
    )


@pytest.fixture
def batch(fake_server: FakeOpenRouter, tmp_path: Path) -> Any:
    """Run ``rill batch --base-url <fake> ARGS`` to completion."""

    def call(*args: str, input: bytes | None = None, timeout: float = 30) -> Any:
        return run(["batch", "--base-url", fake_server.url, *args], input=input, timeout=timeout)

    return call


@pytest.fixture
def infile(tmp_path: Path) -> Any:
    def write(data: bytes, name: str = "in.jsonl") -> str:
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)

    return write


# --- end to end ----------------------------------------------------------------------------------


def test_200_items_on_16_jobs_all_complete_and_match(
    batch: Any, fake_server: FakeOpenRouter, rill_env: Path
) -> None:
    done = batch("-j", "16", "-m", "fake/echo", input=items(200))
    assert done.returncode == 0, done.stderr
    results = lines_of(done.stdout)
    assert sorted(r["id"] for r in results) == list(range(1, 201))
    for r in results:
        assert list(r)[0] == "id"
        assert r["message"]["content"] == f"item {r['id']}"
        assert r["finish_reason"] == "stop"
        assert r["generation_id"].startswith("gen-")
        assert "exit_code" not in r
    assert len(fake_server.chat_requests) == 200
    # Every item is one chat in history, so `rill usage` counts all of them.
    assert len({r["chat_id"] for r in results}) == 200
    assert usage_total(HistoryStore(rill_env / "history").usage())["requests"] == 200
    err = done.stderr.decode()
    assert "\r" not in err  # no progress display when stderr is not a terminal
    assert "200 done, 0 failed, 0 skipped" in err


def test_items_history_cannot_record_have_no_chat_and_are_counted(
    batch: Any, rill_env: Path
) -> None:
    rill_env.mkdir(parents=True)
    (rill_env / "history").write_text("a file where the folder should be")
    done = batch("-j", "4", "-m", "fake/echo", input=items(6))
    assert done.returncode == 0, done.stderr
    results = lines_of(done.stdout)
    assert len(results) == 6
    assert [r["chat_id"] for r in results] == [None] * 6  # "no chat" as with --no-history
    err = done.stderr.decode()
    assert err.count("history: cannot write") == 1  # the warning once…
    assert "6 not saved in history" in err  # …and the count at the end


def test_429_with_retry_after_holds_every_worker_and_no_item_fails(
    batch: Any, fake_server: FakeOpenRouter
) -> None:
    fake_server.enqueue(Scenario.error(429, retry_after=2))
    started = time.monotonic()
    done = batch("-j", "4", "-m", "fake/echo", "--no-history", input=items(12))
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started >= 2.0
    assert sorted(r["id"] for r in lines_of(done.stdout)) == list(range(1, 13))
    times = [r.time for r in fake_server.chat_requests]
    assert len(times) == 13  # one retry
    limited = times[0]
    # rill reads the 429 after the server recorded it, so whatever is sent after that waits
    # until at least limited + 2 (both sides use the system's monotonic clock). Requests
    # already in flight may still land after the 429: they get a whole second to do so.
    assert not [t for t in times if limited + 1.0 < t < limited + 2.0]
    assert "rate limited" in done.stderr.decode()


def test_sigkill_then_rerun_sends_only_the_missing_items(
    fake_server: FakeOpenRouter, tmp_path: Path, infile: Any
) -> None:
    fake_server.default_scenario = Scenario(content=["a", "b", "c"], chunk_delay=0.05)
    out = tmp_path / "out.jsonl"
    args = ["batch", infile(items(30)), "-j", "3", "-o", str(out)]
    proc = subprocess_spawn([*RILL, *args, "--base-url", fake_server.url, "--no-history"])
    try:
        wait_until(lambda: out.exists() and out.read_bytes().count(b"\n") >= 6, 20, "6 lines")
    finally:
        proc.kill()
        proc.wait(10)
    first = completed_ids(out)
    assert 6 <= len(first) < 30

    fake_server.reset()
    fake_server.default_scenario = Scenario(content=["ok"])
    done = run([*args, "--base-url", fake_server.url, "--no-history"], timeout=30)
    assert done.returncode == 0, done.stderr
    sent = sorted(prompts(fake_server))
    missing = sorted(f"item {i}" for i in range(1, 31) if json.dumps(i) not in first)
    assert sent == missing
    assert f"{len(first)} skipped" in done.stderr.decode()
    assert len(completed_ids(out)) == 30
    assert sorted(r["id"] for r in lines_of(out.read_bytes())) == list(range(1, 31))


def test_sigterm_cancels_running_items_keeps_whole_lines_and_resumes(
    fake_server: FakeOpenRouter, tmp_path: Path, infile: Any, rill_env: Path
) -> None:
    partial = "piece 0 piece 1 piece 2 "
    gate = Gate(timeout=60)  # opened by the test, never by the timeout
    gate.release(1, 2)  # every gated stream sends pieces 0-2, then waits before piece 3
    fake_server.enqueue(Scenario(content=["fast"], repeat=2))
    fake_server.default_scenario = Scenario(content=[f"piece {i} " for i in range(8)], gate=gate)
    out = tmp_path / "out.jsonl"
    args = ["batch", infile(items(8)), "-j", "4", "-o", str(out), "--base-url", fake_server.url]
    proc = subprocess_spawn([*RILL, *args], stderr=subprocess.PIPE)
    try:
        wait_until(lambda: out.exists() and out.read_bytes().count(b"\n") == 2, 20, "2 lines")
        wait_until(lambda: len(fake_server.chat_requests) == 6, 10, "4 running items")

        def running_with_partial() -> bool:
            rows = exchanges(rill_env)
            return [r["answer"].get("content") for r in rows if r["status"] == "running"] == [
                partial
            ] * 4

        # Each running item has received its three pieces: they are in its journal.
        wait_until(running_with_partial, 10, "4 running items with their pieces journalled")
        proc.send_signal(signal.SIGTERM)
        # The stop must wake the workers blocked on their sockets: left alone, they would wait
        # for the gate, which holds piece 3 back far longer than this.
        code = proc.wait(20)
    finally:
        gate.open()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        assert proc.stderr is not None
        err = proc.stderr.read().decode()
        proc.stderr.close()
    assert code == 143
    assert "stopped by SIGTERM" in err
    text = out.read_bytes()
    assert text.endswith(b"\n") and len(lines_of(text)) == 2  # whole lines only
    cancelled = [e for e in exchanges(rill_env) if e.get("finish_reason") == "cancelled"]
    assert [e["answer"]["content"] for e in cancelled] == [partial] * 4

    fake_server.reset()
    done = run(args, timeout=30)
    assert done.returncode == 0, done.stderr
    assert len(fake_server.chat_requests) == 6
    assert len(completed_ids(out)) == 8
    assert sorted(r["id"] for r in lines_of(out.read_bytes())) == list(range(1, 9))


def test_ordered_writes_input_order_while_default_is_completion_order(
    fake_server: FakeOpenRouter, infile: Any
) -> None:
    # Odd items are slow (the default scenario: held after their first piece until the test
    # opens the gate), even ones are instant echoes. With 4 jobs, items 1, 3, 5 and 7 end up
    # holding every worker once 2, 4 and 6 are done; 8 starts only when the gate opens.
    data = infile(
        jsonl(
            *(
                {"id": i, "prompt": f"item {i}", **({"model": "fake/echo"} if i % 2 == 0 else {})}
                for i in range(1, 9)
            )
        )
    )

    def start(*args: str) -> tuple[Any, Gate]:
        fake_server.reset()
        gate = Gate(timeout=60)  # opened by the test, never by the timeout
        fake_server.default_scenario = Scenario(content=["sl", "ow"], gate=gate)
        proc = spawn(
            ["batch", data, "-j", "4", "--no-history", "--base-url", fake_server.url, *args]
        )
        # Item 7 is sent once 2, 4 and 6 have finished; then every worker waits at the gate.
        wait_until(lambda: len(fake_server.chat_requests) == 7, 20, "7 requests")
        return proc, gate

    proc, gate = start("--ordered")
    gate.open()
    code, out, err = finish(proc, timeout=30)
    assert code == 0, err
    assert [r["id"] for r in lines_of(out)] == list(range(1, 9))  # 2, 4 and 6 waited for 1

    proc, gate = start()
    shown = b""
    while shown.count(b"\n") < 3:  # written while the slow items are still held
        shown += read_until(proc, b"\n", timeout=20)
    gate.open()
    code, rest, err = finish(proc, timeout=30)
    assert code == 0, err
    ids = [r["id"] for r in lines_of(shown + rest)]
    assert sorted(ids[:3]) == [2, 4, 6]  # fast items came out first, as they finished
    assert sorted(ids) == list(range(1, 9))


def test_failed_items_set_the_exit_code_of_the_first_in_input_order(batch: Any) -> None:
    data = jsonl(
        {"id": "a", "prompt": "fine"},
        {"id": "b", "prompt": "no credits", "model": "fake/error-402"},
        {"id": "c", "prompt": "fine too"},
        {"id": "d", "prompt": "bad key", "model": "fake/error-401"},
    )
    done = batch("-j", "4", "-m", "fake/echo", "--no-history", input=data)
    assert done.returncode == 5
    by_id = {r["id"]: r for r in lines_of(done.stdout)}
    assert by_id["a"]["message"]["content"] == "fine"
    assert by_id["c"]["finish_reason"] == "stop"
    assert (by_id["b"]["exit_code"], by_id["b"]["status"]) == (5, 402)
    assert (by_id["d"]["exit_code"], by_id["d"]["status"]) == (4, 401)
    err = done.stderr.decode()
    assert 'item "b"' in err and "2 done, 2 failed" in err


def test_malformed_lines_fail_alone(batch: Any, fake_server: FakeOpenRouter) -> None:
    data = b"\n".join(
        [
            b'{"id": 1, "prompt": "one"}',
            b"not json",
            b'{"id": 3}',
            b"[1, 2]",
            b"",
            b'{"id": 6, "prompt": "six", "options": "nope"}',
            b'{"id": 7, "messages": [{"role": "user", "content": "seven"}]}',
            b'{"id": 8, "prompt": "torn',
        ]
    )
    done = batch("-m", "fake/echo", "--no-history", input=data)
    assert done.returncode == 2
    results = lines_of(done.stdout)
    ok = {r["id"]: r["message"]["content"] for r in results if "exit_code" not in r}
    assert ok == {1: "one", 7: "seven"}
    failed = {r["line"]: r for r in results if "exit_code" in r}
    assert sorted(failed) == [2, 3, 4, 6, 8]
    assert all(r["exit_code"] == 2 and r["code"] == "bad_input" for r in failed.values())
    assert failed[3]["id"] == 3 and failed[2]["id"] is None
    assert "no prompt" in failed[3]["message"]
    assert len(fake_server.chat_requests) == 2


def test_duplicate_ids_are_a_usage_error_before_anything_is_sent(
    batch: Any, fake_server: FakeOpenRouter
) -> None:
    done = batch(
        input=jsonl({"id": 1, "prompt": "a"}, {"id": 2, "prompt": "b"}, {"id": 1, "prompt": "c"})
    )
    assert done.returncode == 2
    assert b"duplicate id 1 (lines 1 and 3)" in done.stderr
    assert done.stdout == b""
    assert fake_server.chat_requests == []


def test_lines_mode_with_prefix(batch: Any, infile: Any) -> None:
    path = infile(b"first line\r\n\nthird line\nfourth\n", "prompts.txt")
    done = batch(path, "--lines", "--prompt-prefix", "Say: ", "-m", "fake/echo", "--ordered")
    assert done.returncode == 0, done.stderr
    got = [(r["id"], r["message"]["content"]) for r in lines_of(done.stdout)]
    assert got == [(1, "Say: first line"), (3, "Say: third line"), (4, "Say: fourth")]


def test_lines_mode_with_template_and_params(
    batch: Any, infile: Any, rill_env: Path, fake_server: FakeOpenRouter
) -> None:
    templates = rill_env / "templates"
    templates.mkdir(parents=True)
    (templates / "tr.toml").write_text(
        'system = "You translate."\nprompt = "To {{lang}}:"\nmodel = "fake/echo"\n'
        "[options]\nseed = 7\n"
    )
    path = infile(b"hello\nworld\n", "words.txt")
    missing = batch(path, "--lines", "-t", "tr")
    assert missing.returncode == 2 and b"lang" in missing.stderr
    assert fake_server.chat_requests == []
    done = batch(path, "--lines", "-t", "tr", "-p", "lang=fr", "--option", "seed=8", "--no-history")
    assert done.returncode == 0, done.stderr
    assert sorted(r["message"]["content"] for r in lines_of(done.stdout)) == [
        "To fr:\n\nhello",
        "To fr:\n\nworld",
    ]
    body = fake_server.chat_requests[0].body
    assert body["messages"][0] == {"role": "system", "content": "You translate."}
    assert body["seed"] == 8 and body["model"] == "fake/echo"


def test_item_fields_reach_the_request(batch: Any, fake_server: FakeOpenRouter) -> None:
    data = jsonl(
        {"id": 1, "prompt": "p", "model": "fake/demo", "system": "S", "options": {"top_p": 0.5}},
        {"id": 2, "messages": [{"role": "user", "content": "m"}]},
    )
    done = batch(
        "-m",
        "fake/echo",
        "-s",
        "default",
        "--temperature",
        "0.2",
        "--no-history",
        "--ordered",
        input=data,
    )
    assert done.returncode == 0, done.stderr
    bodies = {r.body["messages"][-1]["content"]: r.body for r in fake_server.chat_requests}
    assert bodies["p"]["model"] == "fake/demo" and bodies["p"]["top_p"] == 0.5
    assert bodies["p"]["messages"][0] == {"role": "system", "content": "S"}
    assert bodies["m"]["model"] == "fake/echo" and bodies["m"]["temperature"] == 0.2
    assert bodies["m"]["messages"][0] == {"role": "system", "content": "default"}


def test_torn_last_line_is_ignored_then_dropped_and_retried_lines_replaced(
    batch: Any, fake_server: FakeOpenRouter, tmp_path: Path, infile: Any
) -> None:
    out = tmp_path / "out.jsonl"
    done_line = {"id": 1, "message": {"role": "assistant", "content": "x"}, "finish_reason": "stop"}
    failed_line = {"id": 2, "code": 500, "message": "boom", "exit_code": 7}
    out.write_bytes(jsonl(done_line, failed_line) + b'{"id": 3, "message": {"ro')
    done = batch(infile(items(3)), "-o", str(out), "-m", "fake/echo", "--no-history")
    assert done.returncode == 0, done.stderr
    assert sorted(prompts(fake_server)) == ["item 2", "item 3"]
    # Appended after the torn line (which got its newline first, or item 3's line would have
    # been torn with it), then the file is rewritten: one whole line per id, the latest.
    results = lines_of(out.read_bytes())
    assert [r["id"] for r in results] == [1, 2, 3]
    assert results[0] == done_line
    assert [r["message"]["content"] for r in results[1:]] == ["item 2", "item 3"]
    assert completed_ids(out) == {"1", "2", "3"}


def test_no_history_writes_nothing_and_stdin_dash_works(batch: Any, rill_env: Path) -> None:
    done = batch("-", "-m", "fake/echo", "--no-history", input=items(3))
    assert done.returncode == 0, done.stderr
    assert len(lines_of(done.stdout)) == 3
    assert not (rill_env / "history").exists()


# --- the engine's pieces -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (b"{", "not valid JSON"),
        (b'"text"', "not a JSON object"),
        (b'{"prompt": "p"}', "no id"),
        (b'{"id": true, "prompt": "p"}', "id must be"),
        (b'{"id": "", "prompt": "p"}', "id must be"),
        (b'{"id": 1.5, "prompt": "p"}', "id must be"),
        (b'{"id": 1, "prompt": "p", "messages": []}', "not both"),
        (b'{"id": 1, "prompt": "  "}', "non-empty string"),
        (b'{"id": 1, "messages": [{"content": "no role"}]}', "with a role"),
        (b'{"id": 1, "prompt": "p", "model": 3}', "model must be a string"),
        (b'{"id": 1, "prompt": "p", "options": []}', "options must be an object"),
        (b'\xff{"id": 1}', "not valid JSON"),
    ],
)
def test_parse_item_problems(raw: bytes, problem: str) -> None:
    item = parse_item(4, raw)
    assert item.problem is not None and item.problem.startswith("line 4: ")
    assert problem in item.problem


def test_parse_item_and_lines() -> None:
    item = parse_item(1, b'{"id": "x", "prompt": "p", "model": "m", "extra": 1}\r')
    assert (item.id, item.prompt, item.model, item.problem) == ("x", "p", "m", None)
    assert [(i.id, i.prompt) for i in parse_lines(b"a\n\n  \nb\r\n")] == [(1, "a"), (4, "b")]
    assert parse_lines(b"ok\n\xff\n")[1].problem == "line 2: not valid UTF-8"


def test_ids_compare_by_json_spelling() -> None:
    check_unique(
        [parse_item(1, b'{"id": 1, "prompt": "a"}'), parse_item(2, b'{"id": "1", "prompt": "b"}')]
    )
    with pytest.raises(UsageError, match='duplicate id "a"'):
        check_unique([Item(1, "a", prompt="x"), Item(5, None), Item(7, "a", prompt="y")])


def test_completed_ids_counts_only_done_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(
        jsonl(
            {"id": 1, "finish_reason": "stop"},
            {"id": "1", "finish_reason": "length"},
            {"id": 2, "code": 429, "exit_code": 6, "partial": {}},
            {"id": 3, "finish_reason": "cancelled"},
            {"finish_reason": "stop"},
            [1],
        )
        + b'{"id": 4, "finish'
    )
    assert completed_ids(path) == {"1", '"1"'}
    assert completed_ids(tmp_path / "missing.jsonl") == set()


def test_encode_line_puts_the_item_id_first_and_keeps_the_generation_id() -> None:
    done = Done({"role": "assistant", "content": "hi"}, None, "stop", "m", "p", "gen-1", "c1")
    obj = json.loads(encode_line("a", done))
    assert list(obj)[:2] == ["id", "message"]
    assert (obj["id"], obj["generation_id"], obj["chat_id"]) == ("a", "gen-1", "c1")
    error = Error(429, "slow down", 429, 6, {"role": "assistant", "content": ""})
    assert json.loads(encode_line(7, error, line=3)) == {"id": 7, **error.as_dict(), "line": 3}


def test_encode_line_escapes_a_lone_surrogate_instead_of_failing() -> None:
    done = Done({"role": "assistant", "content": "a\ud800b"}, None, "stop", None, None, None, None)
    line = encode_line(1, done)
    assert line.endswith(b"\n") and b"\\ud800" in line
    assert json.loads(line)["message"]["content"] == "a\ud800b"


def test_output_orders_results_and_drains_past_gaps() -> None:
    written: list[bytes] = []
    out = Output(written.append, ordered=True)
    out.put(2, b"c\n")
    out.put(1, None)  # an item that writes nothing (cancelled) still frees its turn
    assert written == []
    out.put(0, b"a\n")
    assert written == [b"a\n", b"c\n"]
    out.put(4, b"e\n")
    out.drain()
    assert written == [b"a\n", b"c\n", b"e\n"]
    plain: list[bytes] = []
    Output(plain.append, ordered=False).put(9, b"z\n")
    assert plain == [b"z\n"]


def test_build_request_precedence() -> None:
    d = Defaults(
        model="m",
        system="sys",
        options={"provider": {"order": ["a"]}, "seed": 1},
        prefix="> ",
        aliases={"short": "vendor/long"},
    )
    request, messages = build_request(
        Item(1, 1, prompt="hi", model="short", options={"provider": {"sort": "price"}}), d
    )
    assert request.model == "vendor/long" and request.stream
    assert messages == [{"role": "system", "content": "sys"}, {"role": "user", "content": "> hi"}]
    assert request.extra == {"provider": {"order": ["a"], "sort": "price"}, "seed": 1}
    given = [{"role": "system", "content": "own"}, {"role": "user", "content": "q"}]
    request, _ = build_request(Item(2, 2, messages=given), d)
    assert request.messages == given and request.model == "m"
    request, _ = build_request(Item(3, 3, messages=given, system="item"), d)
    assert request.messages[0] == {"role": "system", "content": "item"}
    assert len(request.messages) == 2


def test_gate_holds_until_its_deadline_and_a_cancel_wakes_it() -> None:
    now = [100.0]
    gate = BackoffGate(clock=lambda: now[0])
    assert gate.push(2.0) is True
    assert gate.push(1.0) is False  # an earlier deadline never shortens the wait
    assert gate.remaining() == 2.0
    now[0] = 102.5
    assert gate.remaining() == 0.0
    control = Control(Limits())
    gate.wait(control)
    gate.push(60)
    threading.Timer(0.05, control.cancel, [Cancelled("SIGINT", ExitCode.INTERRUPTED)]).start()
    with pytest.raises(Cancelled, match="cancelled by SIGINT"):
        gate.wait(control)


def test_gate_wait_ends_at_the_items_time_limit() -> None:
    gate = BackoffGate()
    gate.push(60)
    control = Control(Limits(total=0.05))
    with pytest.raises(TimeoutError_, match="total time limit"):
        gate.wait(control)


def test_gated_policy_pushes_the_shared_gate_on_429() -> None:
    answers = [
        httpx.Response(429, headers={"Retry-After": "0.05"}, json={"error": {"message": "slow"}}),
        httpx.Response(200, content=b'data: {"choices":[]}\n\ndata: [DONE]\n\n'),
    ]
    settings = Settings(base_url="http://127.0.0.1:9/v1", model="m", api_key=None, retries=2)
    gate = BackoffGate()
    waits: list[float] = []
    http = httpx.Client(transport=httpx.MockTransport(lambda _request: answers.pop(0)))
    policy = GatedPolicy(settings.retries, gate, lambda d, _w: waits.append(d))
    client = ChatClient(settings, http, policy=policy, direct_body=False)
    request = Request(messages=[{"role": "user", "content": "x"}], model="m")
    with client.open(request, Control(Limits())) as response:
        assert response.status_code == 200
    assert waits == [0.05]


def test_reporter_progress_line_only_when_asked() -> None:
    err = io.StringIO()
    tally = Tally(total=4, done=1, failed=1, running=2, tokens=1234, cost=0.5)
    Reporter(err, tally, progress=False).tick()
    assert err.getvalue() == ""
    reporter = Reporter(err, tally, progress=True)
    reporter.tick()
    assert err.getvalue().startswith("\r\x1b[K")
    assert "1/4 done · 1 failed · 2 running · 1,234 tokens · $0.5000" in err.getvalue()
    reporter.say("note")
    assert err.getvalue().endswith("\r\x1b[Krill: note\n")


def test_no_input_on_a_terminal_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from rill.batch import read_input

    class Tty(io.BytesIO):
        def isatty(self) -> bool:
            return True

    with pytest.raises(UsageError, match="no input"):
        read_input(None, Tty())
    assert read_input("-", Tty(b"x")) == b"x"
    with pytest.raises(UsageError, match="cannot read"):
        read_input(os.devnull + "/nope", None)


def test_an_item_may_not_override_reserved_request_fields(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    items = tmp_path / "items.jsonl"
    items.write_text(
        json.dumps({"id": "bad", "prompt": "x", "options": {"stream": False}})
        + "\n"
        + json.dumps({"id": "good", "prompt": "y"})
        + "\n"
    )
    result = run(["batch", str(items), "--base-url", fake_server.url, "-m", "fake/echo"])
    lines = {line["id"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert result.returncode == 2
    assert lines["bad"]["exit_code"] == 2 and "stream" in lines["bad"]["message"]
    assert lines["good"]["message"]["content"] == "y"
    assert [r.body["messages"][-1]["content"] for r in fake_server.chat_requests] == ["y"]
