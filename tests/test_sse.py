"""Tests for rill.stream.sse: spec examples, real OpenRouter traffic, every chunk boundary."""

from __future__ import annotations

import random
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pytest
from httpx_sse._decoders import SSEDecoder as HttpxSSEDecoder

from rill.stream.sse import ServerSentEvent, SSEDecoder, iter_events
from tests.chunks import chunk_obj, compact

BOM = b"\xef\xbb\xbf"


def E(
    data: str, event: str = "message", id: str | None = None, retry: int | None = None
) -> ServerSentEvent:
    return ServerSentEvent(event=event, data=data, id=id, retry=retry)


def _chunk_json(
    content: str, gen_id: str = "gen-1754441342-hIkMo7SMi0ZecQw3oR4d", **extra: Any
) -> str:
    """A chat.completion.chunk as OpenRouter serialises it: compact, this key order, raw UTF-8."""
    finish = extra.pop("finish_reason", None)
    return compact(
        chunk_obj({"content": content}, finish, gen_id=gen_id, fingerprint=True, **extra)
    )


# The recorded OpenRouter stream of PROTOCOL.md §3.2, with two keep-alives as observed.
OPENROUTER_PAYLOADS = [
    _chunk_json(""),
    _chunk_json("Peb"),
    _chunk_json("", gen_id="gen-…", finish_reason="stop"),
    _chunk_json(
        "",
        gen_id="gen-…",
        usage={
            "prompt_tokens": 17,
            "completion_tokens": 6,
            "total_tokens": 23,
            "cost": 0.0001025,
            "is_byok": False,
            "prompt_tokens_details": {"cached_tokens": 0},
            "cost_details": {"upstream_inference_cost": None},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
    ),
    "[DONE]",
]
OPENROUTER_BODY = (
    ": OPENROUTER PROCESSING\n\n: OPENROUTER PROCESSING\n\n"
    + "".join(f"data: {p}\n\n" for p in OPENROUTER_PAYLOADS)
).encode()
OPENROUTER_EVENTS = [E(p) for p in OPENROUTER_PAYLOADS]


@dataclass
class Case:
    id: str
    body: bytes
    events: list[ServerSentEvent]
    comments: int = 0
    # Why httpx-sse disagrees with the spec on this body, or "" if it agrees.
    httpx_sse_differs: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


HTTPX_EMPTY_DATA = "httpx-sse dispatches blocks with no data line (the spec does not)"
HTTPX_RETRY = "httpx-sse parses retry with int(), which takes a sign, spaces and underscores"
HTTPX_ERROR_FIELD = "httpx-sse drops the legacy `error:` field (as the spec says)"

CASES = [
    # --- WHATWG examples (server-sent-events.html, "Parsing an event stream" examples)
    Case("whatwg-stock", b"data: YHOO\ndata: +2\ndata: 10\n\n", [E("YHOO\n+2\n10")]),
    Case(
        "whatwg-ids",
        b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\n"
        b"data:  third event\n\n",
        [E("first event", id="1"), E("second event", id=""), E(" third event", id="")],
        comments=1,
    ),
    # The spec discards the final "data:" block (no blank line after it); flush() keeps it.
    Case("whatwg-empty-data", b"data\n\ndata\ndata\n\ndata:", [E(""), E("\n"), E("")]),
    Case("whatwg-space", b"data:test\n\ndata: test\n\n", [E("test"), E("test")]),
    # --- OpenRouter, real traffic and its variants
    Case("openrouter", OPENROUTER_BODY, OPENROUTER_EVENTS, comments=2),
    Case("openrouter-crlf", OPENROUTER_BODY.replace(b"\n", b"\r\n"), OPENROUTER_EVENTS, comments=2),
    Case("openrouter-cr", OPENROUTER_BODY.replace(b"\n", b"\r"), OPENROUTER_EVENTS, comments=2),
    Case("openrouter-bom", BOM + OPENROUTER_BODY, OPENROUTER_EVENTS, comments=2),
    Case(
        "keepalive-variants",  # 2026 /responses sends ": ", llama-server a bare ":"
        b": \n\n:\n\ndata: {}\n\n: OPENROUTER PROCESSING\n\ndata: [DONE]\n\n",
        [E("{}"), E("[DONE]")],
        comments=3,
    ),
    # --- line ends
    Case(
        "lone-cr",
        b"data: a\rdata: b\r\revent: x\rdata: c\r\r",
        [E("a\nb"), E("c", event="x")],
    ),
    Case(
        "mixed-line-ends",  # "\n\r" is two line ends, "\r\n" one
        b"data: a\r\ndata: b\rdata: c\n\r\n: c\r\rid: 7\r\ndata: d\n\r",
        [E("a\nb\nc"), E("d", id="7")],
        comments=1,
    ),
    Case("blank-runs", b"\n\n\n\r\n\rdata: a\n\n\n\n\r\r\ndata: b\n\n\n", [E("a"), E("b")]),
    # --- BOM: one, at the very start only
    Case("bom", BOM + b"data: x\n\n", [E("x")]),
    Case(
        "bom-only-at-start",  # the second BOM makes the field name "\ufeffdata": ignored
        BOM + b"data: x\n\n" + BOM + b"data: y\n\n",
        [E("x")],
    ),
    Case("bom-twice-at-start", BOM + BOM + b"data: x\n\n", []),
    # --- fields
    Case(
        "multi-line-data",
        b'event: update\nid: 42\nretry: 1500\ndata: {\ndata:   "a": 1\ndata: }\n\ndata: next\n\n',
        [E('{\n  "a": 1\n}', event="update", id="42", retry=1500), E("next", id="42")],
    ),
    Case("data-no-space", b'data:{"a":1}\n\ndata:x y\n\n', [E('{"a":1}'), E("x y")]),
    Case("empty-data", b"data:\n\ndata: \n\ndata\n\n", [E(""), E(""), E("")]),
    Case("colons-in-value", b"data: a: b:c\n\ndata::\n\n", [E("a: b:c"), E(":")]),
    Case(
        "odd-fields",
        b"data : spaced name\nDATA: upper\nfoo: bar\nid: a\x00b\nretry: 12a\nretry: 1.5\n"
        b"retry:\nretry\nevent:\ndata: kept\n\n",
        [E("kept")],
    ),
    Case(
        "retry-digits-only",
        b"retry: +5\nretry:  6\nretry: 7_0\nretry: -8\nretry: \xd9\xa3\ndata: x\n\n",
        [E("x")],
        httpx_sse_differs=HTTPX_RETRY,
    ),
    Case(
        "no-data-block",  # not dispatched per spec, but the id sticks and retry is remembered
        b"event: ping\nid: 5\nretry: 100\n\ndata: after\n\n",
        [E("after", id="5")],
        httpx_sse_differs=HTTPX_EMPTY_DATA,
        extra={"retry": 100, "last_event_id": "5"},
    ),
    Case(
        "event-type-reset",  # the event type does not leak into the next block
        b"event: a\n\ndata: x\n\nevent: b\ndata: y\n\ndata: z\n\n",
        [E("x"), E("y", event="b"), E("z")],
        httpx_sse_differs=HTTPX_EMPTY_DATA,
    ),
    # --- end of stream without the closing blank line (flush)
    Case("no-trailing-blank", b"data: one\n\ndata: two", [E("one"), E("two")]),
    Case("no-trailing-blank-lf", b"data: one\n\ndata: two\n", [E("one"), E("two")]),
    Case("no-trailing-blank-cr", b"data: one\r\rdata: two\r", [E("one"), E("two")]),
    # --- UTF-8
    Case(
        "utf8",
        "data: héllo 😀\n\nevent: ünï\ndata: 日本\ndata: 😀😀\n\n".encode(),
        [E("héllo 😀"), E("日本\n😀😀", event="ünï")],
    ),
    Case(
        "invalid-utf8",
        b"data: \xff\xfe ok\n\ndata: \xf0\x9f\x98\n\nevent: \xc3\ndata: x\n\n",
        [E("\ufffd\ufffd ok"), E("\ufffd"), E("x", event="\ufffd")],
    ),
    # --- legacy llama.cpp error field (non-standard, see rill.stream.sse)
    Case(
        "llama-error-field",
        b'error: {"code":500,"message":"boom","type":"server_error"}\n\ndata: [DONE]\n\n',
        [E('{"code":500,"message":"boom","type":"server_error"}', event="error"), E("[DONE]")],
        httpx_sse_differs=HTTPX_ERROR_FIELD,
    ),
    Case("error-field-name-exact", b"errors: x\nError: y\nerror_: z\n\n", []),
    Case("empty", b"", []),
    Case("comment-only-no-newline", b": bye", [], comments=1),
]


def decode(chunks: Iterable[bytes]) -> tuple[list[ServerSentEvent], SSEDecoder]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for chunk in chunks:
        events += decoder.feed(chunk)
    events += decoder.flush()
    return events, decoder


def check(case: Case, chunks: Iterable[bytes]) -> None:
    events, decoder = decode(chunks)
    assert events == case.events
    assert decoder.comments == case.comments
    for name, value in case.extra.items():
        assert getattr(decoder, name) == value


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_whole_body(case: Case) -> None:
    check(case, [case.body])
    assert list(iter_events([case.body])) == case.events


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_every_two_chunk_split(case: Case) -> None:
    body = case.body
    for cut in range(len(body) + 1):
        check(case, [body[:cut], body[cut:]])


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_one_byte_chunks(case: Case) -> None:
    check(case, [case.body[i : i + 1] for i in range(len(case.body))])


# --- cross-check against httpx-sse's SSEDecoder fed lines split per spec


def httpx_sse_events(body: bytes) -> list[ServerSentEvent]:
    """httpx-sse's field parser on spec-split lines, with flush() emulated by one blank line."""
    if body.startswith(BOM):
        body = body[len(BOM) :]
    *lines, last = re.split(rb"\r\n|\r|\n", body)
    if last:
        lines.append(last)
    if not lines or lines[-1]:
        lines.append(b"")  # flush(); a second blank line would make httpx-sse repeat the id
    decoder = HttpxSSEDecoder()
    events = []
    for line in lines:
        sse = decoder.decode(line.decode("utf-8", "replace"))
        if sse is not None:
            events.append(E(sse.data, event=sse.event, id=sse.id or None, retry=sse.retry))
    return events


def _normalise_ids(events: list[ServerSentEvent]) -> list[ServerSentEvent]:
    # httpx-sse reports "no id yet" and "id reset to empty" both as "".
    return [E(e.data, e.event, e.id or None, e.retry) for e in events]


def _cross_check_params() -> list[Any]:
    params = []
    for case in CASES:
        marks = []
        if case.httpx_sse_differs:
            marks.append(pytest.mark.xfail(reason=case.httpx_sse_differs, strict=True))
        params.append(pytest.param(case, id=case.id, marks=marks))
    return params


@pytest.mark.parametrize("case", _cross_check_params())
def test_matches_httpx_sse(case: Case) -> None:
    assert _normalise_ids(case.events) == httpx_sse_events(case.body)


# --- randomised: a literal transcription of the spec, any chunking


def reference_events(body: bytes) -> tuple[list[ServerSentEvent], int]:
    """WHATWG steps transcribed literally, plus rill's two documented deviations."""
    if body.startswith(BOM):
        body = body[len(BOM) :]
    *lines, last = re.split(rb"\r\n|\r|\n", body)
    lines += [last, b""] if last else [b""]  # flush(): finish the last line, then dispatch
    data, event_type, last_id, retry, comments = "", "", None, None, 0
    events = []
    for raw in lines:
        line = raw.decode("utf-8", "replace")
        if line == "":
            if data:
                if data.endswith("\n"):
                    data = data[:-1]
                events.append(E(data, event=event_type or "message", id=last_id, retry=retry))
            data, event_type, retry = "", "", None
            continue
        if line.startswith(":"):
            comments += 1
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data += value + "\n"
        elif name == "event":
            event_type = value
        elif name == "id" and "\0" not in value:
            last_id = value
        elif name == "retry" and re.fullmatch(r"[0-9]+", value):
            retry = int(value)
        elif name == "error":
            event_type, data = "error", data + value + "\n"
    return events, comments


TOKENS = [
    b"data",
    b"data:",
    b"data: ",
    b"data:  ",
    b"event: e",
    b"event:",
    b"id: 1",
    b"id",
    b"retry: 7",
    b"retry: x",
    b"error: oops",
    b":",
    b": ka",
    b"x",
    b" ",
    b"{}",
    "é😀".encode(),
    b"\xff",
    b"\n",
    b"\n",
    b"\n\n",
    b"\r",
    b"\r\n",
    b"\r\r",
]


def test_random_bodies_match_reference() -> None:
    rng = random.Random(20251122)
    for _ in range(1500):
        body = b"".join(rng.choices(TOKENS, k=rng.randint(0, 40)))
        if rng.random() < 0.2:
            body = BOM + body
        expected, comments = reference_events(body)
        cuts = sorted(rng.sample(range(len(body) + 1), min(len(body) + 1, rng.randint(0, 6))))
        chunks = [body[a:b] for a, b in zip([0, *cuts], [*cuts, len(body)], strict=True)]
        for pieces in ([body], chunks, [body[i : i + 1] for i in range(len(body))]):
            events, decoder = decode(pieces)
            assert events == expected, (body, pieces)
            assert decoder.comments == comments


# --- behaviour


def test_events_come_out_as_soon_as_complete() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [E("a")]
    # A CR ends the line at once; the decoder does not wait to see whether an LF follows.
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\r") == [E("b")]
    assert decoder.feed(b"data: c\r\r") == [E("c")]
    assert decoder.feed(b"\ndata: d\n\n") == [E("d")]  # that LF was an empty line: nothing pending


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n") == []  # the LF completes "\r\n", it is not an empty line
    assert decoder.feed(b"data: b\r") == []
    assert decoder.feed(b"\n\r\n") == [E("a\nb")]


def test_comments_are_counted() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b": OPENROUTER PROCESSING\n\n: \n\n") == []
    assert decoder.comments == 2
    assert decoder.feed(b":\ndata: x\n: inside\n\n") == [E("x")]
    assert decoder.comments == 4


