"""What rill does differently when a human is watching: ``for_terminal`` wraps a plain renderer.

Only runs whose stdout or stderr is a terminal get here; pipes and files keep the exact bytes of
``render.py``. The wrapper adds:

- a waiting indicator on stderr (a spinner with elapsed seconds, redrawn by a daemon thread at
  10 Hz) while nothing is on the screen yet: before the first token and while hidden reasoning
  streams. It is erased (``\\r``, blanks, ``\\r``: no escape sequence) before anything else is
  written; while it runs, ``sys.stderr`` is wrapped so that other notes (retries) erase it too;
- the answer rendered as markdown (``mdstream.py``) when stdout is a terminal, or written as
  plain text with ``--no-markdown``;
- reasoning, dimmed, on stderr, followed by a blank line once the answer starts;
- safe output: control characters in model text are made visible (``neutralise``), so an answer
  cannot set the window title, write the clipboard (OSC 52), plant hyperlinks, move the cursor
  or hide text with ``\\r`` / backspace. ``--raw`` turns this off and writes the answer as the
  model sent it (and so also turns markdown off);
- one colour policy for both streams, rich or not: ``color_enabled``.

Nothing here imports rich at module level: the markdown renderer pulls it in when the upstream
has accepted the request.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, TextIO, cast

from rill.events import Chunk, Delta, Done, Reasoning, Start, Terminal, ToolCall
from rill.output.formats import OutputFormat, Renderer

if TYPE_CHECKING:
    from rill.config.settings import Settings
    from rill.stream.transcript import Transcript
    from rill.terminal.markdown import TerminalMarkdown

DIM = "\x1b[2m"
RESET = "\x1b[0m"


# -- colour policy ----------------------------------------------------------------------------


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def color_enabled(stream: Any, setting: str = "auto", env: Mapping[str, str] | None = None) -> bool:
    """Whether styles may be written to ``stream``.

    ``--color always|never`` (or ``color`` in config.toml) decides outright. With ``auto``: a
    non-empty ``NO_COLOR`` turns colour off, then a non-empty ``FORCE_COLOR`` turns it on even
    for a pipe; otherwise colour is on for a terminal whose ``TERM`` is not ``dumb``.
    """
    if setting == "always":
        return True
    if setting == "never":
        return False
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return False
    if env.get("FORCE_COLOR"):
        return True
    return env.get("TERM") != "dumb" and _isatty(stream)


# -- safe output ------------------------------------------------------------------------------

#: C0 controls but tab and newline, DEL, C1 controls, lone surrogates (undecodable bytes, which
#: would otherwise reach the terminal as raw 8-bit C1 codes), and CRLF (kept as a newline).
_UNSAFE = re.compile("\r\n|[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


def _visible(m: re.Match[str]) -> str:
    s = m.group()
    if s == "\r\n":
        return "\n"
    code = ord(s)
    if code < 0x20:
        return chr(0x2400 + code)  # Unicode control pictures: ESC is shown as "␛"
    if code == 0x7F:
        return "\u2421"  # ␡
    if code <= 0x9F:
        return "\u241b" + chr(code - 0x40)  # a C1 code as its 7-bit spelling: CSI is "␛["
    return "\ufffd"


def neutralise(text: str) -> str:
    """Make terminal control characters in ``text`` visible; ``\\n`` and ``\\t`` stay."""
    return _UNSAFE.sub(_visible, text) if _UNSAFE.search(text) else text


class SafeText:
    """``neutralise`` for a stream of deltas: a CR at the end of one delta waits for the next,
    which decides whether it is half of a CRLF (a newline) or a bare CR (shown as ``␍``)."""

    def __init__(self) -> None:
        self._cr = False

    def feed(self, text: str) -> str:
        if self._cr:
            text = "\r" + text
            self._cr = False
        if text.endswith("\r"):
            text = text[:-1]
            self._cr = True
        return neutralise(text)

    def flush(self) -> str:
        if self._cr:
            self._cr = False
            return "\u240d"
        return ""


class _Exact:
    """``--raw``: the text as the model sent it."""

    def feed(self, text: str) -> str:
        return text

    def flush(self) -> str:
        return ""


# -- waiting indicator ------------------------------------------------------------------------


class Spinner:
    """A spinner with elapsed seconds on a terminal stream, drawn from a daemon thread.

    Everyone who writes to that terminal does it inside ``with spinner.writing():``, which
    erases the spinner first; the thread redraws it at its next tick if it is still ``enabled``
    and the last write ended a line. ``stop`` erases it for good.
    """

    FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"

    def __init__(
        self,
        stream: TextIO,
        *,
        color: bool,
        interval: float = 0.1,
        delay: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.color = color
        self.interval = interval
        self.delay = delay
        self.clock = clock
        self.lock = threading.RLock()
        self.enabled = True
        self.label = ""
        self.at_line_start = True
        self._shown = 0  # cells on the screen
        self._frame = 0
        self._t0 = clock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Spinner:
        self._thread = threading.Thread(target=self._run, name="rill-spinner", daemon=True)
        self._thread.start()
        atexit.register(self.stop)
        return self

    def _run(self) -> None:
        if self._stop.wait(self.delay):
            return
        while True:
            with self.lock:
                if self._stop.is_set():
                    return
                if self.enabled and self.at_line_start:
                    self._draw()
            if self._stop.wait(self.interval):
                return

    def _draw(self) -> None:
        elapsed = self.clock() - self._t0
        label = f"{self.label} " if self.label else ""
        text = f"{self.FRAMES[self._frame % len(self.FRAMES)]} {label}{elapsed:.1f}s"
        self._frame += 1
        pad = " " * max(self._shown - len(text), 0)
        styled = f"{DIM}{text}{RESET}" if self.color else text
        self._write("\r" + styled + pad + ("\b" * len(pad)))
        self._shown = len(text)

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self._stop.set()  # the terminal is gone; nothing left to draw on

    def erase(self) -> None:
        with self.lock:
            if self._shown:
                self._write("\r" + " " * self._shown + "\r")
                self._shown = 0

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self.lock:
            self.erase()
            yield

    def stop(self) -> None:
        self._stop.set()
        self.erase()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(1.0)
        atexit.unregister(self.stop)


class _GuardedStderr:
    """Stands in for ``sys.stderr`` while a spinner may be on it: a note written by anyone
    (a retry warning, an error) erases the spinner first and is never cut by it."""

    def __init__(self, stream: TextIO, spinner: Spinner) -> None:
        self._stream = stream
        self._spinner = spinner

    def write(self, text: str) -> int:
        with self._spinner.writing():
            n = self._stream.write(text)
            if text:
                self._spinner.at_line_start = text.endswith("\n")
            return n

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# -- where the answer goes --------------------------------------------------------------------


class _Sink(Protocol):
    @property
    def pending(self) -> bool: ...

    def write(self, text: str) -> None: ...

    def close(self, *, cancelled: bool) -> None: ...


class _PlainSink:
    """The answer as text (``--no-markdown`` or ``--raw``), with a final newline."""

    pending = False

    def __init__(self, out: BinaryIO, filt: SafeText | _Exact) -> None:
        self.out = out
        self.filt = filt
        self.last = ""

    def _emit(self, text: str) -> None:
        if text:
            self.out.write(text.encode("utf-8", "surrogateescape"))
            self.out.flush()
            self.last = text[-1]

    def write(self, text: str) -> None:
        self._emit(self.filt.feed(text))

    def close(self, *, cancelled: bool) -> None:
        tail = self.filt.flush()
        last = tail[-1:] or self.last
        if last and last != "\n":
            tail += "\n"
        self._emit(tail)


class _MarkdownSink:
    """The answer rendered as markdown; rich is imported by ``prepare`` (or the first write)."""

    def __init__(self, out: BinaryIO, filt: SafeText, *, color: bool, env: Mapping[str, str]):
        self.out = out
        self.filt = filt
        self.color = color
        self.env = env
        self.md: TerminalMarkdown | None = None

    @property
    def pending(self) -> bool:
        return self.md is not None and self.md.pending

    def prepare(self) -> TerminalMarkdown:
        if self.md is None:
            from rill.terminal.markdown import TerminalMarkdown

            width, height = terminal_size(self.out, self.env)
            self.md = TerminalMarkdown(color=self.color, width=width, height=height, env=self.env)
        return self.md

    def _emit(self, text: str) -> None:
        if text:
            self.out.write(text.encode("utf-8", "surrogateescape"))
            self.out.flush()

    def write(self, text: str) -> None:
        self._emit(self.prepare().feed(self.filt.feed(text)))

    def close(self, *, cancelled: bool) -> None:
        md = self.prepare()
        rest = self.filt.flush()
        self._emit((md.feed(rest) if rest else "") + md.close(keep_raw=cancelled))


def terminal_size(stream: Any, env: Mapping[str, str]) -> tuple[int, int]:
    """Columns and lines: ``COLUMNS``/``LINES`` when set, else the terminal's, else 80×24."""
    try:
        size = os.get_terminal_size(stream.fileno())
        width, height = size.columns or 80, size.lines or 24
    except (AttributeError, ValueError, OSError):
        width, height = 80, 24
    columns, lines = env.get("COLUMNS", ""), env.get("LINES", "")
    width = int(columns) if columns.isdigit() and int(columns) else width
    height = int(lines) if lines.isdigit() and int(lines) else height
    return width, height


