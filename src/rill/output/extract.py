"""``-x/--extract`` and ``--extract-last``: only a fenced code block's contents reach stdout.

``FenceExtractor`` reads the answer as it streams, in deltas cut anywhere (a fence may arrive
one backtick at a time), and says what may be written now; its output is the same however the
answer is cut. Fences follow CommonMark's rules for top-level blocks:

- an opening fence is a line of at most 3 spaces of indentation, then 3 or more backticks or
  tildes, then an info string (``python``), which for backticks may not hold a backtick;
- the block ends at a line of at most 3 spaces, then the same character, at least as many times,
  then only spaces or tabs; anything else (a shorter fence, the other character, a fence with an
  info string) is content, so fences nested in a longer fence are content;
- each content line loses as many leading spaces as the opening fence had (at most);
- a block left open runs to the end of the answer.

The first block streams: a line is written as soon as it cannot be the closing fence, so code
reaches stdout while it arrives. The last block is known only at the end, so ``--extract-last``
writes it then. An answer without a fenced block is written whole, at the end.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Protocol

from rill.events import Chunk, Delta, Start, Terminal
from rill.stream.transcript import Transcript

_OPENING = re.compile(r"( {0,3})(`{3,}|~{3,})(.*)", re.DOTALL)
#: A line's start that is a whole fence (the next character differs) and the info so far.
_HEAD = re.compile(r"( {0,3})(`{3,}(?=[^`])|~{3,}(?=[^~]))(.*)", re.DOTALL)
#: The start of a line that may still become an opening fence.
_COULD_OPEN = re.compile(r" {0,3}(?:`{0,2}|~{0,2}|`{3,}[^`]*|~{3,}.*)", re.DOTALL)
_OUTSIDE, _INSIDE, _DONE = 0, 1, 2


class FenceExtractor:
    """The contents of the first (or, with ``last``, the last) fenced code block of a text fed
    in pieces: ``feed`` returns what may be written now, ``finish`` the rest."""

    def __init__(self, *, last: bool = False) -> None:
        self.last = last
        self.found = False
        """Whether a fenced block has opened (else the whole text is the output)."""
        self._state = _OUTSIDE
        self._pending = ""  # the current line, not yet decided
        self._decided = False  # the current line is content (not a closing fence)
        self._whole: list[str] = []  # the text so far, while no block has opened
        self._block: list[str] = []  # --extract-last: the open block's content
        self._last_block = ""  # --extract-last: the last closed block's content
        self._char = ""
        self._length = 0
        self._indent = 0
        self._could_close: re.Pattern[str] | None = None
        self._closes: re.Pattern[str] | None = None
        self._head: tuple[int, str] | None = None  # an opening fence whose info string arrives

    @property
    def held(self) -> int:
        """Characters of the current line held back until it is decided."""
        return len(self._pending)

    def feed(self, text: str) -> str:
        """Take the next piece of the answer; returns what may be written now."""
        if not self.found:
            self._whole.append(text)
        out: list[str] = []
        i, size = 0, len(text)
        while i < size and self._state != _DONE:
            newline = text.find("\n", i)
            end = size if newline < 0 else newline + 1
            if self._head is not None:  # the rest of an opening fence's line: its info string
                if self._head[1][0] == "`" and "`" in text[i:end]:
                    self._head, self._decided = None, newline < 0  # not a fence after all
                elif newline >= 0:
                    self._open_block(*self._head)
                    self._head = None
                i = end
                continue
            if self._decided:  # the rest of a content line, or of a line that opens nothing
                if self._state == _INSIDE:
                    self._content(text[i:end], out)
                self._decided = newline < 0
                i = end
                continue
            self._pending += text[i:end]
            i = end
            if newline >= 0:
                line, self._pending = self._pending, ""
                self._line(line, out)
            elif self._state == _INSIDE:
                self._decide(out)
            elif (head := _HEAD.fullmatch(self._pending)) is not None:
                # A fence and the start of its info string: the rest need not be kept.
                indent, fence, info = head.groups()
                self._pending = ""
                if fence[0] == "`" and "`" in info:
                    self._decided = True
                else:
                    self._head = (len(indent), fence)
            elif not _COULD_OPEN.fullmatch(self._pending):
                self._pending, self._decided = "", True  # prose: not kept until its end
        return "".join(out)

    def finish(self) -> str:
        """The end of the answer: what is left to write."""
        out: list[str] = []
        if self._head is not None:
            self._open_block(*self._head)
            self._head = None
        if self._pending and self._state != _DONE:
            line, self._pending = self._pending, ""
            self._line(line, out)
        if not self.found:
            return "".join(self._whole)
        if self.last:
            return "".join(self._block) if self._state == _INSIDE else self._last_block
        return "".join(out)

    # -- lines --------------------------------------------------------------------------------

    def _line(self, line: str, out: list[str]) -> None:
        """A whole line (with its newline, except at the end of the answer)."""
        if self._state == _OUTSIDE:
            self._open(line)
        elif self._closes is not None and self._closes.fullmatch(line):
            self._state = _DONE if not self.last else _OUTSIDE
            if self.last:
                self._last_block = "".join(self._block)
                self._block = []
        else:
            self._content(_dedent(line, self._indent), out)

    def _open(self, line: str) -> None:
        match = _OPENING.fullmatch(line.rstrip("\n").rstrip("\r"))
        if match is None:
            return
        indent, fence, info = match.groups()
        if fence[0] == "`" and "`" in info:
            return  # inline code spanning a line, not a fence (CommonMark)
        self._open_block(len(indent), fence)

    def _open_block(self, indent: int, fence: str) -> None:
        self.found = True
        self._whole = []
        self._state = _INSIDE
        self._char, self._length, self._indent = fence[0], len(fence), indent
        c = re.escape(self._char)
        self._closes = re.compile(rf" {{0,3}}{c}{{{self._length},}}[ \t]*\r?\n?")
        self._could_close = re.compile(rf" {{0,3}}(?:{c}*|{c}{{{self._length},}}[ \t\r]*)")
        self._block = []

    def _decide(self, out: list[str]) -> None:
        """A partial line inside a block is written once it cannot be the closing fence."""
        if self._could_close is not None and self._could_close.fullmatch(self._pending):
            return
        self._decided = True
        line, self._pending = self._pending, ""
        self._content(_dedent(line, self._indent), out)

    def _content(self, text: str, out: list[str]) -> None:
        if text:
            (self._block if self.last else out).append(text)


def _dedent(line: str, indent: int) -> str:
    """``line`` without up to ``indent`` leading spaces."""
    n = 0
    while n < indent and n < len(line) and line[n] == " ":
        n += 1
    return line[n:]


def extract(text: str, *, last: bool = False) -> str:
    """What ``-x`` (``--extract-last`` with ``last``) writes for the whole answer ``text``."""
    extractor = FenceExtractor(last=last)
    return extractor.feed(text) + extractor.finish()


class TextFilter(Protocol):
    """What written text goes through (``rill.terminal.safe.SafeText`` on a terminal)."""

    def feed(self, text: str) -> str: ...

    def flush(self) -> str: ...


class ExtractRenderer:
    """``-x``/``--extract-last`` on ``--format text``: the block's contents, byte-exact in a
    pipe; on a terminal through ``filt`` (control sequences made visible), with a final newline
    when missing."""

    def __init__(
        self,
        out: BinaryIO,
        *,
        last: bool = False,
        tty: bool = False,
        filt: TextFilter | None = None,
    ) -> None:
        self.out = out
        self.tty = tty
        self.filt = filt
        self.extractor = FenceExtractor(last=last)
        self.last = ""

    def start(self, event: Start, transcript: Transcript) -> None:
        pass

    def deltas(self, raw: bytes, deltas: list[Delta]) -> None:
        text = "".join([d.content for d in deltas if type(d) is Chunk])
        if text:
            self._write(self.extractor.feed(text))

    def finish(self, event: Terminal) -> None:
        self._write(self.extractor.finish())
        if self.filt is not None:
            self._write(self.filt.flush(), filtered=True)
        if self.tty and self.last and self.last != "\n":
            self._write("\n", filtered=True)

    def _write(self, text: str, *, filtered: bool = False) -> None:
        if text and self.filt is not None and not filtered:
            text = self.filt.feed(text)
        if text:
            self.out.write(text.encode("utf-8", "replace"))
            self.out.flush()
            self.last = text[-1]
