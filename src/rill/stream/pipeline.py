"""The streaming core: one completion as a pull pipeline that any thread can consume and cancel.

    network reads (body.reads) → SSE decoder (sse) → chunk rules (chunks) → Transcript
        → steps: Start, Received(raw, deltas) per read, then exactly one Done or Error

``ChatStream`` is that pipeline. Iterating it gives the contract's typed events one by one
(``rill.stream_chat`` returns one); ``steps()`` gives one ``Received`` per network read instead,
which is what the command's renderers write with a single write and flush; ``waiting_steps()``
also yields a ``Wait`` wherever the next step would block, so that an event loop can drive many
streams from one thread (``rill serve``). Nothing here runs in a
thread of its own, sets a signal handler or prints: the consumer pulls, and

- every time limit is kept by the reads themselves (``Control``), so it holds in any thread;
- ``cancel()`` from any thread (a signal handler at the command's edge, a batch stop, a client
  that went away) wakes a read blocked on a silent upstream and ends the stream as cancelled;
- leaving the loop (``break``, an exception, ``close()``) closes the connection and records the
  partial answer as cancelled;
- the history recorder gets each read's text *before* the consumer sees it, so text that reached
  stdout is in the journal even if the process is killed right after.

Whatever ends the stream, the response is closed first, then the record is finished with what the
transcript holds, then the terminal event is yielded.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, cast

from rill.errors import Cancelled, ExitCode, RillError
from rill.events import Chunk, Delta, Event, Reasoning, Start, Terminal
from rill.stream.body import RECORD, WORK, Wait, reads
from rill.stream.chunks import ChunkDecoder, decode_completion
from rill.stream.client import ChatClient
from rill.stream.control import Control, Limits
from rill.stream.outcome import Outcome, conclude
from rill.stream.protocol import Request, redact
from rill.stream.sse import SSEDecoder
from rill.stream.transcript import Transcript
from rill.urls import display_urls


class ExchangeSink(Protocol):
    """Where an exchange is recorded while it streams (the history store's recorder)."""

    @property
    def chat_id(self) -> str | None: ...  # None (or "") when no chat is recorded

    def add(self, content: str = "", reasoning: str = "") -> None: ...

    def finish(self, outcome: dict[str, Any]) -> None: ...


class NullSink:
    """``--no-history``: nothing is written anywhere."""

    chat_id: str | None = None

    def add(self, content: str = "", reasoning: str = "") -> None:
        pass

    def finish(self, outcome: dict[str, Any]) -> None:
        pass


@dataclass(frozen=True, slots=True)
class Received:
    """One network read: its raw bytes (for ``-f raw``) and the deltas they carried."""

    raw: bytes
    deltas: list[Delta]


Step = Start | Received | Terminal

#: Why a stream stops when its consumer leaves the loop.
CLOSED = Cancelled("the caller", ExitCode.INTERRUPTED)


def _iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ChatStream:
    """One request's stream. ``begin`` starts its history record (the prompt is on disk before
    anything is sent); ``limits`` are its idle, first-token and total time limits."""

    def __init__(
        self,
        client: ChatClient,
        request: Request,
        *,
        begin: Callable[[], ExchangeSink] = NullSink,
        limits: Limits | None = None,
    ) -> None:
        self.client = client
        self.request = request
        self.transcript = Transcript()
        self.outcome: Outcome | None = None
        self.chat_id: str | None = None
        self.control = Control(limits or Limits(idle=client.settings.timeout))
        self._begin = begin
        self._steps = self._run()
        self._pending: deque[Event] = deque()
        self._finishing = False
        self._nowait = False
        #: True while the request is being sent (connecting, retrying): no socket may exist yet
        #: for ``cancel`` to shut down, so a signal handler on this thread raises instead.
        self.opening = False

    # -- consuming ----------------------------------------------------------------------------

    def steps(self) -> Generator[Step, None, None]:
        """``Start``, one ``Received`` per network read, then one terminal event."""
        return cast(Generator[Step, None, None], self._steps)

    def waiting_steps(self) -> Generator[Step | Wait, None, None]:
        """The same steps, and a ``Wait`` wherever the next one would block: on the socket where a
        read of a body rill reads itself would wait, ``WORK`` before anything else that blocks
        (sending the request, each read of any other body) and ``RECORD`` before the record is
        written (the prompt's, first; the answer's, last). Chosen before the first step."""
        self._nowait = True
        return self._steps

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        pending = self._pending
        while not pending:
            step = next(self._steps)
            if type(step) is Received:
                pending.extend(step.deltas)
            else:
                return step  # type: ignore[return-value]
        return pending.popleft()

    def __enter__(self) -> ChatStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def cancel(self, error: RillError = CLOSED) -> bool:
        """Stop the stream from any thread; the consumer's next step is the terminal event.
        True when a blocked read was woken (or nothing is left to wake it from)."""
        if self._finishing:
            return True  # the answer is being saved as it ended: it stays as it is
        return self.control.cancel(error) or self.outcome is not None

    def close(self) -> None:
        """Leave the stream: from the consuming thread it ends now (recorded as cancelled);
        from another thread it is cancelled and ends at the consumer's next step."""
        self.cancel()
        with suppress(ValueError):  # running in another thread: the cancel above stops it
            self._steps.close()

    # -- the pipeline -------------------------------------------------------------------------

    def _run(self) -> Generator[Step | Wait, None, None]:
        if self._nowait:
            yield RECORD  # what follows writes the prompt's record
        sink = self._begin()
        self.chat_id = chat_id = sink.chat_id or None
        timings: dict[str, Any] = {"started_at": _iso_now()}
        t0 = time.monotonic()
        first: list[float] = []
        error: RillError | None = None
        leaving = False
        try:
            yield from self._receive(sink, first)
        except RillError as exc:
            # Kept as a value from here on: its traceback would hold this frame, which holds it,
            # a cycle keeping the response and its connection for the cyclic collector.
            error = exc.with_traceback(None)
            error.__context__ = None
        except GeneratorExit:
            error, leaving = self.control.reason or CLOSED, True
        except KeyboardInterrupt:
            error = Cancelled("SIGINT", ExitCode.INTERRUPTED)
        except Exception as exc:  # noqa: BLE001 - a bug: the record and the output still end
            error = RillError(f"internal error: {type(exc).__name__}: {exc}")
        finally:
            self.control.release()
        if error is not None and not isinstance(error, Cancelled):
            # A cancel that broke a read shows up as that read's failure: the cancel is the cause.
            error = self.control.reason if self.control.cancelled else error
        if error is not None:
            # Upstream text can quote the Authorization header: the key never goes further.
            key = self.client.settings.api_key
            error.message = display_urls(redact(error.message, key))
            code = getattr(error, "code", None)
            if isinstance(code, str):
                error.code = redact(code, key)  # type: ignore[attr-defined]
        if self._nowait and not leaving:
            try:
                yield RECORD  # what follows writes the record
            except GeneratorExit:
                leaving = True  # the answer is recorded as it stands; nothing more is yielded
        outcome = self._conclude(error, chat_id, timings, t0, first)
        self._finishing = True
        sink.finish(outcome.record)
        self.outcome = outcome
        if not leaving:
            yield outcome.terminal

    def _receive(self, sink: ExchangeSink, first: list[float]) -> Iterator[Step | Wait]:
        client, request, control = self.client, self.request, self.control
        if self._nowait:
            yield WORK  # what follows sends the request
        self.opening = True
        try:
            with client.open(request, control) as response:
                self.opening = False
                yield Start(self.chat_id, request.model)
                yield from self._body(response, sink, first)
        finally:
            self.opening = False

    def _body(self, response: Any, sink: ExchangeSink, first: list[float]) -> Iterator[Step | Wait]:
        client, request, control = self.client, self.request, self.control
        transcript = self.transcript
        control.check()
        ctype = response.headers.get("content-type", "")
        body = reads(
            response,
            control,
            client.settings.timeout,
            direct=client.direct_body,
            nowait=self._nowait,
        )
        if request.stream and not ctype.startswith("application/json"):
            yield from self._pump(body, sink, first)
        else:  # asked for no stream, or a server that ignored "stream": true
            pieces: list[bytes] = []
            for piece in body:
                if isinstance(piece, Wait):
                    yield piece
                else:
                    pieces.append(piece)
            raw = b"".join(pieces)
            deltas = decode_completion(raw, transcript)
            first.append(time.monotonic())
            sink.add(transcript.content, transcript.reasoning)
            yield Received(raw, deltas)

    def _pump(
        self, body: Iterator[bytes | Wait], sink: ExchangeSink, first: list[float]
    ) -> Iterator[Step | Wait]:
        sse = SSEDecoder()
        chunks = ChunkDecoder(self.transcript, self.client.settings.api_key)
        control = self.control
        for raw in body:
            if isinstance(raw, Wait):
                yield raw
                continue
            deltas: list[Delta] = []
            failure: RillError | None = None
            try:
                chunks.decode(sse.feed(raw), deltas)
            except RillError as exc:
                failure = exc  # what this read carried before the error is still shown
            if deltas:
                if not first:
                    first.append(time.monotonic())
                    control.first_token_seen()
                _journal(sink, deltas)
            yield Received(raw, deltas)
            if failure is not None:
                raise failure
            if chunks.done:
                return
            control.check()
        deltas = []
        chunks.decode(sse.flush(), deltas)
        if deltas:
            _journal(sink, deltas)
            yield Received(b"", deltas)

    def _conclude(
        self,
        error: RillError | None,
        chat_id: str | None,
        timings: dict[str, Any],
        t0: float,
        first: list[float],
    ) -> Outcome:
        end = time.monotonic()
        timings["duration_ms"] = round((end - t0) * 1000, 1)
        if first:
            timings["ttft_ms"] = round((first[0] - t0) * 1000, 1)
        usage = self.transcript.usage()
        if usage and first and usage.get("completion_tokens"):
            gen_seconds = end - first[0]
            if gen_seconds >= 0.01:  # a rate over less than that is noise
                timings["tokens_per_second"] = round(usage["completion_tokens"] / gen_seconds, 1)
        return conclude(
            self.transcript, error, request=self.request, chat_id=chat_id, timings=timings
        )


def _journal(sink: ExchangeSink, deltas: list[Delta]) -> None:
    """Hand one read's new text to the history journal."""
    content: list[str] = []
    reasoning: list[str] = []
    for d in deltas:
        if type(d) is Chunk:
            content.append(d.content)
        elif type(d) is Reasoning:
            reasoning.append(d.content)
    sink.add("".join(content), "".join(reasoning))