class _Reasoning:
    """Reasoning on stderr, dimmed when colour is on."""

    def __init__(self, err: TextIO, filt: SafeText | _Exact, *, color: bool) -> None:
        self.err = err
        self.filt = filt
        self.color = color
        self.shown = False
        self.last = "\n"

    def write(self, text: str) -> None:
        text = self.filt.feed(text)
        if text:
            styled = f"{DIM}{text}{RESET}" if self.color else text
            self.err.write(styled)
            self.err.flush()
            self.shown = True
            self.last = text[-1]

    def end(self, *, blank_line: bool) -> None:
        """Close the reasoning: end its line, and leave a blank line before the answer."""
        if not self.shown:
            return
        rest = self.filt.flush()
        tail = f"{DIM}{rest}{RESET}" if self.color and rest else rest
        if (rest[-1:] or self.last) != "\n":
            tail += "\n"
        if blank_line:
            tail += "\n"
        self.err.write(tail)
        self.err.flush()
        self.shown = False


def _nothing() -> None:
    pass


# -- the wrappers ------------------------------------------------------------------------------


class _Base:
    def __init__(self, inner: Renderer, spinner: Spinner | None, restore: Callable[[], None]):
        self.inner = inner
        self.spinner = spinner
        self._restore = restore

    @contextmanager
    def _writing(self) -> Iterator[None]:
        if self.spinner is None:
            yield
        else:
            with self.spinner.writing():
                yield

    def _stop_spinner(self) -> None:
        if self.spinner is not None:
            self.spinner.stop()
            self.spinner = None

    def _waiting_for(self, label: str) -> None:
        if self.spinner is not None:
            self.spinner.label = label

    def _end(self) -> None:
        self._stop_spinner()
        self._restore()


