"""Run one completion: the only place the streaming loop, and its interruption, live.

``run_chat`` writes the prompt to history before sending, opens the response (retries happen in
the client), then for every network read decodes SSE events, folds them into the ``Transcript``,
hands the read's deltas to the renderer (one write and flush per read) and the new text to the
history recorder (journaled at least once a second). Whatever ends the run — ``[DONE]``, an error
chunk, a dropped connection, a time limit, Ctrl-C, SIGTERM, SIGHUP or a closed stdout — the
response is closed first, then the record is finished with what the transcript holds and the
renderer writes exactly one terminal event. The session never branches on the output format and
never imports typer or rich; the CLI maps the returned ``Outcome`` to an exit code.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import FrameType
from typing import Any, Protocol

from rill.errors import Cancelled, ExitCode, NetworkError, RillError, StreamError, TimeoutError_
from rill.events import Chunk, Delta, Done, Error, Reasoning, Start, Terminal
from rill.output.formats import Renderer
from rill.stream.client import ChatClient, reads
from rill.stream.protocol import Request, redact
from rill.stream.sse import ServerSentEvent, SSEDecoder
from rill.stream.transcript import Transcript


class Recorder(Protocol):
    @property
    def chat_id(self) -> str | None: ...  # None (or "") when no chat is recorded

    def add(self, content: str = "", reasoning: str = "") -> None: ...

    def finish(self, outcome: dict[str, Any]) -> None: ...


class NullRecorder:
    """``--no-history``: nothing is written anywhere."""

    chat_id: str | None = None  # no chat exists without history

    def add(self, content: str = "", reasoning: str = "") -> None:
        pass

    def finish(self, outcome: dict[str, Any]) -> None:
        pass


@dataclass
class Outcome:
    exit_code: ExitCode
    terminal: Terminal
    transcript: Transcript
    timings: dict[str, Any]
    chat_id: str | None
    error: RillError | None = None
    notes: list[str] = field(default_factory=list)


_SIGNAL_EXIT = {
    signal.SIGTERM: ("SIGTERM", ExitCode.TERMINATED),
    signal.SIGHUP: ("SIGHUP", ExitCode.TERMINATED),
}


def _raise_cancelled(signum: int, _frame: FrameType | None) -> None:
    reason, code = _SIGNAL_EXIT[signal.Signals(signum)]
    raise Cancelled(reason, code)


def _exit_now(signum: int, _frame: FrameType | None) -> None:
    # A second signal while the partial answer is being saved: leave at once, quietly.
    os._exit(128 + signum)


@contextmanager
def signals_handled(
    signals: Iterable[signal.Signals], handler: Callable[[int, FrameType | None], None]
) -> Iterator[None]:
    """``handler`` for ``signals`` inside the block, the previous handlers restored after it.
    Only the main thread may set handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _signals_as_exceptions() -> contextlib.AbstractContextManager[None]:
    """SIGTERM and SIGHUP become ``Cancelled`` (SIGINT is already ``KeyboardInterrupt``)."""
    return signals_handled(_SIGNAL_EXIT, _raise_cancelled)


def _cleanup_guard() -> contextlib.AbstractContextManager[None]:
    return signals_handled((signal.SIGINT, signal.SIGTERM, signal.SIGHUP), _exit_now)


