"""A tool-using model for the fake server (``fake/tool-use``, ``fake/tool-loop``).

``tool-use`` behaves as a model that uses the tools it is offered: while the conversation since
the last user message holds no tool result, it calls the first offered tool; once it holds
results, it answers from them. The call's arguments are the last user message when that is a
JSON object (so a test chooses them, valid or not), else built from the tool's schema: each
required property gets a value of its type (a string property the user's text). ``tool-loop``
calls the first offered tool every time, to reach a round limit.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from rill.fake.common import text_of
from rill.fake.scenario import Scenario

CATALOGUE: list[tuple[str, str]] = [
    (
        "tool-use",
        "calls the first offered tool until the conversation holds a tool result, then answers "
        "from the results (arguments: the user's JSON object, else built from the schema)",
    ),
    ("tool-loop", "calls the first offered tool every time (for round limits)"),
]

_SAMPLES: dict[str, Any] = {"integer": 1, "number": 1.5, "boolean": True, "array": [], "object": {}}


def scenario(key: str, body: Mapping[str, Any] | None) -> Scenario | None:
    if key not in ("tool-use", "tool-loop"):
        return None
    body = body or {}
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    since_user: list[dict[str, Any]] = []
    for message in reversed(messages):
        if message.get("role") == "user":
            break
        since_user.insert(0, message)
    results = [m for m in since_user if m.get("role") == "tool"]
    tools = [t for t in body.get("tools") or [] if isinstance(t, dict)]
    if key == "tool-use" and results:
        said = " | ".join(text_of(m.get("content")).strip() for m in results)
        return Scenario(content=["The tool said: ", said])
    if not tools:
        return Scenario(content=["No tool was offered."])
    function = tools[0].get("function") or {}
    user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    arguments = _arguments(function.get("parameters") or {}, text_of(user.get("content")))
    return Scenario(tool_calls=[{"name": function.get("name", "?"), "arguments": arguments}])


def _arguments(schema: Mapping[str, Any], text: str) -> dict[str, Any]:
    try:
        given = json.loads(text)
    except ValueError:
        given = None
    if isinstance(given, dict):
        return given
    properties = schema.get("properties") or {}
    out: dict[str, Any] = {}
    for name in schema.get("required") or []:
        kind = (properties.get(name) or {}).get("type", "string")
        out[name] = text if kind == "string" else _SAMPLES.get(kind, text)
    return out