class TerminalText(_Base):
    """``--format text`` with a terminal on stdout and/or stderr."""

    def __init__(
        self,
        inner: Renderer,
        *,
        sink: _Sink | None,
        reasoning: _Reasoning | None,
        spinner: Spinner | None,
        restore: Callable[[], None] = _nothing,
    ) -> None:
        super().__init__(inner, spinner, restore)
        self.sink = sink
        self.reasoning = reasoning
        self.answering = False

    def start(self, event: Start, transcript: Transcript) -> None:
        self.inner.start(event, transcript)
        if isinstance(self.sink, _MarkdownSink):
            self.sink.prepare()

    def deltas(self, raw: bytes, deltas: list[Delta]) -> None:
        if not deltas:
            return
        content = "".join([d.content for d in deltas if type(d) is Chunk])
        # Reasoning is shown until the answer starts; a late piece would land inside the
        # answer's live block on the same screen, so it is left to history and --format.
        if not self.answering:
            thought = "".join([d.content for d in deltas if type(d) is Reasoning])
            if thought and self.reasoning is not None:
                with self._writing():
                    if self.spinner is not None:
                        self.spinner.enabled = False
                    self.reasoning.write(thought)
            elif thought:
                self._waiting_for("thinking")
            if content or any(type(d) is ToolCall for d in deltas):
                self._waiting_for("")
            if content:
                self.answering = True
                if self.reasoning is not None:
                    with self._writing():
                        self.reasoning.end(blank_line=True)
        if not content:
            return
        sink = self.sink
        if sink is None:  # stdout is not a terminal: exact bytes
            self._stop_spinner()
            self.inner.deltas(raw, deltas)
            return
        with self._writing():
            sink.write(content)
            if self.spinner is not None:
                self.spinner.enabled = sink.pending
        if not sink.pending:
            self._stop_spinner()

    def finish(self, event: Terminal) -> None:
        try:
            self._stop_spinner()
            if self.reasoning is not None:
                self.reasoning.end(blank_line=False)
            if self.sink is None:
                self.inner.finish(event)
            else:
                cancelled = isinstance(event, Done) and event.finish_reason == "cancelled"
                self.sink.close(cancelled=cancelled)
        finally:
            self._end()


