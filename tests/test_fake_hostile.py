"""Self-tests of the fake OpenRouter server: the hostile modes built to break careless clients."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from rill.fake import DEMO_CONTENT, FakeOpenRouter, Scenario, canned_scenario
from tests.fakeclient import RawStream, chat, data_of, deltas, events, request, stream


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def test_endless_line_is_sent_in_pieces_without_a_newline(fake_server: FakeOpenRouter) -> None:
    assert canned_scenario("fake/hostile-endless-line") == Scenario(
        endless_line_bytes=80 * 1024 * 1024
    )
    size = 1024 * 1024 + 5
    r = RawStream(fake_server, chat("fake/hostile-endless-line-" + str(size)))
    chunks = r.chunks()
    raw = b"".join(chunks)
    assert r.status == 200 and r.complete
    head, _, line = raw.rpartition(b"\n\n")
    assert data_of(head + b"\n\n")[0]["choices"][0]["delta"]["role"] == "assistant"
    assert line == b"data: " + b"a" * size
    assert max(len(c) for c in chunks) <= 64 * 1024 and len(chunks) >= size // (64 * 1024)


def test_endless_line_stops_when_the_client_leaves(fake_server: FakeOpenRouter) -> None:
    r = RawStream(fake_server, chat("fake/hostile-endless-line"))  # 80 MiB
    assert len(r.read_until(b"a" * 300_000)) < 80 * 1024 * 1024
    r.close()
    assert fake_server.wait_disconnect(10) is not None
    assert fake_server.wait_idle(10)


def deep_event(raw: bytes, key: bytes, depth: int) -> dict[str, Any]:
    """The one data event holding ``key`` nested ``depth`` deep, that value replaced by 0."""
    found = [e for e in events(raw) if nested(depth) in e]
    assert len(found) == 1
    event = found[0]
    assert event.count(b"[" * depth) == 1 and b"[" * (depth + 1) not in event
    assert b'"' + key + b'":' + nested(depth) in event
    obj = json.loads(event.removeprefix(b"data: ").replace(nested(depth), b"0"))
    assert isinstance(obj, dict)
    return obj


@pytest.mark.parametrize(
    ("where", "key"), [("content", "content"), ("reasoning", "reasoning_details")]
)
def test_deep_json_in_a_chunk(fake_server: FakeOpenRouter, where: str, key: str) -> None:
    r, raw = stream(fake_server, chat(f"fake/hostile-deep-{where}"))
    obj = deep_event(raw, key.encode(), 100_000)
    assert obj["choices"][0]["delta"][key] == 0 and obj["model"] == "fake/hostile-deep-" + where
    r, raw = stream(fake_server, chat(f"fake/hostile-deep-{where}-3000"))
    deep_event(raw, key.encode(), 3000)
    texts = [d.get("content") for d in deltas([o for o in data_of_lenient(raw)])]
    assert "".join(t for t in texts if isinstance(t, str)) == "Before the deep chunk. After it."
    assert raw.endswith(b"data: [DONE]\n\n")


def data_of_lenient(raw: bytes) -> list[Any]:
    """``data_of`` without the events too deep for ``json``."""
    return [json.loads(e[6:]) for e in events(raw) if e.startswith(b"data: {") and b"[[[[" not in e]


def test_deep_json_in_an_error_body(fake_server: FakeOpenRouter) -> None:
    for stream_ in (True, False):
        status, headers, body = request(
            fake_server, "/chat/completions", chat("fake/hostile-deep-error-50000", stream=stream_)
        )
        assert status == 502 and headers["Content-Type"] == "application/json"
        assert body.count(b"[") == 50_000 and nested(50_000) in body
        error = json.loads(body.replace(nested(50_000), b"0"))["error"]
        assert error["code"] == 502 and error["metadata"]["raw"] == 0
    status, _, body = request(fake_server, "/chat/completions", chat("fake/hostile-deep-error"))
    assert status == 502 and nested(100_000) in body


@pytest.mark.parametrize("field", ["finish_reason", "model", "provider", "id"])
@pytest.mark.parametrize("kind", ["object", "number"])
def test_fields_of_the_wrong_type(fake_server: FakeOpenRouter, field: str, kind: str) -> None:
    value = {"object": {"unexpected": ["object"]}, "number": 42}[kind]
    r, raw = stream(fake_server, chat(f"fake/hostile-type-{field}-{kind}"))
    objs = [o for o in data_of(raw) if isinstance(o, dict)]
    assert len(objs) >= 3
    if field == "finish_reason":
        reasons = [o["choices"][0]["finish_reason"] for o in objs if o["choices"]]
        assert reasons[-1] == value and set(map(str, reasons[:-1])) == {"None"}
    else:
        assert all(o[field] == value for o in objs)
    assert "".join(d.get("content") or "" for d in deltas(objs)) == "".join(DEMO_CONTENT)
    status, _, body = request(
        fake_server, "/chat/completions", chat(f"fake/hostile-type-{field}", stream=False)
    )
    whole = json.loads(body)
    got = whole["choices"][0]["finish_reason"] if field == "finish_reason" else whole[field]
    assert status == 200 and got == {"unexpected": ["object"]}


KEY = "sk-or-v1-" + "0123456789abcdef" * 4


@pytest.fixture
def keyed(fake_server: FakeOpenRouter) -> FakeOpenRouter:
    fake_server.api_key = KEY  # a key as long as a real one (reset() restores the default)
    return fake_server


def test_an_error_code_echoing_the_key(keyed: FakeOpenRouter) -> None:
    status, headers, body = request(keyed, "/chat/completions", chat("fake/hostile-key-code"))
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == KEY


def test_error_metadata_echoing_the_key(keyed: FakeOpenRouter) -> None:
    status, _, body = request(keyed, "/chat/completions", chat("fake/hostile-key-metadata"))
    metadata = json.loads(body)["error"]["metadata"]
    assert status == 400 and metadata["headers"]["Authorization"] == f"Bearer {KEY}"
    assert KEY in json.loads(metadata["raw"])["error"]["message"]


def test_a_long_message_echoing_the_key_at_490(keyed: FakeOpenRouter) -> None:
    status, _, body = request(keyed, "/chat/completions", chat("fake/hostile-key-message"))
    message = json.loads(body)["error"]["message"]
    assert status == 400 and len(message) == 600 and message.index(KEY) == 490
    assert message.count(KEY) == 1


def test_broken_json_echoing_the_key(keyed: FakeOpenRouter) -> None:
    status, headers, body = request(keyed, "/chat/completions", chat("fake/hostile-key-malformed"))
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert f"Bearer {KEY}".encode() in body
    with pytest.raises(ValueError):
        json.loads(body)


def test_a_midstream_error_echoing_the_key(keyed: FakeOpenRouter) -> None:
    r, raw = stream(keyed, chat("fake/hostile-key-midstream"), headers={})
    objs = data_of(raw)
    assert [d["content"] for d in deltas(objs[1:3])] == ["One, ", "two, "]
    error = objs[-1]["error"]
    assert KEY in error["message"] and error["metadata"]["key"] == KEY


def test_the_echo_without_a_key(fake_server: FakeOpenRouter) -> None:
    fake_server.require_auth = False
    status, _, body = request(
        fake_server, "/chat/completions", chat("fake/hostile-key-code"), key=None
    )
    assert status == 400 and json.loads(body)["error"]["code"] == "(no key sent)"


def test_the_model_list_echoing_the_key(keyed: FakeOpenRouter) -> None:
    keyed.default_scenario = "hostile-key-models"
    status, _, body = request(keyed, "/models")
    models = json.loads(body)["data"]
    echo = models[-1]
    assert status == 200 and len(models) == 6
    assert echo["id"] == f"fake/echo-{KEY}" and KEY in echo["name"]
    assert echo["description"].index(KEY) == 490 and echo["metadata"] == {KEY: KEY}
    status, _, body = request(keyed, "/chat/completions", chat(stream=False))
    assert status == 200 and KEY not in body.decode()  # a chat is answered as usual


@pytest.mark.parametrize("place", ["code", "metadata", "message", "malformed"])
def test_the_model_list_answers_the_keyed_errors(keyed: FakeOpenRouter, place: str) -> None:
    keyed.default_scenario = f"hostile-key-{place}"
    status, headers, body = request(keyed, "/models")
    assert status == 400 and headers["Content-Type"] == "application/json"
    assert KEY in body.decode()
    keyed.default_scenario = "hostile-key-midstream"  # no error before a stream: a plain list
    status, _, body = request(keyed, "/models")
    assert status == 200 and KEY not in body.decode()


@pytest.mark.parametrize(
    ("name", "literals"),
    [
        ("nan", [b'"cost":NaN', b'"prompt_tokens":NaN', b'"completion_tokens":NaN']),
        (
            "infinity",
            [b'"cost":Infinity', b'"total_tokens":Infinity', b'"completion_tokens":-Infinity'],
        ),
    ],
)
def test_usage_numbers_as_nan_and_infinity(
    fake_server: FakeOpenRouter, name: str, literals: list[bytes]
) -> None:
    r, raw = stream(fake_server, chat(f"fake/hostile-{name}"))
    usage_event = [e for e in events(raw) if b'"usage"' in e]
    assert len(usage_event) == 1 and all(lit in usage_event[0] for lit in literals)
    usage = data_of(raw)[-2]["usage"]
    cost = usage["cost"]
    assert math.isnan(cost) if name == "nan" else cost == math.inf
    _, _, body = request(
        fake_server, "/chat/completions", chat(f"fake/hostile-{name}", stream=False)
    )
    assert all(lit in body for lit in literals)
