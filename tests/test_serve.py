"""``rill serve`` run as a subprocess against the fake server: the OpenAI gateway (through the
official ``openai`` SDK), rill's chat event stream, history and usage, cancellation, safety."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from rill.fake import DEMO_CONTENT, FakeOpenRouter, Gate, Scenario
from tests.e2e import finish, run, spawn
from tests.serving import Served, start_serve

DEMO = "".join(DEMO_CONTENT)
PIECES = ["one ", "two ", "three ", "four "]


@pytest.fixture
def served(fake_server: FakeOpenRouter) -> Iterator[Served]:
    server = start_serve(fake_server)
    yield server
    server.stop()


class Seen:
    """Every response a test got, to check that the API key is in none of them."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, response: httpx.Response) -> httpx.Response:
        self.texts.append(str(response.headers) + response.text)
        return response

    def assert_no_key(self, key: str) -> None:
        assert self.texts
        for text in self.texts:
            assert key not in text


def _cli_json(*args: str) -> Any:
    result = run([*args, "--json"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _normalise(sse: bytes) -> bytes:
    """An event stream without what differs between two runs: ids, chat ids, times."""
    text = sse.decode()
    text = re.sub(r'"(chat_id|id)":"[^"]*"', r'"\1":"X"', text)
    return text.encode()


# -- the extra ----------------------------------------------------------------------------------


def test_without_the_serve_extra_it_says_how_to_install_it() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "sys.argv = ['rill', 'serve']\n"
        "from rill.__main__ import main; main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3, done.stderr
    assert done.stderr == "rill: rill serve needs its server stack: pip install 'rill-cli[serve]'\n"


# -- the OpenAI-compatible gateway ---------------------------------------------------------------


def test_the_openai_sdk_without_streaming(served: Served, fake_server: FakeOpenRouter) -> None:
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="test/model", messages=[{"role": "user", "content": "hi"}], temperature=0.5
    )
    assert reply.choices[0].message.content == DEMO
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    sent = fake_server.chat_requests[-1]
    assert sent.body["temperature"] == 0.5 and sent.body["model"] == "test/model"
    assert sent.headers["authorization"] == f"Bearer {fake_server.api_key}"  # rill's key, not the
    # client's: the client never needs (nor sees) it
    chats = _cli_json("history", "list")
    assert chats[0]["turns"] == 1 and chats[0]["finish_reason"] == "stop"
    usage = _cli_json("usage")
    assert usage["total"]["requests"] == 1
    assert usage["total"]["completion_tokens"] == reply.usage.completion_tokens


def test_the_openai_sdk_streaming(served: Served, fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=PIECES))
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="test/model",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = []
    usage = None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert pieces == PIECES  # each upstream piece forwarded as its own chunk, in order
    assert usage is not None and usage.completion_tokens > 0
    exchange = _cli_json("history", "show", "last")["exchanges"][-1]
    assert exchange["answer"]["content"] == "".join(PIECES)
    assert exchange["messages"] == [{"role": "user", "content": "count"}]
    assert _cli_json("usage")["total"]["requests"] == 1


def test_models_are_relayed(served: Served, fake_server: FakeOpenRouter) -> None:
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    ids = [m.id for m in client.models.list()]
    assert ids == [m["id"] for m in fake_server.models]


def test_an_upstream_error_keeps_its_status(served: Served, fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario.error(402, message="Insufficient credits"))
    client = openai.OpenAI(base_url=served.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="test/model", messages=[{"role": "user", "content": "hi"}]
        )
    assert caught.value.status_code == 402
    body = caught.value.body
    assert isinstance(body, dict) and "Insufficient credits" in body["message"]
    raw = httpx.post(
        served.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}], "stream": True},
        timeout=10,
    )
    assert raw.status_code == 200  # the default scenario again
    fake_server.enqueue(Scenario.error(429, retry_after=0, repeat=20))  # past the retries
    raw = httpx.post(
        served.url + "/v1/chat/completions",
        json={"messages": [{"role": "user", "content": "x"}], "stream": True},
        timeout=10,
    )
    assert raw.status_code == 429
    error = raw.json()["error"]
    assert set(error) >= {"message", "type", "code"}


