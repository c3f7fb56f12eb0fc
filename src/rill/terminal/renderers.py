"""The renderer wrappers a terminal gets: ``for_terminal`` wraps a plain renderer.

Only runs whose stdout or stderr is a terminal get here; pipes and files keep the exact bytes of
``output/formats.py``. The wrapper adds:

- a waiting indicator on stderr (``spinner.py``) while nothing is on the screen yet: before the
  first token and while hidden reasoning streams;
- the answer rendered as markdown (``markdown.py``) when stdout is a terminal, or written as
  plain text with ``--no-markdown``;
- reasoning, dimmed, on stderr, followed by a blank line once the answer starts;
- safe output (``safe.py``); ``--raw`` turns this off and writes the answer as the model sent it
  (and so also turns markdown off);
- one colour policy for both streams (``color.py``).

Nothing here imports rich at module level: the markdown renderer pulls it in when the upstream
has accepted the request.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

from rill.events import Chunk, Delta, Done, Reasoning, Start, Terminal, ToolCall
from rill.output.formats import OutputFormat, Renderer
from rill.terminal.color import color_enabled
from rill.terminal.safe import Exact, SafeText
from rill.terminal.sinks import MarkdownSink, PlainSink, ReasoningSink, Sink
from rill.terminal.spinner import Spinner, guard_stderr

if TYPE_CHECKING:
    from rill.config.settings import Settings
    from rill.env import Environment
    from rill.stream.transcript import Transcript


def _nothing() -> None:
    pass


class LineEnds:
    """Stands in for a renderer's binary stdout and remembers whether the last byte written
    ended a line, so that a note printed after the answer can start on a line of its own."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.at_line_start = True

    def write(self, data: Any) -> int:
        n: int = self._out.write(data)
        if len(data):
            self.at_line_start = bytes(data[-1:]) == b"\n"
        return n

    def __getattr__(self, name: str) -> Any:
        return getattr(self._out, name)


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
        sink: Sink | None,
        reasoning: ReasoningSink | None,
        spinner: Spinner | None,
        restore: Callable[[], None] = _nothing,
    ) -> None:
        super().__init__(inner, spinner, restore)
        self.sink = sink
        self.reasoning = reasoning
        self.answering = False

    @property
    def at_line_start(self) -> bool:
        """Whether the terminal's cursor is at the start of a line after what stdout got (True
        when stdout is not a terminal: the answer went elsewhere)."""
        return self.sink is None or self.sink.at_line_start

    def start(self, event: Start, transcript: Transcript) -> None:
        self.inner.start(event, transcript)
        if isinstance(self.sink, MarkdownSink):
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
        self._lines: LineEnds | None = None
        out = getattr(inner, "out", None)
        if stdout_tty and out is not None:
            self._lines = LineEnds(out)
            inner.out = self._lines  # type: ignore[attr-defined]  # every format has ``out``

    @property
    def at_line_start(self) -> bool:
        """Whether the last byte the format wrote to a terminal stdout ended a line."""
        return self._lines is None or self._lines.at_line_start

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
            restore = guard_stderr(err, spinner)

    if fmt is not OutputFormat.text:
        return TerminalEvents(
            renderer, fmt=fmt, stdout_tty=stdout_tty, spinner=spinner, restore=restore
        )

    sink = _answer_sink(out, settings, env, raw=raw) if stdout_tty else None
    show = settings.show_reasoning if settings.show_reasoning is not None else stderr_tty
    filt = Exact() if raw or not stderr_tty else SafeText()
    reasoning = ReasoningSink(err, filt, color=err_color) if show else None
    return TerminalText(renderer, sink=sink, reasoning=reasoning, spinner=spinner, restore=restore)


def _answer_sink(out: BinaryIO, settings: Settings, env: Mapping[str, str], *, raw: bool) -> Sink:
    """Markdown unless ``--no-markdown`` or ``--raw``; safe text unless ``--raw``."""
    markdown = settings.markdown if settings.markdown is not None else True
    if markdown and not raw:
        return MarkdownSink(out, SafeText(), color=color_enabled(out, settings.color, env), env=env)
    return PlainSink(out, Exact() if raw else SafeText())


def for_environment(
    renderer: Renderer,
    environment: Environment,
    *,
    fmt: OutputFormat,
    settings: Settings,
    raw: bool,
) -> Renderer:
    """``for_terminal`` for a command's ``Environment``: its streams, variables and terminal
    checks. When its stderr is the process's ``sys.stderr``, that is guarded as there."""
    return for_terminal(
        renderer,
        fmt=fmt,
        settings=settings,
        stdout_tty=environment.stdout_isatty,
        stderr_tty=environment.stderr_isatty,
        raw=raw,
        out=environment.stdout,
        err=None if environment.stderr is sys.stderr else environment.stderr,
        env=environment.environ,
    )