def test_id_carries_over_and_resets() -> None:
    body = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\nid\ndata: d\n\nid: 3\x00\ndata: e\n\n"
    assert list(iter_events([body])) == [
        E("a", id="1"),
        E("b", id="1"),
        E("c", id="2"),
        E("d", id=""),
        E("e", id=""),
    ]


def test_retry_is_per_event_and_remembered_by_the_decoder() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"retry: 3000\ndata: a\n\ndata: b\n\nretry: 10\n\n") == [
        E("a", retry=3000),
        E("b"),
    ]
    assert decoder.retry == 10
    assert decoder.feed(b"retry: " + b"9" * 5000 + b"\ndata: c\n\n") == [E("c")]  # no crash
    assert decoder.retry == 10


def test_legacy_error_field() -> None:
    body = b'data: {"a":1}\n\nerror: {"message":"context overflow"}\n\ndata: [DONE]\n\n'
    assert list(iter_events([body])) == [
        E('{"a":1}'),
        E('{"message":"context overflow"}', event="error"),
        E("[DONE]"),
    ]
    # The legacy field reads as "event: error" + "data: <value>", so it composes like them.
    assert list(iter_events([b"id: 9\nerror: a\nerror: b\n\n"])) == [
        E("a\nb", event="error", id="9")
    ]