def test_a_bad_body_is_a_400(served: Served) -> None:
    for body in (b"{not json", b"[1]", b'{"messages": []}', b'{"messages": [1]}'):
        reply = httpx.post(served.url + "/v1/chat/completions", content=body, timeout=10)
        assert reply.status_code == 400, body
        assert reply.json()["error"]["type"] == "invalid_request_error"


# -- the chat endpoints --------------------------------------------------------------------------


def test_the_chat_stream_is_exactly_the_sse_format(
    served: Served, fake_server: FakeOpenRouter
) -> None:
    fake_server.enqueue(Scenario(content=PIECES))
    cli = run(["--base-url", fake_server.url, "-m", "test/model", "-f", "sse", "hi"])
    assert cli.returncode == 0, cli.stderr
    fake_server.enqueue(Scenario(content=PIECES))
    reply = httpx.post(served.url + "/api/chats/new/messages/stream", json={"content": "hi"})
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/event-stream")
    assert reply.content.startswith(b"event: start\n")
    assert _normalise(reply.content) == _normalise(cli.stdout)


def test_a_body_ended_by_its_connection_streams_the_same(
    served: Served, fake_server: FakeOpenRouter
) -> None:
    """Not chunked: httpx reads that body, so the stream is pulled in a worker thread."""
    fake_server.enqueue(Scenario(content=PIECES, framing="close"))
    cli = run(["--base-url", fake_server.url, "-m", "test/model", "-f", "sse", "hi"])
    assert cli.returncode == 0, cli.stderr
    fake_server.enqueue(Scenario(content=PIECES, framing="close", chunk_delay=0.02))
    reply = httpx.post(served.url + "/api/chats/new/messages/stream", json={"content": "hi"})
    assert reply.status_code == 200
    assert _normalise(reply.content) == _normalise(cli.stdout)
    assert b'"content":"four "' in reply.content


