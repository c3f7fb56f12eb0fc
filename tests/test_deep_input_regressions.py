"""Regression tests: the smallest inputs with which tests/test_properties.py found a crash
(deep errors and tool-call arguments, deep prompts, outcome fields that are not tables, NaN in a
batch line). Each was a traceback or a lost answer; each is now an ordinary error or a note."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from rill.errors import RillError, StreamError
from rill.fake import FakeOpenRouter
from rill.history import ExchangeStart, HistoryStore
from rill.stream.transcript import Transcript
from tests.e2e import run
from tests.test_properties import SCRATCH, SHAPE_ERRORS, nested


def test_a_deep_error_value_is_a_stream_error() -> None:
    with pytest.raises(StreamError):
        Transcript().add_chunk({"error": nested(None, 5000, "list")})


def test_a_deep_error_message_is_a_stream_error() -> None:
    with pytest.raises(StreamError):
        Transcript().add_chunk({"error": {"message": nested(None, 5000, "list")}})


def test_deep_tool_call_arguments_are_a_shape_error_at_worst() -> None:
    function = {"name": "f", "arguments": nested(1, 5000, "list")}
    chunk = {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": function}]}}]}
    try:
        Transcript().add_chunk(chunk)
    except (RillError, *SHAPE_ERRORS):
        pass


def test_a_deep_message_does_not_escape_begin_as_a_crash() -> None:
    with tempfile.TemporaryDirectory(dir=SCRATCH) as folder:
        store = HistoryStore(Path(folder), warn=lambda _message: None)
        deep = {"role": "user", "content": nested("x", 1000, "list")}
        store.begin(ExchangeStart(None, [deep], "m", {}, ""))


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


def test_a_batch_item_whose_options_hold_nan_is_a_bad_item(fake_server: FakeOpenRouter) -> None:
    line = b'{"id": 1, "prompt": "a", "options": {"temperature": NaN}}\n'
    result = run(["batch", "--base-url", fake_server.url, "-m", "fake/echo"], input=line)
    assert result.returncode == 2
    assert json.loads(result.stdout)["exit_code"] == 2
    assert fake_server.chat_requests == []


@pytest.mark.parametrize("fmt", ["json", "toml"])
def test_a_lone_surrogate_in_an_answer_is_stored_as_a_question_mark(
    fmt: str, tmp_path: Path
) -> None:
    # Found by test_properties: UTF-8 cannot hold "\ud800"; the rest of the answer is kept.
    store = HistoryStore(tmp_path, fmt)  # type: ignore[arg-type]
    recorder = store.begin(ExchangeStart(None, [{"role": "user", "content": "hi"}], "m", {}, ""))
    recorder.finish({"content": "a\ud800b"})
    assert recorder.chat_id is not None
    (exchange,) = store.load(recorder.chat_id)["exchanges"]
    assert exchange["answer"]["content"] == "a?b"
