"""HTTP/1.1 chunked transfer coding (RFC 9112 §7.1): bytes in, body bytes out, no I/O.

``ChunkedDecoder`` exists for speed. A streaming chat answer comes as one HTTP chunk per SSE
event — 100,000 of them for a long answer — and h11 (under httpx) spends about 4 µs on each:
a state machine step, a regex and an event object per chunk, more than everything else rill
does per event. This decoder works on whole network reads: it returns the payload of every
chunk a read completes, joined, in a few slice operations per chunk.

It accepts what h11 accepts (as httpcore configures it), so a body decodes the same whichever
path reads it:

- a chunk-size line is 1 to 20 hex digits, an optional extension (``;`` and anything but a line
  end, ignored), optional trailing spaces or tabs, and CRLF; it may be at most 100 KiB long;
- chunk data is followed by exactly CRLF;
- after the last chunk (size 0) come trailer lines, ended by an empty line (LF or CRLF line
  ends), at most 100 KiB of them.

Anything else raises ``ChunkedError``. One deliberate difference: trailer lines are not
checked, where h11 rejects one that is not a well-formed header field. They come after the
whole body, and nothing in them changes it. Bytes after the end of the body are ignored.
"""

from __future__ import annotations

import re

__all__ = ["ChunkedDecoder", "ChunkedError"]

_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*")
_TRAILER_END = re.compile(rb"\n\r?\n")
MAX_LINE = 100 * 1024  # httpcore's limit for h11's incomplete events (max_incomplete_event_size)
_CACHE_LIMIT = 4096


class ChunkedError(ValueError):
    """The body broke the chunked framing; ``body`` is the payload that came before the fault."""

    def __init__(self, message: str, body: bytes = b"") -> None:
        super().__init__(message)
        self.body = body


class ChunkedDecoder:
    def __init__(self) -> None:
        self.done = False  # the last chunk and the trailer section have been read
        self._pending = b""  # an incomplete size line or trailer section
        self._left = 0  # bytes of chunk data still to come
        self._crlf = b""  # what is left to see of the CRLF after chunk data
        self._trailer = False
        self._sizes: dict[bytes, int] = {}  # size line → size; a stream repeats few of them

    def feed(self, data: bytes) -> bytes:
        """Take the next bytes of the body as received; return the payload they complete.

        On a framing fault, raises ``ChunkedError`` carrying the payload before the fault.
        """
        if self.done:
            return b""
        if self._pending:
            data = self._pending + data
            self._pending = b""
        out: list[bytes] = []
        try:
            self._feed(data, out)
        except ChunkedError as exc:
            exc.body = b"".join(out)
            raise
        return b"".join(out)

    def _feed(self, data: bytes, out: list[bytes]) -> None:
        pos = 0
        end = len(data)
        find = data.find
        sizes = self._sizes
        while pos < end:
            left = self._left
            if left:
                stop = pos + left
                if stop > end:
                    out.append(data[pos:])
                    self._left = stop - end
                    break
                out.append(data[pos:stop])
                self._left = 0
                pos = stop
                if data[pos : pos + 2] == b"\r\n":  # the usual case: the CRLF is here too
                    pos += 2
                    continue
                self._crlf = b"\r\n"
            if self._crlf:
                pos = self._footer(data, pos)
                continue
            if self._trailer:
                self._read_trailer(data[pos:])
                break
            # The usual case, at a size line: whole chunks, each with its CRLF, one after another.
            while True:
                line_end = find(b"\r\n", pos)
                if line_end < 0:
                    break
                size = sizes.get(data[pos:line_end])
                if not size:  # a new size line, the last chunk, or an error: the general path
                    break
                start = line_end + 2
                stop = start + size
                if stop + 2 > end or not data.startswith(b"\r\n", stop):
                    break
                out.append(data[start:stop])
                pos = stop + 2
            if line_end < 0:
                self._pending = data[pos:]
                if len(self._pending) > MAX_LINE:
                    raise ChunkedError("chunk-size line too long")
                break
            line = data[pos:line_end]
            size = sizes.get(line)
            if size is None:
                size = self._size(line)
            pos = line_end + 2
            if size:
                self._left = size
            else:
                self._trailer = True

    def _footer(self, data: bytes, pos: int) -> int:
        expected = self._crlf
        got = data[pos : pos + len(expected)]
        if got != expected[: len(got)]:
            raise ChunkedError(f"malformed chunk footer: {got!r} (expected {expected!r})")
        self._crlf = expected[len(got) :]
        return pos + len(got)

    def _size(self, line: bytes) -> int:
        match = _SIZE_LINE.fullmatch(line)
        if match is None:
            raise ChunkedError(f"illegal chunk header: {line[:40]!r}")
        size = int(match[1], 16)
        if len(self._sizes) < _CACHE_LIMIT:
            self._sizes[line] = size
        return size

    def _read_trailer(self, data: bytes) -> None:
        if data[:1] == b"\n" or data[:2] == b"\r\n":
            self.done = True
            return
        match = _TRAILER_END.search(data)
        if match is not None:
            self.done = True
            return
        if len(data) > MAX_LINE:
            raise ChunkedError("trailer section too long")
        self._pending = data