def _ask_raw(served: Served, content: str, window: int | None = None) -> socket.socket:
    """A chat stream asked for over a plain socket, whose response the test reads itself;
    ``window``: a receive buffer that small, set before connecting."""
    host, port = served.url.removeprefix("http://").split(":")
    sock = socket.socket()
    if window is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, window)
    sock.settimeout(10)
    sock.connect((host, int(port)))
    body = json.dumps({"content": content}).encode()
    sock.sendall(
        b"POST /api/chats/new/messages/stream HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\nContent-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    return sock


def _leave_and_read_the_partial(sock: socket.socket, fake: FakeOpenRouter) -> str:
    """Close a streaming client's socket: the upstream connection must close within a second
    and the answer so far be kept, cancelled; that answer."""
    left = time.monotonic()
    sock.close()
    closed = fake.wait_disconnect(5)
    assert closed is not None and closed - left < 1.0
    exchange = _cli_json("history", "show", "last")["exchanges"][-1]
    assert exchange["finish_reason"] == "cancelled"
    answer: str = exchange["answer"]["content"]
    return answer


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_client_that_stops_reading_holds_its_stream_back_without_spinning(
    served: Served, fake_server: FakeOpenRouter
) -> None:
    """While a client reads nothing, its upstream socket stays readable: the server must stop
    pulling (the answer waits upstream, not in its memory) without going round its loop
    meanwhile, and the client going away still ends the stream at once."""
    pieces = ["x" * 2000 + f" {n} " for n in range(4000)]  # 8 MB: more than the buffers hold
    fake_server.enqueue(Scenario(content=pieces))
    sock = _ask_raw(served, "a lot", window=4096)
    got = sock.recv(4096)
    assert got.startswith(b"HTTP/1.1 200")
    # The buffers fill and the server has to wait for this client: its count stops moving.
    counts: list[int] = []
    deadline = time.monotonic() + 15
    while len(counts) < 3 or counts[-1] != counts[-3] or counts[-1] == 0:
        assert time.monotonic() < deadline, f"the stream never held still: {counts[-5:]}"
        active = httpx.get(served.url + "/api/requests", timeout=10).json()
        counts.append(active[0]["tokens"] if active else -1)
        time.sleep(0.2)
    before = _cpu_seconds(served.proc.pid)
    time.sleep(2.0)
    spent = _cpu_seconds(served.proc.pid) - before
    assert spent < 0.5, f"the server used {spent:.2f} s of CPU while its client read nothing"
    active = httpx.get(served.url + "/api/requests", timeout=10).json()
    assert len(active) == 1 and 0 < active[0]["tokens"] < len(pieces)  # held back, not done
    answer = _leave_and_read_the_partial(sock, fake_server)
    assert 0 < len(answer) < sum(map(len, pieces))


@pytest.mark.parametrize(
    ("flag", "scenario", "expected"),
    [
        ("--timeout", Scenario(content=PIECES, stall_after=2, stall_seconds=5), "idle"),
        ("--total-timeout", Scenario(content=PIECES * 40, chunk_delay=0.05), "total"),
    ],
    ids=["idle", "total"],
)
def test_the_time_limits_hold_while_the_loop_reads_the_stream(
    fake_server: FakeOpenRouter, flag: str, scenario: Scenario, expected: str
) -> None:
    """Nobody blocks in a read on the loop: the limits are kept by its waits, and the answer so
    far is kept."""
    server = start_serve(fake_server, flag, "0.6")
    try:
        fake_server.enqueue(scenario)
        started = time.monotonic()
        reply = httpx.post(
            server.url + "/api/chats/new/messages/stream", json={"content": "hi"}, timeout=10
        )
        took = time.monotonic() - started
        assert reply.status_code == 200
        assert b"event: error" in reply.content and b'"code":"timeout"' in reply.content
        assert expected.encode() in reply.content
        assert 0.6 <= took < 3
        exchange = _cli_json("history", "show", "last")["exchanges"][-1]
        assert exchange["answer"]["content"].startswith("one two ")
    finally:
        server.stop()


def test_a_chat_goes_on(served: Served, fake_server: FakeOpenRouter) -> None:
    first = httpx.post(
        served.url + "/api/chats/new/messages/stream",
        json={"content": "hello", "system": "be brief"},
        timeout=10,
    )
    chat_id = json.loads(first.text.split("data: ", 1)[1].split("\n", 1)[0])["chat_id"]
    assert chat_id
    httpx.post(
        served.url + f"/api/chats/{chat_id}/messages/stream",
        json={"content": "and again", "model": "other/model"},
        timeout=10,
    )
    sent = fake_server.chat_requests[-1].body
    assert sent["model"] == "other/model"
    assert [m["role"] for m in sent["messages"]] == ["system", "user", "assistant", "user"]
    assert sent["messages"][-1]["content"] == "and again"
    listed = httpx.get(served.url + "/api/chats", timeout=10).json()
    assert listed == _cli_json("history", "list")
    shown = httpx.get(served.url + f"/api/chats/{chat_id}", timeout=10).json()
    assert shown == _cli_json("history", "show", chat_id)
    assert len(shown["exchanges"]) == 2
    assert httpx.get(served.url + "/api/usage", timeout=10).json() == _cli_json("usage")
    missing = httpx.get(served.url + "/api/chats/nosuchchat", timeout=10)
    assert missing.status_code == 404


def test_a_message_needs_content(served: Served) -> None:
    reply = httpx.post(served.url + "/api/chats/new/messages/stream", json={"model": "x"})
    assert reply.status_code == 400


# -- cancellation --------------------------------------------------------------------------------


def _stream_mid_answer(
    served: Served, fake: FakeOpenRouter, framing: str = "chunked"
) -> tuple[socket.socket, Gate]:
    """A chat stream whose answer has shown "one two " while the upstream holds the rest back
    (silent: no byte flows until the gate opens)."""
    gate = Gate(timeout=15)
    fake.enqueue(Scenario(content=PIECES, gate=gate, framing=framing))  # type: ignore[arg-type]
    sock = _ask_raw(served, "count")
    got = b""
    deadline = time.monotonic() + 10
    gate.release(0, 1)
    while b'"two "' not in got:
        assert time.monotonic() < deadline, got
        got += sock.recv(65536)
    assert gate.wait_for_server(2, 10)
    return sock, gate


def _read_all(sock: socket.socket) -> bytes:
    got = b""
    while True:
        piece = sock.recv(65536)
        if not piece:
            return got
        got += piece
        if got.endswith(b"0\r\n\r\n"):
            return got


@pytest.mark.parametrize("framing", ["chunked", "close"])
def test_delete_cancels_within_a_second(
    served: Served, fake_server: FakeOpenRouter, framing: str
) -> None:
    sock, _gate = _stream_mid_answer(served, fake_server, framing)
    with sock:
        active = httpx.get(served.url + "/api/requests", timeout=10).json()
        assert len(active) == 1
        entry = active[0]
        assert entry["tokens"] == 2 and entry["model"] == "test/model" and entry["chat"]
        assert entry["start"].endswith("Z")
        asked = time.monotonic()
        reply = httpx.delete(served.url + f"/api/requests/{entry['id']}", timeout=10)
        assert reply.status_code == 200
        closed = fake_server.wait_disconnect(5)
        assert closed is not None and closed - asked < 1.0
        rest = _read_all(sock)
    assert b"event: done" in rest and b'"finish_reason":"cancelled"' in rest
    assert httpx.get(served.url + "/api/requests", timeout=10).json() == []
    again = httpx.delete(served.url + f"/api/requests/{entry['id']}", timeout=10)
    assert again.status_code == 404
    exchange = _cli_json("history", "show", entry["chat"])["exchanges"][-1]
    assert exchange["finish_reason"] == "cancelled"
    assert exchange["answer"]["content"] == "one two "


def test_a_client_going_away_cancels_its_request(
    served: Served, fake_server: FakeOpenRouter
) -> None:
    sock, _gate = _stream_mid_answer(served, fake_server)
    assert _leave_and_read_the_partial(sock, fake_server) == "one two "


def test_sigint_cancels_active_streams_and_keeps_them(fake_server: FakeOpenRouter) -> None:
    server = start_serve(fake_server)
    sock, _gate = _stream_mid_answer(server, fake_server)
    with sock:
        code, _out, err = server.stop(signal.SIGINT)
    assert code == 130, err
    assert b"Traceback" not in err
    exchange = _cli_json("history", "show", "last")["exchanges"][-1]
    assert exchange["finish_reason"] == "cancelled"
    assert exchange["answer"]["content"] == "one two "


def test_sigterm_exits_143(fake_server: FakeOpenRouter) -> None:
    server = start_serve(fake_server)
    code, _out, err = server.stop(signal.SIGTERM)
    assert code == 143, err


# -- safety --------------------------------------------------------------------------------------


def test_an_open_address_needs_a_token(fake_server: FakeOpenRouter) -> None:
    done = run(["serve", "--host", "0.0.0.0", "--port", "0", "--base-url", fake_server.url])
    assert done.returncode == 2
    assert done.stderr.decode().startswith("rill: --host 0.0.0.0 is not a loopback address")


def test_with_a_token_every_request_needs_it(fake_server: FakeOpenRouter) -> None:
    server = start_serve(fake_server, "--host", "0.0.0.0", "--token", "s3cret")
    try:
        url = server.url.replace("0.0.0.0", "127.0.0.1")
        for method, path in [("GET", "/"), ("GET", "/api/chats"), ("POST", "/v1/chat/completions")]:
            reply = httpx.request(method, url + path, timeout=10)
            assert reply.status_code == 401, path
            wrong = httpx.request(
                method, url + path, headers={"Authorization": "Bearer nope"}, timeout=10
            )
            assert wrong.status_code == 401, path
        good = httpx.get(url + "/api/chats", headers={"Authorization": "Bearer s3cret"})
        assert good.status_code == 200
        client = openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0)
        reply = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "hi"}]
        )
        assert reply.choices[0].message.content == DEMO
    finally:
        server.stop()