class _Deadlines:
    """First-token and total time limits, enforced with SIGALRM (main thread only).

    The idle limit needs no timer: it is the HTTP read timeout, which keep-alive comments reset.
    """

    def __init__(self, first_token: float | None, total: float | None) -> None:
        now = time.monotonic()
        self.limits = {"first_token": first_token, "total": total}
        self.due = {k: now + v for k, v in self.limits.items() if v}
        self.active = bool(self.due) and threading.current_thread() is threading.main_thread()
        self.previous: Any = None

    def __enter__(self) -> _Deadlines:
        if self.active:
            self.previous = signal.signal(signal.SIGALRM, self._expired)
            self._arm()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous)

    def first_token_seen(self) -> None:
        if self.due.pop("first_token", None) is not None and self.active:
            self._arm()

    def _arm(self) -> None:
        if self.due:
            delay = max(min(self.due.values()) - time.monotonic(), 0.001)
            signal.setitimer(signal.ITIMER_REAL, delay)
        else:
            signal.setitimer(signal.ITIMER_REAL, 0)

    def _expired(self, _signum: int, _frame: FrameType | None) -> None:
        now = time.monotonic()
        for name, due in sorted(self.due.items(), key=lambda kv: kv[1]):
            if due <= now + 0.0005:
                label = "first token" if name == "first_token" else "total"
                raise TimeoutError_(
                    f"no answer within the {label} time limit of {self.limits[name]:g} s"
                )
        self._arm()


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def run_chat(
    client: ChatClient,
    request: Request,
    renderer: Renderer,
    *,
    begin: Callable[[], Recorder],
    first_token_timeout: float | None = None,
    total_timeout: float | None = None,
) -> Outcome:
    """Run one request to its end; never raises for anything the user can cause."""
    recorder = begin()  # the prompt is on disk before anything is sent
    chat_id = recorder.chat_id
    transcript = Transcript()
    timings: dict[str, Any] = {"started_at": _iso_now()}
    t0 = time.monotonic()
    first: list[float] = []
    error: RillError | None = None
    try:
        with _signals_as_exceptions(), _Deadlines(first_token_timeout, total_timeout) as limits:
            try:
                with client.open(request) as response:
                    renderer.start(Start(chat_id, request.model), transcript)
                    ctype = response.headers.get("content-type", "")
                    if request.stream and not ctype.startswith("application/json"):
                        _pump_stream(
                            response, client, transcript, renderer, recorder, limits, first
                        )
                    else:  # asked for no stream, or a server that ignored "stream": true
                        _read_whole(response, client, transcript, renderer, recorder, first)
            except KeyboardInterrupt:
                raise Cancelled("SIGINT", ExitCode.INTERRUPTED) from None
            except BrokenPipeError:
                raise Cancelled("broken pipe", ExitCode.BROKEN_PIPE) from None
    except RillError as exc:
        error = exc
    except KeyboardInterrupt:  # a signal landing while the limits and handlers are restored
        error = Cancelled("SIGINT", ExitCode.INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - a bug: still finish the record and the output
        error = RillError(f"internal error: {type(exc).__name__}: {exc}")
    if error is not None:
        # Upstream error text can quote the Authorization header: the key never goes further.
        error.message = redact(error.message, client.settings.api_key)
    with _cleanup_guard():
        return _finish(transcript, renderer, recorder, chat_id, timings, t0, first, error, request)


def _pump_stream(
    response: Any,
    client: ChatClient,
    transcript: Transcript,
    renderer: Renderer,
    recorder: Recorder,
    limits: _Deadlines,
    first: list[float],
) -> None:
    decoder = SSEDecoder()
    for raw in reads(response, client.settings.timeout, direct=client.direct_body):
        deltas: list[Delta] = []
        failure: RillError | None = None
        try:
            _decode_read(decoder.feed(raw), transcript, deltas)
        except RillError as exc:
            failure = exc  # what this read carried before the error is still shown
        if deltas:
            if not first:
                first.append(time.monotonic())
                limits.first_token_seen()
            _record(recorder, deltas)
        renderer.deltas(raw, deltas)
        if failure is not None:
            raise failure
        if transcript.done:
            return
    deltas = []
    _decode_read(decoder.flush(), transcript, deltas)
    if deltas:
        _record(recorder, deltas)
        renderer.deltas(b"", deltas)


def _record(recorder: Recorder, deltas: list[Delta]) -> None:
    """Hand one read's new text to the history journal."""
    content: list[str] = []
    reasoning: list[str] = []
    for d in deltas:
        if type(d) is Chunk:
            content.append(d.content)
        elif type(d) is Reasoning:
            reasoning.append(d.content)
    recorder.add("".join(content), "".join(reasoning))


def _decode_read(events: list[ServerSentEvent], transcript: Transcript, out: list[Delta]) -> None:
    """Fold one read's events into the transcript, appending their deltas to ``out``."""
    loads = json.loads
    add_chunk = transcript.add_chunk
    template = transcript.template
    known = template.content
    add_content = transcript.add_content
    template.seen += len(events)
    for event in events:
        data = event.data
        if event.event == "message":
            content = known(data)
            if content is not None:
                if content:
                    out.append(add_content(content))
                continue
        if data == "[DONE]":
            transcript.done = True
            return
        if event.event == "error":
            # llama.cpp before late 2025 sent errors in an ``error:`` SSE field.
            _raise_legacy_error(data, transcript)
        if data.startswith(":"):
            continue  # a keep-alive comment re-wrapped as data by a proxy (PROTOCOL §8.1)
        try:
            obj = loads(data)
        except ValueError:
            raise StreamError(
                f"the stream sent malformed JSON: {data[:80]!r}", status=200, code="bad_json"
            ) from None
        if type(obj) is dict:
            try:
                out += add_chunk(obj)
            except (AttributeError, TypeError, KeyError, IndexError):
                raise StreamError(
                    f"the stream sent a chunk of an unexpected shape: {data[:80]!r}",
                    status=200,
                    code="bad_chunk",
                ) from None
            template.learn(data, obj)


def _raise_legacy_error(data: str, transcript: Transcript) -> None:
    try:
        obj = json.loads(data)
    except ValueError:
        obj = {"message": data}
    transcript.add_chunk({"error": obj if isinstance(obj, dict) else {"message": str(obj)}})


def _read_whole(
    response: Any,
    client: ChatClient,
    transcript: Transcript,
    renderer: Renderer,
    recorder: Recorder,
    first: list[float],
) -> None:
    body = b"".join(reads(response, client.settings.timeout, direct=client.direct_body))
    try:
        obj = json.loads(body)
    except ValueError:
        raise StreamError(
            f"the server sent malformed JSON: {body[:80]!r}", status=200, code="bad_json"
        ) from None
    try:
        deltas = transcript.add_completion(obj) if isinstance(obj, dict) else []
    except (AttributeError, TypeError, KeyError, IndexError):
        raise StreamError(
            f"the server sent an answer of an unexpected shape: {body[:80]!r}",
            status=200,
            code="bad_chunk",
        ) from None
    first.append(time.monotonic())
    recorder.add(transcript.content, transcript.reasoning)
    renderer.deltas(body, deltas)


def _finish(
    transcript: Transcript,
    renderer: Renderer,
    recorder: Recorder,
    chat_id: str | None,
    timings: dict[str, Any],
    t0: float,
    first: list[float],
    error: RillError | None,
    request: Request,
) -> Outcome:
    end = time.monotonic()
    timings["duration_ms"] = round((end - t0) * 1000, 1)
    if first:
        timings["ttft_ms"] = round((first[0] - t0) * 1000, 1)
    usage = transcript.usage()
    finish_reason = transcript.final_finish_reason()
    if error is None and finish_reason == "error":
        error = StreamError(
            'the upstream ended the answer with an error (finish_reason "error")',
            status=200,
            code=transcript.native_finish_reason or "upstream_error",
        )
    if error is None and finish_reason is None:
        error = StreamError(
            "the stream ended before the answer was complete (no finish reason)",
            status=200,
            code="truncated",
        )
    silent = transcript.native_finish_reason in ("network_error", "error")
    if error is None and silent and not transcript.has_output:
        # A routed provider failed but the stream still said "stop" (PROTOCOL §3.4).
        error = StreamError(
            f"the provider failed silently ({transcript.native_finish_reason})",
            status=200,
            code=transcript.native_finish_reason,
        )
    if usage and first and usage.get("completion_tokens"):
        gen_seconds = max(end - first[0], 1e-3)
        timings["tokens_per_second"] = round(usage["completion_tokens"] / gen_seconds, 1)

    terminal: Terminal
    outcome_record: dict[str, Any] = {
        "content": transcript.content,
        "reasoning": transcript.reasoning or None,
        "tool_calls": transcript.tool_calls() or None,
        "reasoning_details": transcript.reasoning_details or None,
        "served_model": transcript.model,
        "provider": transcript.provider,
        "generation_id": transcript.id,
        "usage": usage,
        "timings": timings,
    }
    if isinstance(error, Cancelled) or error is None:
        reason = "cancelled" if error is not None else (finish_reason or "stop")
        terminal = Done(
            message=transcript.message(),
            usage=usage,
            finish_reason=reason,
            model=transcript.model,
            provider=transcript.provider,
            id=transcript.id,
            chat_id=chat_id,
        )
        outcome_record["finish_reason"] = reason
        exit_code = error.exit_code if error is not None else ExitCode.OK
    else:
        status = getattr(error, "status", None)
        code = getattr(error, "code", None)
        if code is None:  # no upstream code: name the kind of failure instead
            code = (
                "timeout"
                if isinstance(error, TimeoutError_)
                else ("network" if isinstance(error, NetworkError) else "internal")
            )
        terminal = Error(
            code=code,
            message=error.message,
            status=status,
            exit_code=int(error.exit_code),
            partial=transcript.message(),
        )
        outcome_record["finish_reason"] = "error"
        outcome_record["error"] = terminal.as_dict() | {"partial": None}
        exit_code = error.exit_code
    recorder.finish(outcome_record)
    with contextlib.suppress(OSError):
        renderer.finish(terminal)  # stdout may be gone: the record above is what is kept
    notes = []
    if error is None and finish_reason == "length":
        limit = request.max_tokens
        notes.append(
            f"the answer was cut at the token limit{f' ({limit})' if limit else ''}; "
            "raise it with --max-tokens"
        )
    return Outcome(exit_code, terminal, transcript, timings, chat_id, error, notes)
