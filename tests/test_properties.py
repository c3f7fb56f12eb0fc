"""Properties of the decoders, the transcript and the history store, on generated input.

Random bytes cut at random points go through the SSE decoder and the chunked decoder (whose
verdict must be h11's); random JSON values (deep nesting, long strings, numbers or tables where
strings belong, NaN and infinities) go through the transcript and the history recorder. Nothing
may escape but the errors each part documents, and whatever the recorder writes must read back.

The smallest inputs of the bugs these properties found are kept as plain regression tests in
tests/test_deep_input_regressions.py.
"""

from __future__ import annotations

import gc
import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rill.errors import RillError
from rill.history import ExchangeStart, HistoryStore
from rill.stream.chunked import MAX_LINE
from rill.stream.sse import ServerSentEvent, SSEDecoder
from rill.stream.transcript import Transcript
from rill.values import pretty_json
from tests.test_chunked import rill_decode

#: Bounded so the whole file runs in seconds; ``database=None``: nothing written to the tree.
BOUNDED = settings(
    max_examples=200,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
#: Errors of a malformed chunk that ``rill.stream.session`` turns into a ``StreamError`` (exit
#: 7, "a chunk of an unexpected shape"): the transcript may raise them for a chunk it cannot
#: read, besides its own ``StreamError`` for an error chunk.
SHAPE_ERRORS = (AttributeError, TypeError, KeyError, IndexError)


@st.composite
def cut(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """``data`` in pieces, cut at random points (empty pieces included)."""
    points = draw(st.lists(st.integers(0, len(data)), max_size=12))
    bounds = [0, *sorted(points), len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def nested(value: Any, levels: int, kind: str) -> Any:
    """``value`` inside ``levels`` lists or tables, built without recursion."""
    for _ in range(levels):
        value = [value] if kind == "list" else {"a": value}
    return value


class Deep:
    """A deeply nested value, drawn as this short stand-in (Hypothesis prints the values of a
    failing case, and a value 3,000 deep has no printable repr); ``real`` builds it."""

    def __init__(self, value: Any, depth: int, kind: str) -> None:
        self.value, self.depth, self.kind = value, depth, kind

    def __repr__(self) -> str:
        return f"nested({self.value!r}, {self.depth}, {self.kind!r})"


def real(value: Any) -> Any:
    """``value`` with every ``Deep`` stand-in in it built (drawn values are shallow)."""
    if isinstance(value, Deep):
        return nested(real(value.value), value.depth, value.kind)
    if isinstance(value, dict):
        return {key: real(item) for key, item in value.items()}
    if isinstance(value, list):
        return [real(item) for item in value]
    return value


# --- SSE -------------------------------------------------------------------------------------

SSE_PIECES = [
    b"data:",
    b"data: ",
    b"event:",
    b"event: error",
    b"id:",
    b"id: 7",
    b"retry:",
    b"retry: 1000",
    b"error:",
    b":",
    b": keep-alive",
    b"\n",
    b"\r",
    b"\r\n",
    b"\n\n",
    b"\xef\xbb\xbf",
    b"\xef\xbb",
    b"\xff",
    b"\xe2\x82",
    b"\xe2\x82\xac",
    b"\x00",
    b'{"a": 1}',
    b"[DONE]",
    b" ",
    b"x",
    b"9" * 5000,
]
sse_streams = st.one_of(
    st.binary(max_size=300),
    st.lists(st.sampled_from(SSE_PIECES), max_size=60).map(b"".join),
)


def sse_events(pieces: Iterable[bytes]) -> tuple[list[ServerSentEvent], int, str | None]:
    decoder = SSEDecoder()
    events: list[ServerSentEvent] = []
    for piece in pieces:
        events += decoder.feed(piece)
    events += decoder.flush()
    return events, decoder.comments, decoder.last_event_id


@BOUNDED
@given(st.data(), sse_streams)
def test_sse_decoding_never_fails_and_ignores_where_the_stream_was_cut(
    data: st.DataObject, stream: bytes
) -> None:
    whole = sse_events([stream])
    assert sse_events(data.draw(cut(stream))) == whole
    assert sse_events([stream[i : i + 1] for i in range(len(stream))]) == whole
    for event in whole[0]:
        assert isinstance(event.data, str) and isinstance(event.event, str)
        assert "\r" not in event.data and "\n" not in event.event


# --- HTTP/1.1 chunked ------------------------------------------------------------------------

HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


def h11_verdict(pieces: Iterable[bytes]) -> tuple[bytes, bool, bool]:
    """(body, ended, failed) as h11 reads ``HEAD + pieces``, as httpcore configures it.

    rill's one documented difference (rill.stream.chunked) is that trailer lines are not
    checked: an h11 failure while it reads the trailers counts as the end of the body here.
    """
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_LINE)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "x")]))
    conn.send(h11.EndOfMessage())
    body = b""
    conn.receive_data(HEAD)
    assert conn.next_event().__class__ is h11.Response
    # h11 drops its body reader on an error; only the reader itself says whether it was in the
    # trailer section then.
    reader = conn._reader  # noqa: SLF001
    try:
        for piece in pieces:
            if not piece:
                continue  # h11 reads b"" as the end of the connection
            conn.receive_data(piece)
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    break
                if isinstance(event, h11.Data):
                    body += bytes(event.data)
                elif isinstance(event, h11.EndOfMessage):
                    return body, True, False
    except h11.RemoteProtocolError:
        in_trailer = bool(getattr(reader, "_reading_trailer", False))
        return body, in_trailer, not in_trailer
    return body, False, False


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    """Mostly well-framed chunked bodies, with faults mixed in: wrong sizes, bad size lines,
    bare LFs, extensions, trailers, junk, a missing end."""
    out = []
    ends = [b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""]
    for _ in range(draw(st.integers(0, 5))):
        payload = draw(st.binary(max_size=40))
        size = len(payload) + draw(st.sampled_from([0, 0, 0, 0, 1, -1]))
        line = draw(
            st.sampled_from(
                [
                    b"%x" % max(size, 0),
                    b"%X" % max(size, 0),
                    b"00%x" % max(size, 0),
                    b"%x;ext=1" % max(size, 0),
                    b"%x \t" % max(size, 0),
                    b" %x" % max(size, 0),
                    b"0x%x" % max(size, 0),
                    b"zz",
                    b"",
                    b"1" * 21,
                ]
            )
        )
        out += [line, draw(st.sampled_from(ends)), payload, draw(st.sampled_from(ends))]
    if draw(st.booleans()):
        trailer = draw(
            st.sampled_from([b"", b"X-A: 1\r\n", b"X-A: 1\n", b"bad line\r\n", b" folded\r\n"])
        )
        out += [b"0", draw(st.sampled_from([b"", b";x"])), b"\r\n", trailer]
        out.append(draw(st.sampled_from([b"\r\n", b"\n", b""])))
    out.append(draw(st.binary(max_size=8)))
    return b"".join(out)


