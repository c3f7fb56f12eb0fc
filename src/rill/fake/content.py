"""Content parts as OpenRouter checks them: a malformed part is a 400 naming where it is.

``problem(body)`` is the first thing wrong with the messages' content parts (None: all well):
an unknown part type, a text part without text, an image that is neither an http(s) URL nor a
base64 ``data:`` URL of PNG, JPEG, GIF or WebP, a file without base64 PDF data or a URL, audio
that is not bare base64 in a known format. ``received(body)`` describes every file part that
arrived (kind, MIME type, name, size and sha256 of the decoded bytes, or the URL), so tests and
the fake server's log can compare what was sent with the files on disk; ``log_entry`` is one
line of that log (``rill fake-server --log FILE``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from typing import Any

PART_TYPES = ("text", "image_url", "file", "input_audio", "video_url")
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
AUDIO_FORMATS = ("wav", "mp3", "aiff", "aac", "ogg", "flac", "m4a")
_DATA_URL = re.compile(r"data:([a-z0-9.+/-]+);base64,", re.I)


def _decoded(text: str) -> bytes | None:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def _data_url(value: Any) -> tuple[str, bytes] | None:
    """(MIME type, bytes) of a base64 data URL, else None."""
    if not isinstance(value, str):
        return None
    match = _DATA_URL.match(value)
    if match is None:
        return None
    data = _decoded(value[match.end() :])
    return None if data is None else (match.group(1).lower(), data)


def _is_web_url(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"https?://[^/\s]+", value) is not None


def _part_problem(part: Any) -> str | None:
    """What is wrong with one content part, as OpenRouter's validation words it."""
    if not isinstance(part, dict):
        return "Expected object, received " + type(part).__name__
    kind = part.get("type")
    if kind not in PART_TYPES:
        expected = " | ".join(f"'{t}'" for t in PART_TYPES)
        return f"type: Invalid discriminator value. Expected {expected}"
    if kind == "text":
        return None if isinstance(part.get("text"), str) else "text: Required"
    inner = part.get(kind)
    if not isinstance(inner, dict):
        return f"{kind}: Required"
    if kind == "image_url":
        url = inner.get("url")
        data = _data_url(url)
        if _is_web_url(url) or (data is not None and data[0] in IMAGE_TYPES):
            return None
        return "image_url.url: Invalid image: expected an http(s) URL or a base64 data URL"
    if kind == "file":
        file_data = inner.get("file_data")
        if _is_web_url(file_data) or _data_url(file_data) is not None:
            return None
        return "file.file_data: Invalid file: expected a URL or a base64 data URL"
    if kind == "input_audio":
        if inner.get("format") not in AUDIO_FORMATS:
            return "input_audio.format: Invalid enum value. Expected " + " | ".join(
                f"'{f}'" for f in AUDIO_FORMATS
            )
        data = inner.get("data")
        if not (isinstance(data, str) and data and _decoded(data) is not None):
            return "input_audio.data: Invalid audio: expected base64-encoded data"
    return None


def problem(body: dict[str, Any]) -> str | None:
    """The first malformed content part of ``body``'s messages, as an error message."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for m, message in enumerate(messages):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for p, part in enumerate(content):
            found = _part_problem(part)
            if found is not None:
                return f"Invalid input: messages[{m}].content[{p}].{found}"
    return None


def _described(kind: str, mime: str, name: str | None, data: bytes) -> dict[str, Any]:
    return {
        "kind": kind,
        "mime": mime,
        "name": name,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }


def received(body: Any) -> list[dict[str, Any]]:
    """Every file part of ``body``, in order: decoded and hashed, or its URL."""
    out: list[dict[str, Any]] = []
    messages = body.get("messages") if isinstance(body, dict) else None
    for message in messages if isinstance(messages, list) else []:
        content = message.get("content") if isinstance(message, dict) else None
        for part in content if isinstance(content, list) else []:
            kind = str(part.get("type")) if isinstance(part, dict) else ""
            inner = part.get(kind) if kind in ("image_url", "file", "input_audio") else None
            if not isinstance(inner, dict):
                continue
            value = inner.get({"image_url": "url", "file": "file_data"}.get(kind, "data"))
            name = inner.get("filename")
            if kind == "input_audio":
                data = _decoded(value) if isinstance(value, str) else None
                fmt = inner.get("format")
                if data is not None:
                    out.append(_described("input_audio", f"audio/{fmt}", name, data))
                continue
            decoded = _data_url(value)
            if decoded is not None:
                out.append(_described(kind, decoded[0], name, decoded[1]))
            elif isinstance(value, str):
                out.append({"kind": kind, "url": value, "name": name})
    return out


def log_entry(
    body: dict[str, Any], files: list[dict[str, Any]], error: str | None
) -> dict[str, Any]:
    """What ``--log`` writes for one chat request: the model, each message's role and text, the
    files received (never their data) and the 400's message when a part was malformed."""
    messages = body.get("messages")
    said = []
    for message in messages if isinstance(messages, list) else []:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, list):
            texts = (p.get("text") for p in content if isinstance(p, dict))
            content = "\n".join(t for t in texts if isinstance(t, str))
        said.append({"role": message.get("role"), "text": content})
    entry: dict[str, Any] = {"model": body.get("model"), "messages": said, "attachments": files}
    if error is not None:
        entry["error"] = error
    return entry
