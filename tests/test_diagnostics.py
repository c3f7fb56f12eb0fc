"""rill's own stderr lines: one line each, upstream text neutralised on a terminal, kept as sent
elsewhere; the ``--stats`` line; and where the answer left the cursor."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from types import SimpleNamespace
from typing import Any

import pytest

from rill.errors import APIError, AuthError, NetworkError, StreamError
from rill.events import Chunk, Done, Error, Start
from rill.output.diagnostics import (
    error_line,
    format_stats,
    note_line,
    one_line,
    safe_for,
    write_line,
)
from rill.output.formats import OutputFormat, make_renderer
from rill.stream.transcript import Transcript
from rill.terminal.renderers import for_terminal
from tests.test_tty import DONE, FakeTTY, FakeTTYText, settings, text_renderer

OSC52 = "\x1b]52;c;aGVsbG8=\x07"  # write "hello" to the clipboard
TITLE = "\x1b]0;pwned\x07"  # set the window title
CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
C1_CSI = "\x9b2J"  # the same with the 8-bit CSI
HOSTILE = f"bad {OSC52}key{TITLE} here{CLEAR}{C1_CSI}\r\nsecond\rthird\x08"

#: Characters a terminal obeys: ESC, BEL, CSI (C1), CR, LF, BS.
OBEYED = ("\x1b", "\x07", "\x9b", "\r", "\n", "\x08")


def obeyed(line: str) -> list[str]:
    return [c for c in OBEYED if c in line]


@pytest.mark.parametrize(
    "error",
    [
        APIError(HOSTILE, status=400),
        StreamError(HOSTILE, status=200),
        NetworkError(HOSTILE),
        Error(code="x", message=HOSTILE, status=502, exit_code=7, partial={}),
    ],
    ids=["api", "stream", "network", "event"],
)
def test_hostile_error_messages_are_shown_not_obeyed_on_a_terminal(error: Any) -> None:
    line = error_line(error, tty=True)
    assert obeyed(line) == []
    assert line.startswith("rill: bad ␛]52;c;aGVsbG8=␇key␛]0;pwned␇ here␛[2J␛[H␛[2J")
    assert "second" in line and "third␈" in line


def test_hostile_error_messages_stay_as_sent_off_a_terminal_but_on_one_line() -> None:
    line = error_line(APIError(HOSTILE, status=400), tty=False)
    assert "\n" not in line and "\r" not in line
    assert OSC52 in line and TITLE in line and CLEAR in line and C1_CSI in line
    assert line.endswith("second third\x08 (HTTP 400)")


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (AuthError("invalid key", status=401), "rill: invalid key (HTTP 401)"),
        (StreamError("cut off", status=200), "rill: cut off"),
        (NetworkError("connection refused"), "rill: connection refused"),
        (Error(None, "overloaded", 529, 7, {}), "rill: overloaded (HTTP 529)"),
    ],
)
def test_error_line_wording(error: Any, line: str) -> None:
    assert error_line(error, tty=False) == line
    assert error_line(error, tty=True) == line


def test_notes_and_one_line() -> None:
    assert (
        note_line(f"retrying after {TITLE}429\n", tty=True) == "rill: retrying after ␛]0;pwned␇429 "
    )
    assert note_line(f"retrying\r\nnow{TITLE}", tty=False) == f"rill: retrying now{TITLE}"
    assert one_line("a\r\nb\rc\nd\x0be\x0cf\x85g\u2028h\u2029i") == "a b c d e f g h i"
    assert safe_for(False)("tab\tstays") == "tab\tstays"
    assert safe_for(True)("tab\tstays\x00") == "tab\tstays␀"


def outcome(
    *,
    usage: dict[str, Any] | None = None,
    timings: dict[str, Any],
    model: str | None = "openai/gpt-4o",
    provider: str | None = "OpenAI",
) -> Any:
    terminal = Done(
        {"role": "assistant", "content": ""}, usage, "stop", model, provider, None, None
    )
    transcript = SimpleNamespace(model=model, provider=provider)
    return SimpleNamespace(terminal=terminal, timings=timings, transcript=transcript)


USAGE = {"prompt_tokens": 12, "completion_tokens": 130, "cost": 0.00042}


def test_stats_line() -> None:
    o = outcome(
        usage=USAGE,
        timings={"ttft_ms": 250.0, "duration_ms": 1250.0, "tokens_per_second": 130.0},
    )
    assert format_stats(o) == (
        "rill: 12 in / 130 out tokens · first token 0.25 s · 130.0 tok/s · total 1.25 s"
        " · $0.000420 · openai/gpt-4o via OpenAI"
    )


@pytest.mark.parametrize("generation_ms", [0.0, 1.0, 9.9])
def test_stats_leave_out_a_rate_they_cannot_measure(generation_ms: float) -> None:
    timings = {"ttft_ms": 3.0, "duration_ms": 3.0 + generation_ms, "tokens_per_second": 13000.0}
    line = format_stats(outcome(usage=USAGE, timings=timings))
    assert "tok/s" not in line
    assert (
        "first token 0.00 s · total 0.01 s" in line or "first token 0.00 s · total 0.00 s" in line
    )


def test_stats_show_a_rate_from_ten_milliseconds() -> None:
    timings = {"ttft_ms": 3.0, "duration_ms": 13.0, "tokens_per_second": 13000.0}
    assert "13000.0 tok/s" in format_stats(outcome(usage=USAGE, timings=timings))


def test_stats_without_usage_or_model() -> None:
    line = format_stats(outcome(timings={"duration_ms": 40.0}, model=None, provider=None))
    assert line == "rill: total 0.04 s"


def test_stats_neutralise_a_hostile_model_and_provider_on_a_terminal() -> None:
    o = outcome(timings={"duration_ms": 5.0}, model=f"m{OSC52}\n", provider=f"p{CLEAR}")
    shown = format_stats(o, tty=True)
    assert obeyed(shown) == []
    assert shown.endswith("m␛]52;c;aGVsbG8=␇  via p␛[2J␛[H")
    kept = format_stats(o, tty=False)
    assert "\n" not in kept and kept.endswith(f"m{OSC52}  via p{CLEAR}")


def test_the_real_outcome_shape_works() -> None:
    transcript = Transcript()
    transcript.model, transcript.provider = "x/y", None
    o = SimpleNamespace(terminal=DONE, timings={"duration_ms": 1.0}, transcript=transcript)
    assert format_stats(o) == "rill: total 0.00 s · x/y"


def test_write_line_ends_the_answers_line_first() -> None:
    err = io.StringIO()
    write_line(err, "rill: a", at_line_start=False)
    write_line(err, "rill: b")
    assert err.getvalue() == "\nrill: a\nrill: b\n"


# -- where the answer left the cursor -------------------------------------------------------


def start() -> Start:
    return Start("id", "m")


@pytest.mark.parametrize("markdown", [True, False])
def test_text_on_a_terminal_ends_on_a_new_line(markdown: bool) -> None:
    out = FakeTTY()
    r = text_renderer(out, FakeTTYText(), markdown=markdown, color="never")
    assert r.at_line_start
    r.start(start(), Transcript())
    r.deltas(b"", [Chunk("no final newline")])
    if not markdown:  # markdown holds back the open line without colour
        assert not r.at_line_start
    r.finish(DONE)
    assert r.at_line_start and out.getvalue().endswith(b"\n")


def test_text_to_a_pipe_leaves_the_terminal_alone() -> None:
    r = text_renderer(io.BytesIO(), FakeTTYText(), stdout_tty=False)
    r.start(start(), Transcript())
    r.deltas(b"", [Chunk("no final newline")])
    r.finish(DONE)
    assert r.at_line_start  # stdout is not the terminal: nothing on it to end


def test_raw_format_on_a_terminal_reports_an_open_line() -> None:
    out = FakeTTY()
    r: Any = for_terminal(
        make_renderer(OutputFormat.raw, out, tty=True),
        fmt=OutputFormat.raw,
        settings=settings(),
        stdout_tty=True,
        stderr_tty=False,
        raw=False,
        out=out,
        err=FakeTTYText(),
        env={},
    )
    r.start(start(), Transcript())
    r.deltas(b'data: {"x": 1}', [Chunk("x")])
    r.finish(DONE)
    assert out.getvalue() == b'data: {"x": 1}'
    assert not r.at_line_start
    r2: Any = for_terminal(
        make_renderer(OutputFormat.jsonl, FakeTTY(), tty=True),
        fmt=OutputFormat.jsonl,
        settings=settings(),
        stdout_tty=True,
        stderr_tty=False,
        raw=False,
        err=FakeTTYText(),
        env={},
    )
    r2.start(start(), Transcript())
    r2.finish(DONE)
    assert r2.at_line_start


def test_diagnostics_off_a_terminal_import_neither_rich_nor_the_terminal_layer() -> None:
    code = (
        "import json, sys\n"
        "from rill.output.diagnostics import error_line\n"
        "from rill.errors import APIError\n"
        "error_line(APIError('x', status=500), tty=False)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    modules = json.loads(done.stdout)
    assert "rill.output.diagnostics" in modules
    assert not [m for m in modules if m == "rich" or m.startswith(("rich.", "rill.terminal"))]


def test_for_environment_uses_the_environments_streams_and_variables() -> None:
    from rill.env import Environment
    from rill.terminal.renderers import for_environment

    out, err = FakeTTY(), FakeTTYText()
    environment = Environment(
        stdin=None,
        stdout=out,
        stderr=err,
        environ={"NO_COLOR": "1"},
        stdout_isatty=True,
        stderr_isatty=False,
    )
    r: Any = for_environment(
        make_renderer(OutputFormat.text, out, tty=True),
        environment,
        fmt=OutputFormat.text,
        settings=settings(markdown=False),
        raw=False,
    )
    r.start(start(), Transcript())
    r.deltas(b"", [Chunk(f"x{OSC52}")])
    r.finish(DONE)
    assert out.getvalue() == "x␛]52;c;aGVsbG8=␇\n".encode()
    assert err.getvalue() == "" and r.spinner is None and r.at_line_start