def test_the_token_may_come_from_the_environment(fake_server: FakeOpenRouter) -> None:
    import os

    env = {**os.environ, "RILL_SERVE_TOKEN": "from-env"}
    proc = spawn(
        ["serve", "--host", "0.0.0.0", "--port", "0", "--base-url", fake_server.url], env=env
    )
    server = Served(proc, "")
    from tests.e2e import read_until

    server.url = (
        read_until(proc, b"\n").decode().strip().rstrip("/").replace("0.0.0.0", "127.0.0.1")
    )
    try:
        assert httpx.get(server.url + "/api/chats").status_code == 401
        ok = httpx.get(server.url + "/api/chats", headers={"Authorization": "Bearer from-env"})
        assert ok.status_code == 200
    finally:
        server.stop()


def test_a_body_over_20_mb_is_refused(served: Served, fake_server: FakeOpenRouter) -> None:
    big = b'{"content": "' + b"x" * (20 * 1024 * 1024) + b'"}'
    for path in ("/api/chats/new/messages/stream", "/v1/chat/completions"):
        reply = httpx.post(served.url + path, content=big, timeout=30)
        assert reply.status_code == 413, path

    def chunked() -> Iterator[bytes]:  # no Content-Length: counted while read
        yield b'{"content": "'
        for _ in range(21):
            yield b"x" * (1024 * 1024)
        yield b'"}'

    reply = httpx.post(served.url + "/v1/chat/completions", content=chunked(), timeout=30)
    assert reply.status_code == 413
    assert fake_server.chat_requests == []  # nothing was sent upstream


