"""Bugs found by the properties in tests/test_properties.py, in code owned elsewhere, each
pinned by its smallest input as a strict xfail. The properties leave these inputs out
(``known_bug``, ``history_known_bug``) so they keep guarding everything else; fixing one turns
its case here into an unexpected pass: then drop the marker and the matching filter clause.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest

from rill.errors import RillError, StreamError
from rill.fake import FakeOpenRouter, Scenario
from rill.history import ExchangeStart, HistoryStore
from rill.stream.transcript import Transcript
from tests.e2e import run
from tests.test_properties import SCRATCH, SHAPE_ERRORS, TOKEN_KEYS, nested


@pytest.mark.xfail(strict=True, reason="stream/transcript.py _raise_error: str() of a deep error")
def test_a_deep_error_value_is_a_stream_error() -> None:
    with pytest.raises(StreamError):
        Transcript().add_chunk({"error": nested(None, 5000, "list")})


@pytest.mark.xfail(strict=True, reason="stream/protocol.py error_message: str() of a deep field")
def test_a_deep_error_message_is_a_stream_error() -> None:
    with pytest.raises(StreamError):
        Transcript().add_chunk({"error": {"message": nested(None, 5000, "list")}})


@pytest.mark.xfail(
    strict=True, reason="stream/transcript.py _add_tool_calls: json.dumps of deep arguments"
)
def test_deep_tool_call_arguments_are_a_shape_error_at_worst() -> None:
    function = {"name": "f", "arguments": nested(1, 5000, "list")}
    chunk = {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": function}]}}]}
    try:
        Transcript().add_chunk(chunk)
    except (RillError, *SHAPE_ERRORS):
        pass


@pytest.mark.xfail(strict=True, reason="stream/transcript.py _int: int(inf) raises OverflowError")
def test_an_infinite_token_count_reads_as_a_number() -> None:
    transcript = Transcript()
    transcript.add_chunk({"choices": [], "usage": {"prompt_tokens": math.inf}})
    usage = transcript.usage()
    assert usage is None or all(type(usage[key]) is int for key in TOKEN_KEYS)


@pytest.mark.xfail(strict=True, reason="stream/transcript.py normalize_usage keeps a NaN cost")
def test_a_nan_cost_is_dropped_from_the_usage() -> None:
    transcript = Transcript()
    transcript.add_chunk({"choices": [], "usage": {"prompt_tokens": 1, "cost": math.nan}})
    json.dumps(transcript.usage(), allow_nan=False)


@pytest.mark.xfail(
    strict=True,
    reason="history/records.py _clean and json.dumps recurse: RecursionError escapes begin",
)
def test_a_deep_message_does_not_escape_begin_as_a_crash() -> None:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        store = HistoryStore(Path(folder), warn=lambda _message: None)
        deep = {"role": "user", "content": nested("x", 1000, "list")}
        store.begin(ExchangeStart(None, [deep], "m", {}, ""))


@pytest.mark.xfail(
    strict=True,
    reason="history/recorder.py _final_fields keeps timings/error that are not tables; the "
    "reader then skips the whole exchange as damaged, answer included",
)
@pytest.mark.parametrize("outcome", [{"timings": True}, {"error": "boom"}])
def test_an_outcome_field_that_is_not_a_table_keeps_the_answer(outcome: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        store = HistoryStore(Path(folder))
        recorder = store.begin(ExchangeStart(None, [{"role": "user", "content": "x"}], "m", {}, ""))
        recorder.add("kept")
        recorder.finish(outcome)
        assert recorder.chat_id is not None
        (exchange,) = store.load(recorder.chat_id)["exchanges"]
        assert exchange["answer"]["content"] == "kept"


# The same bugs, seen from the command line (the installed rill against the fake server).


def usage_event(usage: bytes) -> Scenario:
    """An answer whose usage arrives in a chunk of its own, written verbatim."""
    event = b'data: {"choices":[],"usage":' + usage + b"}\n\n"
    return Scenario(content=["a", "b"], usage_style=None, raw_event_after=1, raw_event=event)


@pytest.mark.xfail(strict=True, reason="stream/transcript.py _int: int(inf); exit 1 today")
@pytest.mark.parametrize("count", [b"1e999", b"Infinity"])
def test_a_stream_reporting_infinite_tokens_still_completes(
    fake_server: FakeOpenRouter, count: bytes
) -> None:
    fake_server.enqueue(usage_event(b'{"prompt_tokens":' + count + b"}"))
    result = run(["--base-url", fake_server.url, "-m", "m", "hi"])
    assert (result.returncode, result.stdout, result.stderr) == (0, b"ab", b"")


@pytest.mark.xfail(strict=True, reason="stream/transcript.py keeps a NaN cost: -f json prints NaN")
def test_json_output_stays_json_when_the_cost_is_nan(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(usage_event(b'{"prompt_tokens":1,"cost":NaN}'))
    result = run(["--base-url", fake_server.url, "-m", "m", "-f", "json", "hi"])
    assert result.returncode == 0
    json.loads(result.stdout, parse_constant=lambda name: pytest.fail(f"{name} in the output"))


@pytest.mark.xfail(strict=True, reason="batch.py: a line too deep for json stops the whole batch")
def test_a_batch_line_too_deep_to_read_fails_that_item_only(fake_server: FakeOpenRouter) -> None:
    lines = [b'{"id": 1, "prompt": "a"}', b'{"id": 2, "x": ' + b"[" * 5000 + b"]" * 5000 + b"}"]
    lines.append(b'{"id": 3, "prompt": "c"}')
    result = run(
        ["batch", "--base-url", fake_server.url, "-m", "fake/echo", "--ordered"],
        input=b"\n".join(lines) + b"\n",
    )
    assert result.returncode == 2, result.stderr[-300:]
    items = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(item.get("line") or item["id"] for item in items) == [1, 2, 3]
    assert [item["exit_code"] for item in items if item.get("line") == 2] == [2]


@pytest.mark.xfail(
    strict=True, reason="batch.py sends a NaN from a line's options: httpx refuses, exit 1"
)
def test_a_batch_item_whose_options_hold_nan_is_a_bad_item(fake_server: FakeOpenRouter) -> None:
    line = b'{"id": 1, "prompt": "a", "options": {"temperature": NaN}}\n'
    result = run(["batch", "--base-url", fake_server.url, "-m", "fake/echo"], input=line)
    assert result.returncode == 2
    assert json.loads(result.stdout)["exit_code"] == 2
    assert fake_server.chat_requests == []
