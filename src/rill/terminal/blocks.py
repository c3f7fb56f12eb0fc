"""Streamed markdown cut into blocks at line boundaries (no I/O, no rich).

``BlockSplitter`` cuts streamed markdown into blocks: a paragraph (or table, quote, HTML) ends at
a blank line or where another block starts, a heading or a rule is one line, each top-level list
item is its own block, and a fenced code block is reported line by line (``CodeStart``,
``CodeLine``..., ``CodeEnd``) so that a long listing never has to be redrawn. Only lines decide
anything, so a fence split across deltas is found once its line is complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

BlockKind = Literal["para", "list", "heading", "rule"]

_FENCE = re.compile(r"^( {0,3})(`{3,}|~{3,})(.*)$")
_HEADING = re.compile(r"^ {0,3}#{1,6}(?:[ \t]|$)")
_SETEXT = re.compile(r"^ {0,3}(?:=+|-+)[ \t]*$")
_RULE = re.compile(r"^ {0,3}(?:(?:-[ \t]*){3,}|(?:\*[ \t]*){3,}|(?:_[ \t]*){3,})$")
_ITEM = re.compile(r"^( {0,3})(?:[-*+]|\d{1,9}[.)])(?:[ \t]|$)")


@dataclass(frozen=True, slots=True)
class Block:
    kind: BlockKind
    text: str
    gap: bool
    """A blank line separated it from what came before."""


@dataclass(frozen=True, slots=True)
class CodeStart:
    lang: str
    gap: bool


@dataclass(frozen=True, slots=True)
class CodeLine:
    text: str


@dataclass(frozen=True, slots=True)
class CodeEnd:
    pass


MdEvent = Block | CodeStart | CodeLine | CodeEnd


@dataclass(frozen=True, slots=True)
class _Fence:
    char: str
    length: int
    indent: int

    def closed_by(self, line: str) -> bool:
        m = _FENCE.match(line)
        return (
            m is not None
            and m.group(2)[0] == self.char
            and len(m.group(2)) >= self.length
            and not m.group(3).strip()
        )


def _open_fence(line: str) -> tuple[_Fence, str] | None:
    """The fence a line opens and the language named in its info string."""
    m = _FENCE.match(line)
    if m is None or (m.group(2)[0] == "`" and "`" in m.group(3)):
        return None
    info = m.group(3).split()
    return _Fence(m.group(2)[0], len(m.group(2)), len(m.group(1))), info[0] if info else ""


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


class BlockSplitter:
    """Split streamed markdown into blocks; ``feed`` returns the events completed lines caused."""

    def __init__(self) -> None:
        self._parts: list[str] = []  # the current, incomplete line
        self._lines: list[str] = []  # complete lines of the open block
        self._kind: BlockKind | None = None
        self._open_gap = False
        self._gap = False  # a blank line since the last block closed
        self._fence: _Fence | None = None  # inside a fenced code block
        self._nested: _Fence | None = None  # a fence inside the open list item
        self._list_indent = 0
        self._list_blank = False

    @property
    def in_fence(self) -> bool:
        return self._fence is not None

    @property
    def partial(self) -> str:
        parts = self._parts
        if len(parts) > 1:
            parts[:] = ["".join(parts)]
        return parts[0] if parts else ""

    @property
    def gap(self) -> bool:
        """Whether the open block (or the next one, when none is open) follows a blank line."""
        return self._open_gap if self._kind is not None else self._gap

    def live_text(self) -> str:
        """What has been received but not reported in an event: the open block and the partial
        line (blank lines between blocks are left out)."""
        if self._lines:
            return "\n".join(self._lines) + "\n" + self.partial
        return self.partial

    def has_pending(self) -> bool:
        return bool(self._lines) or bool(self.partial.strip())

    def feed(self, text: str) -> list[MdEvent]:
        if "\n" not in text:
            if text:
                self._parts.append(text)
            return []
        events: list[MdEvent] = []
        lines = text.split("\n")
        self._parts.append(lines[0])
        first = "".join(self._parts)
        self._parts = [lines[-1]] if lines[-1] else []
        self._line(first, events)
        for line in lines[1:-1]:
            self._line(line, events)
        return events

    def close(self) -> list[MdEvent]:
        """The text has ended: report everything still open."""
        events: list[MdEvent] = []
        rest = self.partial
        self._parts = []
        if rest:
            self._line(rest, events)
        if self._fence is not None:
            self._fence = None
            events.append(CodeEnd())
        self._close(events)
        return events

    # -- one complete line ---------------------------------------------------------------------

    def _line(self, line: str, events: list[MdEvent]) -> None:
        fence = self._fence
        if fence is not None:
            if fence.closed_by(line):
                self._fence = None
                self._gap = False
                events.append(CodeEnd())
            else:
                n = min(fence.indent, _indent(line))
                events.append(CodeLine(line[n:]))
            return
        if self._kind == "list" and self._list_line(line):
            return
        if not line.strip():
            self._close(events)
            self._gap = True
            return
        opened = _open_fence(line)
        if opened is not None:
            self._close(events)
            self._fence, lang = opened
            events.append(CodeStart(lang, self._take_gap()))
        elif _HEADING.match(line):
            self._close(events)
            events.append(Block("heading", line, self._take_gap()))
        elif self._kind == "para" and _SETEXT.match(line):
            self._lines.append(line)
            self._close(events)
        elif _RULE.match(line):
            self._close(events)
            events.append(Block("rule", line, self._take_gap()))
        elif _ITEM.match(line):
            self._close(events)
            self._start("list", line)
            self._list_indent = _indent(line)
        elif self._kind == "para":
            self._lines.append(line)
        else:
            self._close(events)
            self._start("para", line)

    def _list_line(self, line: str) -> bool:
        """Handle a line while a list item is open; False when the item ends before it."""
        if self._nested is not None:
            self._lines.append(line)
            if self._nested.closed_by(line.lstrip(" ")):
                self._nested = None
            return True
        if not line.strip():
            self._lines.append(line)
            self._list_blank = True
            return True
        if _indent(line) > self._list_indent:
            self._lines.append(line)
            self._list_blank = False
            opened = _open_fence(line.lstrip(" "))
            self._nested = opened[0] if opened else None
            return True
        if self._list_blank:
            return False
        lazy = not (
            _ITEM.match(line) or _HEADING.match(line) or _RULE.match(line) or _open_fence(line)
        )
        if lazy:
            self._lines.append(line)
        return lazy

    def _start(self, kind: BlockKind, line: str) -> None:
        self._kind = kind
        self._lines = [line]
        self._open_gap = self._take_gap()

    def _take_gap(self) -> bool:
        gap, self._gap = self._gap, False
        return gap

    def _close(self, events: list[MdEvent]) -> None:
        if self._kind is None:
            return
        lines = self._lines
        blank_after = False
        while lines and not lines[-1].strip():
            lines.pop()
            blank_after = True
        events.append(Block(self._kind, "\n".join(lines), self._open_gap))
        self._kind = None
        self._lines = []
        self._nested = None
        self._list_blank = False
        self._gap = blank_after