def test_no_cors_headers_unless_asked(served: Served, fake_server: FakeOpenRouter) -> None:
    origin = {"Origin": "http://evil.example"}
    for reply in (
        httpx.get(served.url + "/api/chats", headers=origin),
        httpx.options(
            served.url + "/api/chats",
            headers={**origin, "Access-Control-Request-Method": "GET"},
        ),
    ):
        assert not [h for h in reply.headers if h.lower().startswith("access-control-")]
    server = start_serve(fake_server, "--cors", "http://app.example")
    try:
        reply = httpx.get(server.url + "/api/chats", headers={"Origin": "http://app.example"})
        assert reply.headers["access-control-allow-origin"] == "http://app.example"
        reply = httpx.get(server.url + "/api/chats", headers=origin)
        assert "access-control-allow-origin" not in reply.headers
    finally:
        server.stop()


@pytest.mark.parametrize("place", ["message", "code", "metadata", "midstream", "models"])
def test_the_key_never_reaches_a_client(
    served: Served, fake_server: FakeOpenRouter, place: str
) -> None:
    fake_server.default_scenario = f"hostile-key-{place}"
    seen = Seen()
    url = served.url
    seen.add(httpx.get(url + "/v1/models", timeout=10))
    for stream in (True, False):
        body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
        seen.add(httpx.post(url + "/v1/chat/completions", json=body, timeout=10))
    seen.add(httpx.post(url + "/api/chats/new/messages/stream", json={"content": "hi"}))
    for path in ("/", "/api/chats", "/api/usage", "/api/requests"):
        seen.add(httpx.get(url + path, timeout=10))
    chats = httpx.get(url + "/api/chats", timeout=10).json()
    for chat in chats:
        seen.add(httpx.get(url + f"/api/chats/{chat['id']}", timeout=10))
    seen.assert_no_key(fake_server.api_key)
    assert fake_server.requests  # the upstream was really asked


def test_the_page_is_served_without_anything_from_elsewhere(served: Served) -> None:
    reply = httpx.get(served.url + "/", timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"].startswith("text/html")
    policy = reply.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert not re.search(r"(src|href)=\"(https?:)?//", reply.text)
    assert "innerHTML" not in reply.text and "insertAdjacentHTML" not in reply.text


def test_a_busy_port_is_a_usage_error(fake_server: FakeOpenRouter) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = spawn(["serve", "--port", str(port), "--base-url", fake_server.url])
        code, _out, err = finish(proc, timeout=20)
    assert code == 2
    assert err.decode().startswith(f"rill: cannot listen on 127.0.0.1:{port}")
