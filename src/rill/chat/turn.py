"""One turn of a chat: the request streamed through ``ChatStream`` into the terminal renderer.

The same pieces as a prompt run (spinner, live markdown, dimmed reasoning, neutralised control
sequences, the history recorder), but a turn's failure is a line on stderr, never the end of the
session: the caller decides what the outcome means for the loop.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rill.env import Environment
from rill.errors import Cancelled, ExitCode
from rill.events import Start
from rill.output.formats import OutputFormat, make_renderer
from rill.process import cancel_on_signals
from rill.stream.control import Limits
from rill.stream.pipeline import ChatStream, NullSink, Received
from rill.stream.protocol import Request


@dataclass
class TurnResult:
    outcome: Any
    """The stream's ``Outcome``."""
    signal: Cancelled | None
    """The signal that cancelled the turn, if one did (SIGINT, SIGTERM, SIGHUP)."""
    gone: Cancelled | None = None
    """Set when the terminal could not be written: the session cannot go on."""

    @property
    def exit_code(self) -> int | None:
        """The session's exit code when this turn ends it: SIGTERM and SIGHUP (Ctrl-C, SIGINT,
        ends only the answer), or a terminal that went away."""
        if self.gone is not None:
            return int(self.gone.exit_code)
        if self.signal is not None and self.signal.exit_code != ExitCode.INTERRUPTED:
            return int(self.signal.exit_code)
        return None


def limits_of(settings: Any) -> Limits:
    return Limits(
        idle=settings.timeout,
        first_token=settings.first_token_timeout,
        total=settings.total_timeout,
    )


def stream_turn(
    env: Environment,
    settings: Any,
    client: Any,
    request: Request,
    begin: Callable[[], Any] | None,
    *,
    raw: bool = False,
) -> TurnResult:
    """Stream ``request``; ``begin`` starts its history record (None: nothing is recorded)."""
    from rill.terminal.renderers import for_environment

    renderer = for_environment(
        make_renderer(OutputFormat.text, env.stdout, tty=env.stdout_isatty),
        env,
        fmt=OutputFormat.text,
        settings=settings,
        raw=raw,
    )
    stream = ChatStream(client, request, begin=begin or NullSink, limits=limits_of(settings))
    gone = None
    with cancel_on_signals(stream) as edge:
        try:
            for step in stream.steps():
                kind = type(step)
                if kind is Received:
                    renderer.deltas(step.raw, step.deltas)  # type: ignore[union-attr]
                elif kind is Start:
                    renderer.start(step, stream.transcript)  # type: ignore[arg-type]
                else:
                    renderer.finish(step)  # type: ignore[arg-type]
        except OSError as exc:  # the terminal went away: keep what was said, end the session
            gone = Cancelled(f"an unwritable terminal ({exc})", ExitCode.OUTPUT)
            stream.cancel(gone)
            stream.close()
        outcome = stream.outcome
        _report(env, outcome, getattr(renderer, "at_line_start", True))
        return TurnResult(outcome, edge.received, gone)


def _report(env: Environment, outcome: Any, at_line_start: bool) -> None:
    """The turn's last line on stderr: why it stopped (if it did not end well) and notes."""
    from rill.output.diagnostics import error_line, note_line, write_line

    tty = env.stderr_isatty
    fresh = [at_line_start]

    def line(text: str) -> None:
        write_line(env.stderr, text, at_line_start=fresh[0])
        fresh[0] = True

    error = outcome.error if outcome is not None else None
    if isinstance(error, Cancelled):
        kept = len(outcome.transcript.content)
        # "\r": over the "^C" the terminal echoed, when the answer had ended its line.
        back = "\r" if tty and fresh[0] else ""
        line(back + note_line(f"answer cancelled; kept {kept} characters", tty=tty))
    elif error is not None:
        line(error_line(error, tty=tty))
    elif not at_line_start:
        env.stdout.write(b"\n")
        env.stdout.flush()
    for note in outcome.notes if outcome is not None else []:
        line(note_line(note, tty=tty))
    sys.stderr.flush()