@BOUNDED
@given(st.data(), st.one_of(chunked_bodies(), st.binary(max_size=120)))
def test_chunked_decoding_gives_h11s_verdict_wherever_the_body_is_cut(
    data: st.DataObject, body: bytes
) -> None:
    pieces = data.draw(cut(body))
    assert rill_decode(pieces) == h11_verdict(pieces)


# --- random JSON ------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["\ud800", "\x00", "a\r\nb", "\x1b[31m", "x" * 100_000]),
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
deep_values = st.builds(Deep, json_values, st.integers(0, 3000), st.sampled_from(["list", "table"]))
any_value = st.one_of(json_values, json_values, deep_values)

CHUNK_KEYS = ["id", "model", "provider", "choices", "usage", "error"]
CHOICE_KEYS = ["delta", "message", "finish_reason", "native_finish_reason", "error", "index"]
DELTA_KEYS = [
    "content",
    "reasoning",
    "reasoning_content",
    "reasoning_details",
    "tool_calls",
    "role",
]
TOOL_KEYS = ["index", "id", "type", "function"]
TOKEN_KEYS = ["prompt_tokens", "completion_tokens", "total_tokens"]
DETAIL_KEYS = ["reasoning_tokens", "cached_tokens", "cache_write_tokens"]
USAGE_KEYS = [*TOKEN_KEYS, "cost", "completion_tokens_details", "prompt_tokens_details"]


def shaped(keys: list[str], inner: st.SearchStrategy[Any] = any_value) -> st.SearchStrategy[Any]:
    """Tables with the keys rill reads, holding anything; sometimes not a table at all."""
    return st.one_of(st.dictionaries(st.sampled_from(keys), inner, max_size=len(keys)), inner)


