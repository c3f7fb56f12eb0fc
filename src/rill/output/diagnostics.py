"""The one place where rill's own lines on stderr are worded: errors, notes and ``--stats``.

Each line is ``rill: ...`` and is exactly one line. Parts of it come from the upstream (an error
message, a model name, a provider), and a hostile server can put anything there, so:

- on a terminal, upstream text is neutralised like the answer (``rill.terminal.safe``): an OSC 52
  clipboard write, an OSC 0 title or a CSI clear-screen is shown, not obeyed;
- on a file or a pipe it is kept as it is, so that scripts see the server's own words;
- in both cases line breaks become spaces, so one failure is one line.

A line written to a terminal that the answer left in the middle of a line starts on a new line
(``write_line(..., at_line_start=renderer.at_line_start)``).

Plain text only: no rich, and the terminal package is imported only for a terminal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TextIO

PREFIX = "rill: "

#: Below this much generation time a token rate is noise (a whole answer in one read).
MIN_RATE_MS = 10.0

_BREAKS = re.compile("\r\n|[\r\n\x0b\x0c\x85\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with every line break (CRLF, CR, LF, VT, FF, NEL, U+2028/9) made a space."""
    return _BREAKS.sub(" ", text)


def safe_for(stream_is_tty: bool) -> Callable[[str], str]:
    """How upstream text goes into a line for a stream: on one line, and neutralised when the
    stream is a terminal."""
    if not stream_is_tty:
        return one_line
    from rill.terminal.safe import neutralise

    def safe(text: str) -> str:
        return neutralise(one_line(text))

    return safe


def error_line(error: Any, *, tty: bool) -> str:
    """The ``rill: message (HTTP status)`` line for a ``RillError`` or an ``Error`` event.

    The status is named when there was one other than 200 (an error inside a 200 stream is told
    by its message). ``tty``: whether the line goes to a terminal.
    """
    message = safe_for(tty)(str(getattr(error, "message", error)))
    status = getattr(error, "status", None)
    suffix = f" (HTTP {status})" if isinstance(status, int) and status != 200 else ""
    return f"{PREFIX}{message}{suffix}"


def note_line(note: str, *, tty: bool) -> str:
    """A ``rill:`` note (a retry, a warning) that may quote the upstream."""
    return PREFIX + safe_for(tty)(note)


def format_stats(outcome: Any, *, tty: bool = False) -> str:
    """The ``--stats`` line for an outcome (``.terminal``, ``.timings``, ``.transcript``).

    The token rate is left out when the generation took less than ``MIN_RATE_MS``: an answer that
    arrived in one read has no measurable rate. The model and provider come from the upstream
    and are made safe for the stream (``tty``).
    """
    safe = safe_for(tty)
    usage = getattr(outcome.terminal, "usage", None)
    timings = outcome.timings
    parts = []
    if usage:
        parts.append(f"{usage['prompt_tokens']} in / {usage['completion_tokens']} out tokens")
    if "ttft_ms" in timings:
        parts.append(f"first token {timings['ttft_ms'] / 1000:.2f} s")
    rate = _rate(timings)
    if rate is not None:
        parts.append(f"{rate:.1f} tok/s")
    parts.append(f"total {timings['duration_ms'] / 1000:.2f} s")
    if usage and "cost" in usage:
        parts.append(f"${usage['cost']:.6f}")
    t = outcome.transcript
    if t.model:
        parts.append(safe(str(t.model)) + (f" via {safe(str(t.provider))}" if t.provider else ""))
    return PREFIX + " · ".join(parts)


def _rate(timings: dict[str, Any]) -> float | None:
    rate = timings.get("tokens_per_second")
    if rate is None or "ttft_ms" not in timings:
        return None
    generation_ms = timings["duration_ms"] - timings["ttft_ms"]
    return float(rate) if generation_ms >= MIN_RATE_MS else None


def write_line(stream: TextIO, line: str, *, at_line_start: bool = True) -> None:
    """Write ``line`` and a newline to ``stream``; first end the line the answer left open when
    ``at_line_start`` is False (pass the terminal renderer's ``at_line_start`` when stderr and
    stdout are the same terminal). A stream that is gone is left alone."""
    try:
        stream.write(("" if at_line_start else "\n") + line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


def tool_calls_note(transcript: Any, chat_id: str | None) -> list[str]:
    """For text output, which shows no tool calls: a note that the answer holds some (how many,
    which functions) and where to see them; none when it holds none."""
    calls = transcript.tool_calls()
    if not calls:
        return []
    names = [call["function"]["name"] or "?" for call in calls]
    shown = ", ".join(names[:5]) + (", …" if len(names) > 5 else "")
    count = f"{len(calls)} tool call{'' if len(calls) == 1 else 's'} ({shown})"
    if transcript.content.strip():
        what = f"the answer also holds {count}"
    else:
        what = f"the answer is {count} and no text"
    where = "-f json"
    if chat_id:
        where += f" or rill history show {chat_id} --json"
    return [f"{what}: see them with {where}"]
