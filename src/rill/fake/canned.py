"""The canned scenarios: what a ``fake/NAME`` model name (or ``--scenario NAME``) selects.

``CATALOGUE`` lists them with one line each; it is the text of ``--list-scenarios`` and of the
help of ``python -m rill.fake``, so a new canned scenario is documented where it is added.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from rill.fake import hostile, structured, toolmodel
from rill.fake.common import DEMO_CONTENT, LONG_CHUNKS, text_of
from rill.fake.error_bodies import ERROR_KINDS
from rill.fake.scenario import Scenario

#: (name, description) of every canned scenario; names in capitals are parameters.
CATALOGUE: list[tuple[str, str]] = [
    ("demo", "the demo answer (the default)"),
    ("echo", "the last user message, echoed back word by word"),
    (
        "error-STATUS[-KIND]",
        "a pre-stream error with a realistic body and headers, e.g. error-401-user-not-found, "
        "error-429-upstream, error-502-html; kinds per status: "
        + "; ".join(f"{s}: {', '.join(k)}" for s, k in ERROR_KINDS.items())
        + '; "html" and "availability" (the 2026 body without error.code) work with any status',
    ),
    ("midstream-error", '3 chunks, then an error chunk (finish_reason "error"), no [DONE]'),
    ("midstream-error-empty", "the same with choices: [], a string code and a [DONE]"),
    ("truncated", "3 chunks, then the TCP connection closes (no finish, no [DONE])"),
    ("broken-json", "2 chunks, then a data line that is not JSON"),
    ("silent-failure", 'empty answer, finish_reason "stop", native "network_error"'),
    ("slow", "20 chunks, one every 0.2 s"),
    ("stall", "3 chunks, 3 s of keep-alive comments only, then the rest"),
    ("keepalive", "2 s of keep-alive comments before the first data event"),
    ("reasoning", "reasoning (with reasoning_details and a signature), then content"),
    ("tools", "two parallel tool calls, arguments in 7-character fragments"),
    ("length", 'finish_reason "length"'),
    ("no-usage", "no usage chunk"),
    ("legacy-usage", "usage in the finish chunk's style of 2024"),
    ("no-done", "no data: [DONE] at the end"),
    ("crlf", "CRLF line endings"),
    ("cr", "CR line endings"),
    ("split", "multi-byte text, the byte stream cut at random offsets"),
    ("huge", "one 4 MiB content piece"),
    ("paced", "50 pieces 20 ms apart, each its send time (time.time_ns()) and a newline"),
    ("long[-N]", f"N small chunks (default {LONG_CHUNKS:,}), written in 64 KiB blocks"),
    ("long-events[-N]", "the same, one HTTP chunk per event"),
    *toolmodel.CATALOGUE,
    *hostile.CATALOGUE,
    *structured.CATALOGUE,
]


_THREE = ["One, ", "two, ", "three, ", "four, ", "five."]
#: The scenarios without parameters (echo needs the request, so canned_scenario builds it).
_FIXED: dict[str, Callable[[], Scenario]] = {
    "demo": lambda: Scenario(content=list(DEMO_CONTENT)),
    "midstream-error": lambda: Scenario(content=list(_THREE), midstream_error_after=3),
    "midstream-error-empty": lambda: Scenario(
        content=list(_THREE),
        midstream_error_after=3,
        midstream_error={"code": "server_error", "message": "Internal server error"},
        midstream_error_choices_empty=True,
        done_after_error=True,
    ),
    "truncated": lambda: Scenario(content=list(_THREE), abrupt_close_after=3),
    "broken-json": lambda: Scenario(content=list(_THREE), raw_event_after=2),
    "silent-failure": Scenario.silent_failure,
    "slow": lambda: Scenario(content=[f"chunk {i}\n" for i in range(20)], chunk_delay=0.2),
    "stall": lambda: Scenario(
        content=list(_THREE), stall_after=3, stall_seconds=3.0, keepalive_every=0.5
    ),
    "keepalive": lambda: Scenario(
        content=list(DEMO_CONTENT), delay_first_data=2.0, keepalive_every=0.25
    ),
    "reasoning": lambda: Scenario(
        reasoning=["Let me think", " about this", " carefully."],
        content=["The answer", " is 42."],
    ),
    "tools": lambda: Scenario(
        tool_calls=[
            {"name": "get_weather", "arguments": {"location": "Paris, France", "unit": "c"}},
            {"name": "get_time", "arguments": {"timezone": "Europe/Paris"}},
        ],
        argument_split=7,
    ),
    "length": lambda: Scenario(content=["This answer was cut", " short"], finish_reason="length"),
    "no-usage": lambda: Scenario(content=list(DEMO_CONTENT), usage_style=None),
    "legacy-usage": lambda: Scenario(content=list(DEMO_CONTENT), usage_style="legacy"),
    "no-done": lambda: Scenario(content=list(DEMO_CONTENT), send_done=False),
    "crlf": lambda: Scenario(content=list(DEMO_CONTENT), line_ending="\r\n"),
    "cr": lambda: Scenario(content=list(DEMO_CONTENT), line_ending="\r"),
    "split": lambda: Scenario(
        content=["Grüße ", "aus ", "Köln — ", "日本語の", "テキスト ", "🎉🎉 ", "done."],
        split="bytes",
        split_max=7,
    ),
    "huge": lambda: Scenario(content=["big: "], huge_piece_bytes=4 * 1024 * 1024),
    "paced": lambda: Scenario.paced(50, 0.02),
}


def _last_user_text(body: Mapping[str, Any] | None) -> str:
    for message in reversed((body or {}).get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return text_of(message.get("content"))
    return ""


def canned_scenario(name: str, body: Mapping[str, Any] | None = None) -> Scenario | None:
    """The scenario a ``fake/...`` model name selects (see ``CATALOGUE``), else None."""
    if not name.startswith("fake/"):
        return None
    key = name[len("fake/") :]
    if m := re.fullmatch(r"error-(\d{3})(?:-([a-z0-9-]+))?", key):
        status, kind = int(m[1]), m[2]
        known = ERROR_KINDS.get(status, ()) + ("html", "availability")
        if kind is not None and kind not in known:
            return None
        return Scenario.error(status, kind)
    if key.startswith("hostile-"):
        return hostile.scenario(key)
    if m := re.fullmatch(r"long(-events)?(?:-(\d+))?", key):
        n = int(m[2]) if m[2] else LONG_CHUNKS
        return Scenario.long(n, split="event" if m[1] else "coalesce")
    if key.startswith("tool-"):
        return toolmodel.scenario(key, body)
    if (answer := structured.scenario(key, body)) is not None:
        return answer
    if key == "echo":
        return Scenario(content=_words(_last_user_text(body)) or ["(no user message)"])
    build = _FIXED.get(key)
    return build() if build else None


def _words(text: str) -> list[str]:
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