def test_done_is_an_ordinary_event() -> None:
    assert list(iter_events([b"data: [DONE]\n\ndata: more\n\n"])) == [E("[DONE]"), E("more")]


def test_flush_readies_the_decoder_for_a_new_stream() -> None:
    decoder = SSEDecoder()
    assert decoder.feed(b"id: 4\nretry: 50\ndata: a") == []
    assert decoder.flush() == [E("a", id="4", retry=50)]
    assert decoder.flush() == []
    # A reconnection starts a new stream: a BOM may lead again, the last event ID is kept.
    assert decoder.feed(BOM + b"data: b\n\n") == [E("b", id="4")]
    assert (decoder.last_event_id, decoder.retry) == ("4", 50)


def test_event_defaults() -> None:
    event = ServerSentEvent()
    assert (event.event, event.data, event.id, event.retry) == ("message", "", None, None)
    with pytest.raises(AttributeError):
        event.data = "x"  # type: ignore[misc]


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
def test_8_mib_data_line_in_64_kib_chunks(line_end: bytes) -> None:
    payload = b'{"b64":"' + b"A" * (8 * 1024 * 1024) + b'"}'
    body = b": ka" + line_end + b"data: " + payload + line_end * 2 + b"data: after" + line_end * 2
    step = 64 * 1024
    events, decoder = decode(body[i : i + step] for i in range(0, len(body), step))
    assert [len(e.data) for e in events] == [len(payload), 5]
    assert events[0].data == payload.decode()
    assert events[1] == E("after")
    assert decoder.comments == 1


def test_8_mib_event_of_many_data_lines_in_64_kib_chunks() -> None:
    lines = [b"data: " + b"%07d" % i for i in range(600_000)]
    body = b"\n".join(lines) + b"\n\n"
    step = 64 * 1024
    events, _ = decode(body[i : i + step] for i in range(0, len(body), step))
    assert len(events) == 1
    assert events[0].data == "\n".join(f"{i:07d}" for i in range(600_000))


def test_64_kib_line_in_one_byte_chunks() -> None:
    body = b"data: " + b"x" * 65536 + b"\n\n"
    events, _ = decode(body[i : i + 1] for i in range(len(body)))
    assert events == [E("x" * 65536)]
