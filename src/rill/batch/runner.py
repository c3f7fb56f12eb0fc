"""The worker pool: each item is one ChatStream pulled on a worker thread."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from rill.errors import Cancelled, ExitCode, RillError
from rill.events import Error, Terminal
from rill.process import cancel_on_signals
from rill.stream.client import ChatClient
from rill.stream.control import Limits
from rill.stream.pipeline import ChatStream, ExchangeSink, NullSink
from rill.stream.protocol import Request

if TYPE_CHECKING:
    from rill.history import HistoryStore

from rill.batch.items import Item
from rill.batch.output import Output, encode_line
from rill.batch.pacing import Stop
from rill.batch.progress import Reporter
from rill.batch.requests import Defaults, build_request


def _error(code: str, message: str, exit_code: int) -> Error:
    return Error(code, message, None, exit_code, {"role": "assistant", "content": ""})


class Batch:
    """Run items on ``jobs`` threads; ``run`` returns the exit code."""

    def __init__(
        self,
        client: ChatClient,
        defaults: Defaults,
        output: Output,
        reporter: Reporter,
        stop: Stop,
        *,
        jobs: int,
        store: HistoryStore | None = None,
        base_url: str = "",
        limits: Limits | None = None,
    ) -> None:
        self.client = client
        self.defaults = defaults
        self.output = output
        self.reporter = reporter
        self.tally = reporter.tally
        self.stop = stop
        self.jobs = jobs
        self.store = store
        self.base_url = base_url
        self.limits = limits
        self.codes: dict[int, int] = {}
        self._take_lock = threading.Lock()
        self._items: list[Item] = []
        self._next = 0

    def run(self, items: list[Item]) -> int:
        self._items = items
        threads = [
            threading.Thread(target=self._worker, name=f"rill-batch-{n}", daemon=True)
            for n in range(min(self.jobs, len(items)))
        ]
        # A second signal leaves at once, but never in the middle of an output line.
        with cancel_on_signals(self.stop, before_exit=lambda: self.output.lock.acquire(timeout=2)):
            for thread in threads:
                thread.start()
            for thread in threads:
                while thread.is_alive():
                    thread.join(0.2)
                    self.reporter.tick()
        self.output.drain()
        if self.stop.is_set():
            return int(self.stop.code)
        failed = [self.codes[p] for p in sorted(self.codes) if self.codes[p] != 0]
        return failed[0] if failed else int(ExitCode.OK)

    @property
    def unfinished(self) -> int:
        return len(self._items) - len(self.codes)

    def _worker(self) -> None:
        while not self.stop.is_set():
            with self._take_lock:
                position = self._next
                if position >= len(self._items):
                    return
                self._next += 1
            self._run_one(position, self._items[position])

    def _run_one(self, position: int, item: Item) -> None:
        with self.tally.lock:
            self.tally.running += 1
        line = None
        try:
            terminal, code, cancelled = self._execute(item)
            bad_input = isinstance(terminal, Error) and terminal.code == "bad_input"
            if not cancelled:
                line = encode_line(item.id, terminal, item.line if bad_input else None)
        except Exception as exc:  # noqa: BLE001 - a bug met by one item must not stop the others
            terminal = _error("internal", f"internal error: {type(exc).__name__}: {exc}", 1)
            code, cancelled = int(ExitCode.INTERNAL), False
            line = encode_line(item.id, terminal)
        if cancelled:
            with self.tally.lock:
                self.tally.running -= 1
        else:
            self.codes[position] = code
            self.tally.add(terminal, failed=code != 0)
        try:
            self.output.put(position, line)
        except BrokenPipeError:
            self.stop.trigger("a closed stdout", ExitCode.BROKEN_PIPE)
        except OSError as exc:
            self.reporter.say(f"cannot write the output: {exc.strerror or exc}")
            self.stop.trigger("a write error", ExitCode.OUTPUT)
        if code != 0 and not cancelled:
            self.reporter.failure(item, terminal)

    def _execute(self, item: Item) -> tuple[Terminal, int, bool]:
        if item.problem is not None:
            return _error("bad_input", item.problem, ExitCode.USAGE), ExitCode.USAGE, False
        try:
            request, messages = build_request(item, self.defaults)
        except RillError as exc:
            return _error("bad_input", exc.message, int(exc.exit_code)), int(exc.exit_code), False
        stream = ChatStream(
            self.client,
            request,
            begin=lambda: self.begin(request, messages),
            limits=self.limits,
        )
        self.stop.watch(stream)
        try:
            for _step in stream.steps():
                pass
        finally:
            self.stop.forget(stream)
        outcome = stream.outcome
        assert outcome is not None  # the steps always end with the terminal event
        cancelled = isinstance(outcome.error, Cancelled)
        return outcome.terminal, int(outcome.exit_code), cancelled

    def begin(self, request: Request, messages: list[dict[str, Any]]) -> ExchangeSink:
        """One new chat per item. The store serialises its own short critical sections, for
        the threads of this process as for concurrent runs; a recorder it could not start has
        ``chat_id`` None, like the ``NullSink`` of ``--no-history``."""
        if self.store is None:
            return NullSink()
        from rill.history import ExchangeStart

        start = ExchangeStart.of(request, chat_id=None, messages=messages, base_url=self.base_url)
        return self.store.begin(start)
