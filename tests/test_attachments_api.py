"""Attachments beyond the prompt command: ``rill batch`` items, ``rill.stream_chat``, and the
request body that carries them (encoded while it is sent, byte-identical to plain JSON)."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

import rill
from rill.errors import UsageError
from rill.fake import FakeOpenRouter
from rill.history import HistoryStore
from rill.stream.parts import PIECE, Attachment, Body, encode_body, shown
from tests.e2e import run
from tests.test_attachments import make, sha


def test_a_body_without_files_is_exactly_httpx_json() -> None:
    payload: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "é \u2028"}]}
    expected = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    assert encode_body(payload) == expected.encode()


@pytest.mark.parametrize("size", [0, 1, 2, 3, PIECE - 1, PIECE, PIECE + 1, 2 * PIECE + 5])
def test_a_body_with_files_joins_into_the_same_json(size: int) -> None:
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size] or b"x"
    image = Attachment("image/png", "a.png", data=data, sha256=sha(data))
    audio = Attachment("audio/mpeg", "b.mp3", data=data[::-1], sha256=sha(data[::-1]))
    payload = {"messages": [{"role": "user", "content": [image.part(), audio.part()]}]}
    body = encode_body(payload)
    assert isinstance(body, Body)
    joined = b"".join(body)
    assert joined == b"".join(body)  # iterated again for a retry
    assert len(joined) == body.length
    parts = json.loads(joined)["messages"][0]["content"]
    assert (
        parts[0]["image_url"]["url"] == "data:image/png;base64," + base64.b64encode(data).decode()
    )
    assert base64.b64decode(parts[1]["input_audio"]["data"]) == data[::-1]
    assert "base64" not in json.dumps(payload, default=shown)


def test_a_large_file_arrives_whole(fake_server: FakeOpenRouter, tmp_path: Path) -> None:
    pdf = make(tmp_path, "big.pdf", "pdf", 3 * PIECE + 7)
    done = run(["--base-url", fake_server.url, "-a", str(pdf), "read"])
    assert done.returncode == 0, done.stderr
    request = fake_server.chat_requests[-1]
    assert int(request.headers["content-length"]) == len(request.raw_body)
    assert "transfer-encoding" not in request.headers
    assert fake_server.attachments[0]["sha256"] == sha(pdf.read_bytes())


# -- batch ---------------------------------------------------------------------------------------


def test_batch_items_take_attachments(
    fake_server: FakeOpenRouter, tmp_path: Path, rill_env: Path
) -> None:
    png = make(tmp_path, "a.png", "png")
    lines = [
        {"id": 1, "prompt": "one", "attachments": [str(png), "https://example.com/b.gif"]},
        {"id": 2, "prompt": "two", "attachments": [str(tmp_path / "missing.pdf")]},
        {"id": 3, "messages": [{"role": "user", "content": "three"}], "attachments": [str(png)]},
        {"id": 4, "prompt": "four", "attachments": "a.png"},
    ]
    data = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    done = run(["batch", "--base-url", fake_server.url, "-j", "1", "--ordered"], input=data)
    assert done.returncode == 2, done.stderr
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert [o.get("finish_reason") or o.get("exit_code") for o in out] == ["stop", 2, "stop", 2]
    assert "missing.pdf" in out[1]["message"]
    assert "attachments" in out[3]["message"]
    assert len(fake_server.chat_requests) == 2  # nothing was sent for the failed items
    first, third = (r.body["messages"][-1]["content"] for r in fake_server.chat_requests)
    assert first[0] == {"type": "text", "text": "one"}
    assert first[2] == {"type": "image_url", "image_url": {"url": "https://example.com/b.gif"}}
    assert third[0] == {"type": "text", "text": "three"}
    assert [a["sha256"] for a in fake_server.attachments if "sha256" in a] == [
        sha(png.read_bytes())
    ] * 2
    stored = rill_env / "history" / "attachments" / sha(png.read_bytes())
    assert stored.read_bytes() == png.read_bytes()


# -- stream_chat ---------------------------------------------------------------------------------


def test_stream_chat_sends_and_records_attachments(
    fake_server: FakeOpenRouter, tmp_path: Path, rill_env: Path
) -> None:
    wav = make(tmp_path, "voice.wav", "wav")
    events = list(
        rill.stream_chat(
            "transcribe", base_url=fake_server.url, attachments=[str(wav)], history=True
        )
    )
    assert isinstance(events[-1], rill.Done), events[-1]
    text, audio = fake_server.chat_requests[-1].body["messages"][-1]["content"]
    assert text == {"type": "text", "text": "transcribe"}
    assert base64.b64decode(audio["input_audio"]["data"]) == wav.read_bytes()
    store = HistoryStore(rill_env / "history", read_only=True)
    chat = store.load(store.resolve("last"))
    record = chat["exchanges"][0]["messages"][-1]["content"][1]
    assert record["sha256"] == hashlib.sha256(wav.read_bytes()).hexdigest()
    assert store.conversation(chat["id"])[-2]["content"][1]["input_audio"]["format"] == "wav"


def test_stream_chat_refuses_a_missing_file_before_sending(
    fake_server: FakeOpenRouter, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match="nothing.png"):
        rill.stream_chat("x", base_url=fake_server.url, attachments=[str(tmp_path / "nothing.png")])
    assert fake_server.chat_requests == []
