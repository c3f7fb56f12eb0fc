"""Attached files as a request carries them: content parts, and a body sent without copies.

An ``Attachment`` is a file's bytes (or an ``http(s)`` URL, passed as is) with its MIME type.
``Attachment.part()`` is its content part in OpenRouter's shapes: ``image_url`` for PNG, JPEG,
GIF and WebP, ``file`` for PDF, ``input_audio`` for WAV and MP3. The base64 text is never built
whole: the part holds an ``Inline`` value, and ``encode_body`` turns a payload into the body's
bytes piece by piece, each piece of the file encoded only as it is sent, so a 20 MB PDF costs its
own bytes and a few megabytes more, not three copies of its base64. A dry run shows an ``Inline``
as its label (``shown``): type, name, size and hash, never the data.

History recognises an attachment's part by the value at its data position (an ``Inline``, or a
``Link`` for a URL), each of which knows its ``Attachment``. No I/O here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
PDF_TYPE = "application/pdf"
AUDIO_FORMATS = {"audio/wav": "wav", "audio/mpeg": "mp3"}
SUPPORTED_TYPES = (*IMAGE_TYPES, PDF_TYPE, *AUDIO_FORMATS)
#: The file extension each type is known by (a name for stdin's bytes, the type from a name).
EXTENSIONS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/webp": ".webp",
    PDF_TYPE: ".pdf",
    "audio/wav": ".wav",
    "audio/mpeg": ".mp3",
}
#: Raw bytes encoded per piece of the body: a multiple of 3, so pieces join into one base64 text.
PIECE = 3 << 18  # 768 KiB in, 1 MiB of base64 out


@dataclass(frozen=True, slots=True, eq=False)
class Attachment:
    """One attached file: ``data`` (None for a URL) or ``url``, its MIME type and its name (the
    file's base name, ``stdin.EXT`` for ``-a -``, or the URL)."""

    mime: str
    name: str
    data: bytes | None = None
    url: str | None = None
    sha256: str | None = None

    @property
    def size(self) -> int | None:
        return None if self.data is None else len(self.data)

    def label(self) -> str:
        """How a dry run and messages show it: ``image/png photo.png 1234 bytes sha256:…``."""
        if self.data is None:
            return f"{self.mime} {self.url}"
        return f"{self.mime} {self.name} {self.size} bytes sha256:{self.sha256}"

    def part(self) -> dict[str, Any]:
        """The content part that sends it."""
        if self.mime in AUDIO_FORMATS:
            data = Inline(self, "")
            return {
                "type": "input_audio",
                "input_audio": {"data": data, "format": AUDIO_FORMATS[self.mime]},
            }
        source: Inline | Link = (
            Link(self) if self.data is None else Inline(self, f"data:{self.mime};base64,")
        )
        if self.mime == PDF_TYPE:
            return {"type": "file", "file": {"filename": self.name, "file_data": source}}
        return {"type": "image_url", "image_url": {"url": source}}

    def record(self) -> dict[str, Any]:
        """What history keeps in the part's place: name or URL, type, size and hash."""
        if self.data is None:
            return {"type": "attachment", "url": self.url, "mime": self.mime}
        return {
            "type": "attachment",
            "name": self.name,
            "mime": self.mime,
            "size": self.size,
            "sha256": self.sha256,
        }


class Inline:
    """A base64 value of the body (a data URL, or audio's bare base64), encoded as it is sent."""

    __slots__ = ("attachment", "prefix")

    def __init__(self, attachment: Attachment, prefix: str) -> None:
        self.attachment = attachment
        self.prefix = prefix

    @property
    def length(self) -> int:
        """The length of its JSON string, quotes included."""
        size = len(self.attachment.data or b"")
        return 2 + len(self.prefix.encode()) + 4 * ((size + 2) // 3)

    def pieces(self) -> Iterator[bytes]:
        """Its JSON string, a piece at a time."""
        import base64

        data = memoryview(self.attachment.data or b"")
        yield b'"' + self.prefix.encode()
        for start in range(0, len(data), PIECE):
            yield base64.b64encode(data[start : start + PIECE])
        yield b'"'


class Link(str):
    """An attachment's URL in its part: a plain string to JSON, which knows its attachment."""

    attachment: Attachment

    def __new__(cls, attachment: Attachment) -> Link:
        link = super().__new__(cls, attachment.url or "")
        link.attachment = attachment
        return link


def attachment_in(part: Any) -> Attachment | None:
    """The attachment a content part sends, if it is one ``Attachment.part`` made."""
    if not isinstance(part, dict):
        return None
    for value in part.values():
        if isinstance(value, dict):
            for inner in value.values():
                if isinstance(inner, Inline | Link):
                    return inner.attachment
    return None


def with_parts(message: dict[str, Any], attachments: list[Attachment]) -> dict[str, Any]:
    """``message`` with the attachments' parts after its text (a string becomes a text part)."""
    if not attachments:
        return message
    content = message.get("content")
    parts = list(content) if isinstance(content, list) else [{"type": "text", "text": content}]
    return {**message, "content": parts + [a.part() for a in attachments]}


class Body:
    """A request body in pieces, with its length; iterated again for each retry."""

    def __init__(self, pieces: list[bytes | Inline]) -> None:
        self._pieces = pieces
        self.length = sum(p.length if isinstance(p, Inline) else len(p) for p in pieces)

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            if isinstance(piece, Inline):
                yield from piece.pieces()
            else:
                yield piece


def encode_body(payload: dict[str, Any]) -> bytes | Body:
    """The JSON body of ``payload`` as httpx would encode it; with ``Inline`` values, a ``Body``
    whose file data is encoded only while it is sent."""
    import secrets

    inline: list[Inline] = []
    token = f"rill-inline-{secrets.token_hex(8)}-"

    def stand_in(value: Any) -> str:
        if not isinstance(value, Inline):
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
        inline.append(value)
        return f"{token}{len(inline) - 1}"

    text = json.dumps(
        payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=stand_in
    )
    if not inline:
        return text.encode("utf-8")
    pieces: list[bytes | Inline] = []
    rest = text
    for number, value in enumerate(inline):
        before, _, rest = rest.partition(f'"{token}{number}"')
        pieces += [before.encode("utf-8"), value]
    pieces.append(rest.encode("utf-8"))
    return Body(pieces)


def shown(value: Any) -> str:
    """``json.dumps``'s ``default`` for a dry run: an ``Inline`` as its label, never its data."""
    if isinstance(value, Inline):
        return f"<{value.attachment.label()}>"
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
