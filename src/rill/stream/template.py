"""The stream's fast path: content-only chunks read without a JSON parse (``ContentTemplate``).

Only ``Transcript`` uses it, through ``Transcript.add_known``; nothing else should need it.
"""

from __future__ import annotations

import json
import re
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

_CONTENT_KEY = re.compile(r'"content"[ \t\n\r]*:[ \t\n\r]*')


class ContentTemplate:
    """Read content-only chunks without parsing them, when they match one already parsed.

    Within one answer, a server's content chunks are the same text but for the content: same
    id, model, provider, ``created``, same fields in the same order. ``learn(data, obj)`` takes a
    parsed content-only chunk and keeps the text around its content string token: the head (up
    to the opening quote) and the tail (after the closing quote). ``content(data)`` then checks
    that a chunk is ``head + <the rest of one JSON string token> + tail`` and returns that
    string's value, or None for anything else (which the caller parses as usual).

    This is exact, not a guess: a JSON string token can be swapped for another without changing
    how the rest of the document parses, so a match parses to the learnt object with only its
    content changed — and ``Transcript.add_chunk`` would have done nothing with it but add the
    content. ``learn`` proves the token's place by parsing the chunk again with a different string
    there and comparing. The token is read by json's own string scanner (``scanstring``, strict
    as ``json.loads`` is), so escapes decode alike and what json rejects does not match.

    It saves the full parse, most of rill's cost per event on a fast stream. A server whose chunks
    never repeat (a changing timestamp in each) stops being learnt from after a few tries; the
    caller counts the events it offers in ``seen``.
    """

    __slots__ = ("head", "tail", "seen", "learnt", "_start", "_stop")

    def __init__(self) -> None:
        self.head: str | None = None
        self.tail = ""
        self.seen = 0
        self.learnt = 0
        self._start = 0  # len(head): where the string's characters begin
        self._stop = 0  # -len(tail): where the closing quote must end, from the end

    def content(self, data: str) -> str | None:
        head = self.head
        if head is None or not data.startswith(head) or not data.endswith(self.tail):
            return None
        try:
            value, end = scanstring(data, self._start)
        except ValueError:  # unterminated, a bad escape or a raw control character
            return None
        return value if end == len(data) + self._stop else None

    def learn(self, data: str, obj: dict[str, Any]) -> None:
        if self.learnt >= 8 and self.seen < 64 * self.learnt:
            return  # chunks here do not repeat: stop paying for the tries
        content = _plain_content(obj)
        if content is None:
            return
        marker = content + "\x00"
        for key in _CONTENT_KEY.finditer(data):
            start = key.end() + 1  # after the opening quote
            if data[start - 1 : start] != '"':
                continue
            try:
                end = scanstring(data, start)[1]
                probe = json.loads(data[: start - 1] + json.dumps(marker) + data[end:])
                delta = probe["choices"][0]["delta"]
                if delta["content"] != marker:
                    continue
                delta["content"] = content
            except (ValueError, TypeError, KeyError, IndexError):
                continue
            if probe == obj and end < len(data):
                self.head, self.tail = data[:start], data[end:]
                self._start, self._stop = start, end - len(data)
                self.learnt += 1
                return


def _plain_content(obj: dict[str, Any]) -> str | None:
    """The content of a chunk that ``add_chunk`` folds by only adding content, else None.

    Chunks without an id do not count: until one has come, ``add_chunk`` also takes each chunk's
    model and provider, which a matched chunk would skip.
    """
    if not obj.get("id") or obj.get("error") or obj.get("usage"):
        return None
    choices = obj.get("choices")
    if type(choices) is not list or not choices or type(choices[0]) is not dict:
        return None
    choice = choices[0]
    delta = choice.get("delta")
    if type(delta) is not dict or choice.get("finish_reason"):
        return None
    if (
        delta.get("reasoning")
        or delta.get("reasoning_content")
        or delta.get("reasoning_details")
        or delta.get("tool_calls")
    ):
        return None
    content = delta.get("content")
    return content if type(content) is str and content else None