class TerminalEvents(_Base):
    """The machine formats: only the waiting indicator is added, the bytes are untouched."""

    def __init__(
        self,
        inner: Renderer,
        *,
        fmt: OutputFormat,
        stdout_tty: bool,
        spinner: Spinner | None,
        restore: Callable[[], None] = _nothing,
    ) -> None:
        super().__init__(inner, spinner, restore)
        # On a terminal stdout, every format but ``json`` writes from ``start`` on.
        self.writes_early = stdout_tty and fmt is not OutputFormat.json

    def start(self, event: Start, transcript: Transcript) -> None:
        if self.writes_early:
            self._stop_spinner()
        self.inner.start(event, transcript)

    def deltas(self, raw: bytes, deltas: list[Delta]) -> None:
        if any(type(d) is not Reasoning for d in deltas):
            self._stop_spinner()
        elif deltas:
            self._waiting_for("thinking")
        with self._writing():
            self.inner.deltas(raw, deltas)

    def finish(self, event: Terminal) -> None:
        try:
            self._stop_spinner()
            self.inner.finish(event)
        finally:
            self._end()


def for_terminal(
    renderer: Renderer,
    *,
    fmt: OutputFormat,
    settings: Settings,
    stdout_tty: bool,
    stderr_tty: bool,
    raw: bool,
    out: BinaryIO | None = None,
    err: TextIO | None = None,
    env: Mapping[str, str] | None = None,
) -> Renderer:
    """Wrap ``renderer`` (built for ``out``) with what a terminal needs.

    ``out`` and ``err`` default to the process's stdout (bytes) and stderr; when ``err`` is the
    real ``sys.stderr``, it is replaced by a guard until the run finishes, so that other notes
    erase the spinner first. ``env`` defaults to ``os.environ``.
    """
    env = os.environ if env is None else env
    out = sys.stdout.buffer if out is None else out
    guard = err is None
    err = sys.stderr if err is None else err
    err_color = color_enabled(err, settings.color, env)

    spinner = None
    restore: Callable[[], None] = _nothing
    if stderr_tty:
        spinner = Spinner(err, color=err_color).start()
        if guard:
            restore = _guard_stderr(err, spinner)

    if fmt is not OutputFormat.text:
        return TerminalEvents(
            renderer, fmt=fmt, stdout_tty=stdout_tty, spinner=spinner, restore=restore
        )

    def filt() -> SafeText | _Exact:
        return _Exact() if raw else SafeText()

    sink: _Sink | None = None
    if stdout_tty:
        out_color = color_enabled(out, settings.color, env)
        markdown = settings.markdown if settings.markdown is not None else True
        if markdown and not raw:
            sink = _MarkdownSink(out, SafeText(), color=out_color, env=env)
        else:
            sink = _PlainSink(out, filt())
    show = settings.show_reasoning if settings.show_reasoning is not None else stderr_tty
    reasoning = (
        _Reasoning(err, filt() if stderr_tty else _Exact(), color=err_color) if show else None
    )
    return TerminalText(renderer, sink=sink, reasoning=reasoning, spinner=spinner, restore=restore)


def _guard_stderr(err: TextIO, spinner: Spinner) -> Callable[[], None]:
    guard = cast(TextIO, _GuardedStderr(err, spinner))
    sys.stderr = guard

    def restore() -> None:
        if sys.stderr is guard:
            sys.stderr = err

    return restore
