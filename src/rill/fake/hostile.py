"""Hostile modes: answers built to break careless clients, for hardening tests.

Each is a canned scenario named ``hostile-...`` (``CATALOGUE``). They send what a broken or
malicious server could: a line that never ends, JSON nested far deeper than any parser's recursion
limit, fields of the wrong type, error bodies that echo the caller's API key, and the non-standard
JSON literals ``NaN`` and ``Infinity`` in the usage numbers.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, Literal, get_args

from rill.fake.common import DEEP_DEPTH, DEMO_CONTENT, nested_arrays
from rill.fake.records import Headers
from rill.fake.scenario import Scenario

if TYPE_CHECKING:
    from rill.fake.wire import Writer

ENDLESS_LINE_BYTES = 80 * 1024 * 1024
SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
TYPE_FIELDS = ("finish_reason", "model", "provider", "id")
TYPE_VALUES: dict[str, Any] = {"object": {"unexpected": ["object"]}, "number": 42}
KeyPlace = Literal["code", "metadata", "message", "malformed", "midstream", "models"]
#: The places that answer with an error echoing the key, for a chat and for ``GET /models``.
ERROR_PLACES = ("code", "metadata", "message", "malformed")
_KEY_PLACES: dict[str, KeyPlace] = {p: p for p in get_args(KeyPlace)}
#: Where the key starts in the ``message`` echo, and that message's length.
KEY_AT, MESSAGE_LENGTH = 490, 600
_PIECE = 64 * 1024

CATALOGUE: list[tuple[str, str]] = [
    (
        "hostile-endless-line[-SIZE]",
        'after the role chunk, "data: aaaa..." with no newline: SIZE bytes of "a" (suffix k, m '
        "or g; default 80m) in 64 KiB pieces, then the response ends",
    ),
    (
        "hostile-deep-content[-N]",
        f"a content chunk whose delta.content is JSON arrays nested N deep (default {DEEP_DEPTH})",
    ),
    ("hostile-deep-reasoning[-N]", "a chunk whose delta.reasoning_details is nested N deep"),
    ("hostile-deep-error[-N]", "HTTP 502 whose JSON error body nests N deep (error.metadata.raw)"),
    (
        "hostile-type-FIELD[-object|-number]",
        "FIELD (id, model or provider of every chunk; finish_reason of the finish chunk) is an "
        "object (default) or a number instead of a string",
    ),
    (
        "hostile-key-PLACE",
        "an error echoing the request's API key; PLACE: code (HTTP 400, error.code is the key), "
        f"metadata (in error.metadata), message (at character {KEY_AT} of a {MESSAGE_LENGTH}-"
        "character message), malformed (inside a body of broken JSON), midstream (an error chunk "
        "after 2 content chunks), models (no error: GET /models lists one more model whose id, "
        f"name and description carry the key, the description at character {KEY_AT}); with "
        "--scenario, GET /models answers code, metadata, message and malformed with the same "
        "error",
    ),
    ("hostile-nan", "usage.cost and every token count are the JSON literal NaN"),
    ("hostile-infinity", "usage.cost and the token counts are Infinity (completion: -Infinity)"),
]


def parse_size(text: str) -> int | None:
    """``"80m"`` → 83886080; None when ``text`` is not a size."""
    m = re.fullmatch(r"(\d+)([kmg]?)(?:i?b)?", text.lower())
    return int(m[1]) * SIZE_UNITS[m[2]] if m else None


def scenario(key: str) -> Scenario | None:
    """The hostile scenario of canned name ``key`` (``hostile-...``), else None."""
    mode = key.removeprefix("hostile-")
    if m := re.fullmatch(r"endless-line(?:-(\w+))?", mode):
        size = parse_size(m[1]) if m[1] else ENDLESS_LINE_BYTES
        return None if size is None else Scenario(endless_line_bytes=size)
    if m := re.fullmatch(r"deep-(content|reasoning|error)(?:-(\d+))?", mode):
        depth = int(m[2]) if m[2] else DEEP_DEPTH
        if m[1] == "error":
            return Scenario(status=502, error_body=deep_error_body(depth), content_type=_JSON_TYPE)
        where: Literal["content", "reasoning"] = "content" if m[1] == "content" else "reasoning"
        return Scenario(content=["Before the deep chunk. ", "After it."], deep_json=(where, depth))
    if m := re.fullmatch(r"type-(finish_reason|model|provider|id)(?:-(object|number))?", mode):
        value = TYPE_VALUES[m[2] or "object"]
        return Scenario(content=list(DEMO_CONTENT), chunk_overrides={m[1]: value})
    if m := re.fullmatch(r"key-(\w+)", mode):
        place = _KEY_PLACES.get(m[1])
        if place == "midstream":
            return Scenario(
                content=["One, ", "two, ", "three."], midstream_error_after=2, echo_key=place
            )
        if place == "models":
            return Scenario(content=list(DEMO_CONTENT), echo_key=place)
        return None if place is None else Scenario(status=400, echo_key=place)
    if mode in ("nan", "infinity"):
        return Scenario(content=list(DEMO_CONTENT), usage=odd_usage(mode))
    return None


_JSON_TYPE = "application/json"


def deep_error_body(depth: int) -> str:
    """A JSON error body whose ``error.metadata.raw`` is arrays nested ``depth`` deep."""
    head = '{"error":{"code":502,"message":"Provider returned error","metadata":{"raw":'
    return head + nested_arrays(depth) + ',"provider_name":"OpenAI"}}}'


def odd_usage(mode: str) -> dict[str, Any]:
    """A usage object whose numbers are NaN (``mode`` "nan") or infinite."""
    big = float("nan") if mode == "nan" else float("inf")
    low = float("nan") if mode == "nan" else float("-inf")
    return {
        "prompt_tokens": big,
        "completion_tokens": low,
        "total_tokens": big,
        "cost": big,
        "is_byok": False,
        "prompt_tokens_details": {"cached_tokens": big},
        "completion_tokens_details": {"reasoning_tokens": big},
    }


def key_of(headers: Headers) -> str:
    """The API key the request carried (the Bearer token), or a placeholder."""
    value = (headers.get("authorization") or "").strip()
    scheme, _, token = value.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else value
    return token or "(no key sent)"


def message_with_key(key: str) -> str:
    """A message of ``MESSAGE_LENGTH`` characters (more if the key is long) with the key at
    character ``KEY_AT``."""
    words = "the upstream provider could not verify the credentials sent with this request; "
    head = ("Authentication failed: " + words * 8)[: KEY_AT - 1] + " "
    text = head + key + " was rejected. "
    filler = "Check the key in your settings and try again. " * 4
    return (text + filler)[: max(MESSAGE_LENGTH, len(text))]


def key_error(place: str, key: str) -> tuple[dict[str, str], str]:
    """Headers and body text of a pre-stream error that echoes ``key`` at ``place``."""
    headers = {"Content-Type": _JSON_TYPE}
    if place == "malformed":
        return headers, '{"error":{"message":"Unauthorized: Bearer ' + key + '","code":40'
    error: dict[str, Any] = {"message": "Invalid credentials", "code": 400}
    if place == "code":
        error["code"] = key
    elif place == "metadata":
        raw = json.dumps({"error": {"message": f"invalid api key {key}"}})
        error["metadata"] = {"raw": raw, "headers": {"Authorization": f"Bearer {key}"}}
    else:
        error["message"] = message_with_key(key)
    return headers, json.dumps({"error": error})


def model_with_key(key: str) -> dict[str, Any]:
    """A ``/models`` entry whose id, name and description echo ``key``."""
    return {
        "id": f"fake/echo-{key}",
        "canonical_slug": f"fake/echo-{key}",
        "name": f"Echo: {key}",
        "created": 1747930371,
        "description": message_with_key(key),
        "context_length": 4096,
        "architecture": {"input_modalities": ["text"], "output_modalities": ["text"]},
        "pricing": {"prompt": "0.000001", "completion": "0.000002"},
        "top_provider": {"context_length": 4096, "max_completion_tokens": None},
        "supported_parameters": ["max_tokens", "temperature"],
        "metadata": {key: key},
    }


def midstream_key_error(key: str) -> dict[str, Any]:
    """The ``error`` of a mid-stream error chunk that echoes ``key``."""
    return {
        "code": 502,
        "message": f"Upstream rejected the key {key} mid-stream",
        "metadata": {"error_type": "provider_unavailable", "key": key},
    }


def write_endless_line(w: Writer, size: int) -> None:
    """``data: `` and ``size`` bytes of ``a`` with no line ending, in pieces of 64 KiB."""
    w.write(b"data: ")
    piece = b"a" * _PIECE
    left = size
    while left > 0:
        w.write(piece[: min(left, _PIECE)])
        left -= _PIECE
    w.flush()