tool_calls = st.lists(
    shaped(TOOL_KEYS, st.one_of(shaped(["name", "arguments"]), any_value)), max_size=3
)
deltas = st.dictionaries(
    st.sampled_from(DELTA_KEYS),
    st.one_of(any_value, tool_calls, st.lists(shaped(["type", "text"]), max_size=3)),
    max_size=4,
)
choices = st.dictionaries(
    st.sampled_from(CHOICE_KEYS),
    st.one_of(deltas, any_value, shaped(["code", "message", "metadata"])),
    max_size=4,
)
numbers = st.one_of(scalars, st.sampled_from([math.nan, math.inf, -math.inf, 1e308, 2**70, -1]))
usages = shaped(USAGE_KEYS, st.one_of(numbers, shaped(DETAIL_KEYS, numbers), any_value))
chunks = st.dictionaries(
    st.sampled_from(CHUNK_KEYS),
    st.one_of(
        st.lists(st.one_of(choices, any_value), max_size=2),
        usages,
        shaped(["code", "message", "metadata"]),
        any_value,
    ),
    max_size=5,
)


def _tables(value: Any, *keys: str) -> list[dict[str, Any]]:
    """The tables at ``value[key]`` for each key in turn, lists walked (no table: nothing)."""
    found = [value]
    for key in keys:
        step = []
        for item in found:
            child = item.get(key) if isinstance(item, dict) else None
            step += child if isinstance(child, list) else [child]
        found = [item for item in step if isinstance(item, dict)]
    return found


def fold(transcript: Transcript, obj: Any, whole: bool) -> None:
    """One chunk (or a whole answer) in, as the session hands it over; the documented errors
    are the only ones allowed out."""
    try:
        if whole:
            transcript.add_completion(obj)
        else:
            transcript.add_chunk(obj)
    except (RillError, *SHAPE_ERRORS):
        pass


@BOUNDED
@given(st.lists(chunks, max_size=6), st.booleans())
def test_the_transcript_takes_any_chunks_and_can_always_be_read(
    drawn: list[dict[str, Any]], whole: bool
) -> None:
    objs = real(drawn)
    transcript = Transcript()
    for obj in objs:
        fold(transcript, obj, whole)
    # Reading the answer so far (what a cancelled or failed run saves) never fails, and what
    # the machine formats print of it is strict JSON.
    message = transcript.message()
    assert isinstance(message["content"], str)
    assert isinstance(transcript.reasoning, str)
    for call in transcript.tool_calls():
        assert isinstance(call["function"]["arguments"], str)
    transcript.final_finish_reason()
    usage = transcript.usage()
    if usage is not None:
        for key in TOKEN_KEYS:
            assert type(usage[key]) is int
    json.dumps([message, usage], allow_nan=False)


# --- history ---------------------------------------------------------------------------------

#: What rill sends (prompt text, -o fields, batch lines) is not nested deep: the xfail cases
#: below show what happens when it is.
messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user"]), "content": st.one_of(st.text(), json_values)}
    ),
    min_size=1,
    max_size=3,
)
outcomes = st.dictionaries(
    st.sampled_from(
        [
            "content",
            "reasoning",
            "tool_calls",
            "reasoning_details",
            "served_model",
            "provider",
            "generation_id",
            "finish_reason",
            "usage",
            "timings",
            "error",
        ]
    ),
    st.one_of(any_value, shaped(USAGE_KEYS)),
    max_size=6,
)
#: Memory-backed when there is one: the store fsyncs every change, which on a disk would make
#: 200 examples take most of a minute.
SCRATCH = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
texts = st.lists(st.tuples(st.text(max_size=20), st.text(max_size=5)), max_size=5)


