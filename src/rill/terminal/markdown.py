"""Incremental markdown for a terminal: finished blocks are rendered once, the open one is live.

``TerminalMarkdown`` turns the events of ``BlockSplitter`` (``blocks.py``) into terminal output.
In live mode (colour on) the open block's raw text is printed as it streams; when the block
closes, the cursor moves back up over those rows, clears them and prints the block rendered with
rich. Code lines are highlighted one at a time, with a bounded window of preceding lines as lexer
context. Without colour no escape sequence may be written, so nothing can be erased: blocks are
printed only once they are finished (``pending`` tells the caller that text is waiting). The
work per delta is bounded by the size of the open block, never by the length of the answer. rich
and pygments are imported when the first ``TerminalMarkdown`` is built.
"""

from __future__ import annotations

import io
import re
from collections import deque
from typing import TYPE_CHECKING, Any, Literal

from rill.terminal.blocks import (
    Block,
    BlockKind,
    BlockSplitter,
    CodeEnd,
    CodeLine,
    CodeStart,
    MdEvent,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.style import Style
    from rich.syntax import Syntax

__all__ = [
    "Block",
    "BlockKind",
    "BlockSplitter",
    "CodeEnd",
    "CodeLine",
    "CodeStart",
    "MdEvent",
    "TerminalMarkdown",
    "color_system_from_env",
    "make_console",
]

_SGR = re.compile(r"\x1b\[[0-9;]*m")
_TRAILING_SPACES = re.compile(r" +(?=\n)")
#: Lines of a code block kept as lexer context for the next one.
CODE_CONTEXT = 40


def color_system_from_env(env: Any) -> Literal["standard", "256", "truecolor"]:
    """The richest colour system the terminal claims (``COLORTERM``, ``TERM``)."""
    if str(env.get("COLORTERM", "")).lower() in ("truecolor", "24bit"):
        return "truecolor"
    return "256" if "256" in str(env.get("TERM", "")) else "standard"


def make_console(width: int, color: bool, env: Any) -> Console:
    """A rich Console that renders into a string: styles only when ``color`` is on."""
    from rich.console import Console

    return Console(
        file=io.StringIO(),
        width=width,
        force_terminal=color,
        color_system=color_system_from_env(env) if color else None,
        no_color=not color,
        highlight=False,
        markup=False,
        emoji=False,
        soft_wrap=False,
        legacy_windows=False,
        force_jupyter=False,
        force_interactive=False,
    )


class TerminalMarkdown:
    """Markdown deltas in, terminal output out (``feed`` and ``close`` return what to write)."""

    def __init__(
        self,
        *,
        color: bool,
        width: int,
        height: int,
        env: Any,
        code_theme: str = "monokai",
    ) -> None:
        from rich.cells import get_character_cell_size
        from rich.markdown import Markdown
        from rich.padding import Padding
        from rich.syntax import Syntax

        self._markdown = Markdown
        self._padding = Padding
        self._syntax_cls = Syntax
        self._cell_size = get_character_cell_size
        self.live = color
        self.width = max(width, 10)
        self.height = max(height, 3)
        self.code_theme = code_theme
        self.splitter = BlockSplitter()
        self.console = make_console(self.width, color, env)
        self._band: Style = Syntax.get_theme(code_theme).get_background_style()
        self._row = 0  # cursor row inside the live region (0: its first row)
        self._col = 0  # cursor column; == width while a wrap is pending
        self._prev: str | None = None  # kind of the last finished block
        self._sep_done = False  # the blank line before the open block is already printed
        self._syntax: Syntax | None = None
        self._window: deque[str] = deque(maxlen=CODE_CONTEXT)

    @property
    def pending(self) -> bool:
        """Text received but not on the screen yet (only without colour)."""
        return not self.live and self.splitter.has_pending()

    def feed(self, text: str) -> str:
        events = self.splitter.feed(text)
        if not self.live:
            return "".join([self._commit(e) for e in events])
        if not events:
            return self._raw(text)
        return self._replace(events)

    def close(self, *, keep_raw: bool = False) -> str:
        """End of the answer; ``keep_raw`` leaves the live text as it is (after Ctrl-C the
        terminal has echoed ``^C`` into it, so it cannot be measured any more)."""
        events = self.splitter.close()
        if self.live and keep_raw:
            out = "\n" if self._col else ""
            self._row = self._col = 0
            return out
        if not self.live:
            return "".join([self._commit(e) for e in events])
        return self._replace(events) if events else ("\n" if self._col else "")

    # -- live region -------------------------------------------------------------------------

    def _replace(self, events: list[MdEvent]) -> str:
        out: list[str] = []
        if self._row <= self.height - 2:
            if self._row or self._col:
                out.append("\r" + (f"\x1b[{self._row}A" if self._row else "") + "\x1b[J")
        else:
            # The live text has scrolled out of reach: it stays as it is, unrendered.
            out.append("\n" if self._col else "")
            first = events[0]
            if type(first) is Block:
                self._sep(first.kind, first.gap)
            if type(first) in (Block, CodeLine):
                events = events[1:]
        self._row = self._col = 0
        out += [self._commit(e) for e in events]
        out.append(self._raw(self.splitter.live_text()))
        return "".join(out)

    def _raw(self, text: str) -> str:
        """Print raw text into the live region, tracking where the cursor ends up."""
        out = []
        if not (self._row or self._col):
            text = text.lstrip("\n")
            if not text:
                return ""
            if not self.splitter.in_fence and self._predict_sep():
                out.append("\n")
                self._sep_done = True
        width = self.width
        row, col = self._row, self._col
        for i, seg in enumerate(text.split("\n")):
            if i:
                out.append("\n")
                row += 1
                col = 0
            if "\t" in seg:
                seg = _expand_tabs(seg, col)
            if seg.isascii():
                n = len(seg)
                if n and col + n > width:
                    wraps = -(-(col + n - width) // width)
                    row += wraps
                    col = col + n - width * wraps
                else:
                    col += n
            else:
                row, col = self._advance(seg, row, col)
            out.append(seg)
        self._row, self._col = row, col
        return "".join(out)

    def _advance(self, seg: str, row: int, col: int) -> tuple[int, int]:
        """Follow the cursor through non-ASCII text: wide characters wrap early, combining
        marks take no cell."""
        width = self.width
        cell_size = self._cell_size
        for ch in seg:
            w = cell_size(ch)
            if not w:
                continue
            if col + w > width:
                row += 1
                col = 0
            col += w
        return row, col

    def _predict_sep(self) -> bool:
        prev = self._prev
        return prev is not None and (prev != "list" or self.splitter.gap)

    # -- finished output -----------------------------------------------------------------------

    def _sep(self, kind: str, gap: bool) -> str:
        prev, self._prev = self._prev, kind
        done, self._sep_done = self._sep_done, False
        wanted = prev is not None and not (prev == "list" and kind == "list" and not gap)
        return "\n" if wanted and not done else ""

    def _commit(self, event: MdEvent) -> str:
        if type(event) is Block:
            return self._sep(event.kind, event.gap) + self._render_block(event)
        if type(event) is CodeLine:
            return self._render_code_line(event.text)
        if type(event) is CodeStart:
            sep = self._sep("code", event.gap)
            self._start_code(event.lang)
            return sep + self._band_row()
        self._syntax = None
        return self._band_row()

    def _capture(self, renderable: Any) -> str:
        with self.console.capture() as capture:
            self.console.print(renderable)
        return capture.get()

    def _render_block(self, block: Block) -> str:
        md = self._markdown(block.text, code_theme=self.code_theme, hyperlinks=False)
        lines = _TRAILING_SPACES.sub("", self._capture(md)).split("\n")
        start, end = 0, len(lines)
        while start < end and not _SGR.sub("", lines[start]).strip():
            start += 1
        while end > start and not _SGR.sub("", lines[end - 1]).strip():
            end -= 1
        return "\n".join(lines[start:end]) + "\n" if start < end else ""

    def _start_code(self, lang: str) -> None:
        self._window.clear()
        if not self.live:
            return
        # Resolve the lexer once per block (``Syntax`` would look its name up on every call).
        probe = self._syntax_cls("", lang or "text")
        lexer = probe.lexer or probe.default_lexer
        self._syntax = self._syntax_cls("", lexer, theme=self.code_theme, word_wrap=True)

    def _band_row(self) -> str:
        if not self.live:
            return ""
        return self._capture(self._padding("", (0, 1), style=self._band, expand=True))

    def _render_code_line(self, line: str) -> str:
        if self._syntax is None:
            return " " + line.expandtabs(4) + "\n"
        window = self._window
        window.append(line)
        highlighted = self._syntax.highlight("\n".join(window))
        text = highlighted.split("\n", allow_blank=True)[len(window) - 1]
        return self._capture(self._padding(text, (0, 1), style=self._band, expand=True))


def _expand_tabs(seg: str, col: int) -> str:
    """Tabs as the terminal would show them from column ``col`` (stops every 8 cells)."""
    pieces = seg.split("\t")
    out = [pieces[0]]
    col += len(pieces[0])
    for piece in pieces[1:]:
        pad = 8 - col % 8
        out.append(" " * pad + piece)
        col += pad + len(piece)
    return "".join(out)
