"""``-a/--attach PATH|URL|-``: files, URLs and stdin into ``Attachment`` values.

A file is read once, whole (its bytes are what is sent and, with history, stored); its type comes
from its first bytes (magic numbers), then from its name; ``--attach-type MIME`` (or ``;type=MIME``
after one path) forces it. An ``http(s)://`` URL is never fetched: its type comes from its path's
extension or the forced type, and an audio URL is refused (OpenRouter takes audio only inline).
``-`` reads stdin's bytes. Whatever cannot be attached is a ``UsageError`` naming it, raised
before anything is sent.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

from rill.errors import UsageError
from rill.stream.parts import AUDIO_FORMATS, EXTENSIONS, SUPPORTED_TYPES, Attachment

#: Other spellings accepted for a forced type.
ALIASES = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "image/jpg": "image/jpeg",
    "gif": "image/gif",
    "webp": "image/webp",
    "pdf": "application/pdf",
    "wav": "audio/wav",
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "mp3": "audio/mpeg",
    "audio/mp3": "audio/mpeg",
}
_BY_EXTENSION = {ext: mime for mime, ext in EXTENSIONS.items()} | {".jpeg": "image/jpeg"}
TYPE_SUFFIX = ";type="


def mime_type(value: str) -> str:
    """A forced type, as a supported MIME type; a usage error names the supported ones."""
    key = value.strip().lower()
    mime = ALIASES.get(key, key)
    if mime not in SUPPORTED_TYPES:
        kinds = ", ".join(SUPPORTED_TYPES)
        raise UsageError(f"cannot attach files of type {value!r}: rill sends {kinds}")
    return mime


def sniff(head: bytes) -> str | None:
    """The type of a file from its first bytes, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if b"%PDF-" in head[:1024]:  # readers accept the header anywhere in the first KiB
        return "application/pdf"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE6 == 0xE2):
        return "audio/mpeg"  # an ID3 tag, or an MPEG audio layer III frame
    return None


def by_name(name: str) -> str | None:
    """The type a file name (or a URL's path) stands for, or None."""
    return _BY_EXTENSION.get(PurePosixPath(name).suffix.lower())


def split_spec(spec: str) -> tuple[str, str | None]:
    """``PATH;type=MIME`` → (PATH, MIME); a bare spec has no forced type."""
    target, sep, forced = spec.rpartition(TYPE_SUFFIX)
    if not sep or not target or os.path.exists(spec):
        return spec, None
    return target, mime_type(forced)


def is_url(spec: str) -> bool:
    return spec.lower().startswith(("http://", "https://"))


def load(spec: str, *, forced: str | None = None, stdin: BinaryIO | None = None) -> Attachment:
    """The attachment ``spec`` (a path, an http(s) URL, or ``-`` for ``stdin``) names."""
    target, own = split_spec(spec)
    forced = own or forced
    if is_url(target):
        return _url(target, forced)
    if target == "-":
        if stdin is None:
            raise UsageError("cannot attach stdin: there is none")
        return _file(stdin.read(), "stdin", "stdin (-a -)", forced, from_stdin=True)
    try:
        with open(target, "rb") as handle:  # noqa: PTH123 - one read of the whole file
            data = handle.read()
    except OSError as exc:
        raise UsageError(f"cannot attach {target}: {exc.strerror or exc}") from None
    return _file(data, os.path.basename(target), target, forced)


def _file(
    data: bytes, name: str, shown: str, forced: str | None, *, from_stdin: bool = False
) -> Attachment:
    if not data:
        raise UsageError(f"cannot attach {shown}: it is empty")
    mime = forced or sniff(data[:1024]) or (None if from_stdin else by_name(name))
    if mime is None:
        raise UsageError(
            f"cannot attach {shown}: not a PNG, JPEG, GIF, WebP, PDF, WAV or MP3 file "
            "(--attach-type MIME forces a type)"
        )
    if from_stdin:
        name = f"stdin{EXTENSIONS[mime]}"
    return Attachment(mime, name, data=data, sha256=hashlib.sha256(data).hexdigest())


def _url(url: str, forced: str | None) -> Attachment:
    parts = urlsplit(url)
    if not parts.hostname:
        raise UsageError(f"cannot attach {url}: not a valid URL")
    mime = forced or by_name(parts.path)
    if mime is None:
        raise UsageError(
            f"cannot attach {url}: its type is not known from its name "
            "(rill never fetches it; give it with --attach-type MIME)"
        )
    if mime in AUDIO_FORMATS:
        raise UsageError(f"cannot attach {url}: audio is sent inline only; download it first")
    return Attachment(mime, url, url=url)


def load_all(
    specs: Iterable[str], *, forced: str | None = None, stdin: BinaryIO | None = None
) -> list[Attachment]:
    """Every attachment, in order; ``-`` may be given once."""
    specs = list(specs)
    if sum(split_spec(spec)[0] == "-" for spec in specs) > 1:
        raise UsageError("-a - reads stdin once: give it only once")
    forced_type = mime_type(forced) if forced else None
    return [load(spec, forced=forced_type, stdin=stdin) for spec in specs]