def record_and_read(
    fmt: str, msgs: list[dict[str, Any]], request: Any, adds: Any, outcome: Any
) -> None:
    warnings: list[str] = []
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        store = HistoryStore(Path(folder), fmt, warn=warnings.append)  # type: ignore[arg-type]
        recorder = store.begin(
            ExchangeStart(None, msgs, "m", {"options": request}, "http://u:p@host/v1")
        )
        for content, reasoning in adds:
            recorder.add(content, reasoning)
        recorder.finish(outcome)
        if not recorder.enabled:
            assert warnings, "a recorder that writes nothing says why"
            return
        assert recorder.chat_id is not None
        chat = store.load(recorder.chat_id)  # what was written reads back
        (exchange,) = chat["exchanges"]
        answer = exchange.get("answer", {})
        written = "".join(content for content, _ in adds)
        content = outcome.get("content")
        expected = content if isinstance(content, str) else written
        # A lone surrogate cannot be written as UTF-8: it is stored as "?", like every other.
        assert answer.get("content", "") == expected.encode("utf-8", "replace").decode()
        assert exchange.get("base_url") == "http://host/v1"
        assert [row["id"] for row in store.list_chats()] == [recorder.chat_id]
        store.conversation(recorder.chat_id)
        json.dumps(list(store.export()))  # what `history export` prints


@BOUNDED
@given(st.sampled_from(["json", "toml"]), messages, json_values, texts, outcomes)
def test_whatever_the_recorder_writes_reads_back(
    fmt: str, msgs: list[dict[str, Any]], request: Any, adds: Any, outcome: Any
) -> None:
    outcome = real(outcome)
    record_and_read(fmt, real(msgs), real(request), adds, outcome)


@settings(max_examples=40, deadline=None, database=None)
@given(st.sampled_from(["json", "toml"]), st.integers(100, 3000), outcomes)
def test_deep_answers_from_upstream_are_dropped_with_a_note(
    fmt: str, depth: int, outcome: Any
) -> None:
    deep = {key: nested(1, depth, "list") for key in ("tool_calls", "timings", "usage", "error")}
    outcome = real(outcome) | deep
    record_and_read(fmt, [{"role": "user", "content": "hi"}], {}, [("a", "")], outcome)


def test_a_nan_from_upstream_is_not_a_number_anyone_reads_back() -> None:
    # The control for the property above: finite numbers stay, the others become notes.
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        store = HistoryStore(Path(folder))
        recorder = store.begin(ExchangeStart(None, [{"role": "user", "content": "x"}], "m", {}, ""))
        recorder.finish({"content": "y", "usage": {"prompt_tokens": 3, "cost": math.nan}})
        assert recorder.chat_id is not None
        (exchange,) = store.load(recorder.chat_id)["exchanges"]
        assert exchange["usage"] == {"prompt_tokens": 3}
        assert any("cost" in note for note in exchange["notes"])


# -- the chat file's JSON text --------------------------------------------------------------

#: Every kind of value json writes: tables keyed by any key json accepts, tuples, numbers of
#: every kind (NaN and the infinities too), text with quotes, escapes, control characters,
#: surrogates and characters beyond ASCII.
pretty_keys = st.one_of(st.text(max_size=6), st.integers(), st.floats(), st.booleans(), st.none())
pretty_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=3).map(tuple)
        | st.dictionaries(pretty_keys, children, max_size=4)
    ),
    max_leaves=25,
)


@BOUNDED
@given(pretty_values)
def test_pretty_json_is_json_dumps_indented(value: Any) -> None:
    assert pretty_json(value) == json.dumps(value, ensure_ascii=False, indent=2)


def test_pretty_json_refuses_what_json_refuses() -> None:
    for bad in ({"a": {1, 2}}, [object()], {(1, 2): "tuple key"}):
        with pytest.raises(TypeError):
            json.dumps(bad, ensure_ascii=False, indent=2)
        with pytest.raises(TypeError):
            pretty_json(bad)


def test_pretty_json_leaves_nothing_for_the_cyclic_collector() -> None:
    chat = {"id": "c", "exchanges": [{"messages": [{"role": "user", "content": "hi"}]}] * 3}
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        for _ in range(50):
            pretty_json(chat)
        made = gc.get_count()[0] - before
        json_before = gc.get_count()[0]
        for _ in range(50):
            json.dumps(chat, ensure_ascii=False, indent=2)
        json_made = gc.get_count()[0] - json_before
    finally:
        gc.enable()
    # What is left tracked once the calls return (allocations less deallocations): json's own
    # indenting encoder leaves its closures' cycles, ~34 objects a call; this leaves none (the
    # few counted are the interpreter's own).
    assert made < 10, made
    assert json_made >= 50 * 10, json_made  # the check can tell the difference
