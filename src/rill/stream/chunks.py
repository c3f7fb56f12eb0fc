"""Server-sent events → chunks → the transcript: the stream's own rules, with no I/O.

``ChunkDecoder.decode(events, out)`` applies, per event, what OpenRouter and the other servers'
dialects mean by it (PROTOCOL.md §3, §8, §10):

- ``data: [DONE]`` ends the answer (``done``); anything after it is not read;
- an ``error`` event is llama.cpp's legacy error field (before late 2025);
- ``data: : …`` is a keep-alive comment that a proxy re-wrapped as data (§8.1): skipped;
- anything else is a JSON chunk: a content-only chunk that repeats a known shape is folded
  without parsing (``Transcript.add_known``); the rest is parsed and folded; an ``error`` key
  raises ``StreamError`` with the upstream's own code and message.

``decode_completion(body, transcript)`` does the same for a whole non-streaming answer.
"""

from __future__ import annotations

import json
from typing import Any

from rill.errors import StreamError
from rill.events import Delta
from rill.stream.protocol import redact
from rill.stream.sse import ServerSentEvent
from rill.stream.transcript import Transcript

#: How much of a bad chunk an error message quotes.
SNIPPET = 80


class ChunkDecoder:
    """``secret`` (the API key) is taken out of every event that is parsed, before an error
    message quotes or cuts it; content read on the fast path is the answer, passed as it is."""

    def __init__(self, transcript: Transcript, secret: str | None = None) -> None:
        self.transcript = transcript
        self.secret = secret if secret and len(secret) >= 8 else None
        self.done = False  # saw ``data: [DONE]``

    def decode(self, events: list[ServerSentEvent], out: list[Delta]) -> None:
        """Fold one read's events, appending their deltas to ``out``; raises ``StreamError``
        (the deltas of the events before the bad one are in ``out`` already)."""
        transcript = self.transcript
        add_known = transcript.add_known
        for event in events:
            data = event.data
            if event.event == "message" and add_known(data, out):
                continue
            if data == "[DONE]":
                self.done = transcript.done = True
                return
            if self.secret is not None and self.secret in data:
                data = redact(data, self.secret)
            if event.event == "error":
                _raise_legacy_error(data, transcript)
            if data.startswith(":"):
                continue
            obj = _loads(data, "the stream sent malformed JSON")
            if type(obj) is dict:
                try:
                    transcript.add_parsed(data, obj, out)
                except (AttributeError, TypeError, KeyError, IndexError):
                    raise _bad_shape(
                        "the stream sent a chunk of an unexpected shape", data
                    ) from None


def decode_completion(body: bytes, transcript: Transcript) -> list[Delta]:
    """Fold a whole ``chat.completion`` object (``"stream": false``, or a server ignoring it)."""
    obj = _loads(body, "the server sent malformed JSON")
    try:
        return transcript.add_completion(obj) if isinstance(obj, dict) else []
    except (AttributeError, TypeError, KeyError, IndexError):
        raise _bad_shape("the server sent an answer of an unexpected shape", body) from None


def _loads(data: str | bytes, what: str) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        raise StreamError(f"{what}: {data[:SNIPPET]!r}", status=200, code="bad_json") from None
    except RecursionError:
        what = what.replace("malformed JSON", "JSON nested too deep to read")
        raise StreamError(what, status=200, code="too_deep") from None


def _bad_shape(what: str, data: str | bytes) -> StreamError:
    return StreamError(f"{what}: {data[:SNIPPET]!r}", status=200, code="bad_chunk")


def _raise_legacy_error(data: str, transcript: Transcript) -> None:
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        obj = {"message": data}
    transcript.add_chunk({"error": obj if isinstance(obj, dict) else {"message": str(obj)}})
