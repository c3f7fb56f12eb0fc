"""rill as a library: ``stream_chat`` yields the same typed events the machine formats show.

    import rill

    for event in rill.stream_chat("Name three rivers", model="openai/gpt-4o-mini"):
        if isinstance(event, rill.Chunk):
            print(event.content, end="", flush=True)
        elif isinstance(event, rill.Error):
            raise SystemExit(event.message)

The run itself is ``session.run_chat`` — the same loop the command uses — driven in a worker
thread that hands each event over a queue, so the caller iterates at its own pace. Leaving the
loop early (``break``, an exception, ``close()``) cancels the request and closes the connection.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

from rill.errors import Cancelled, ExitCode, RillError
from rill.events import Delta, Error, Event, Start, Terminal
from rill.stream.transcript import Transcript

_END = object()


class _QueueRenderer:
    def __init__(self, q: queue.Queue[Any], stop: threading.Event) -> None:
        self.q = q
        self.stop = stop

    def _check(self) -> None:
        if self.stop.is_set():
            raise Cancelled("caller", ExitCode.INTERRUPTED)

    def start(self, event: Start, transcript: Transcript) -> None:
        self._check()
        self.q.put(event)

    def deltas(self, raw: bytes, deltas: list[Delta]) -> None:
        self._check()
        for d in deltas:
            self.q.put(d)

    def finish(self, event: Terminal) -> None:
        self.q.put(event)


def stream_chat(
    prompt: str | list[dict[str, Any]],
    *,
    model: str | None = None,
    system: str | None = None,
    base_url: str | None = None,
    api_key: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
    reasoning_effort: str | None = None,
    options: dict[str, Any] | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    history: bool = False,
) -> Iterator[Event]:
    """Stream one completion: ``Start``, deltas, then exactly one ``Done`` or ``Error``.

    ``prompt`` is the user's text, or a full ``messages`` list. Unset arguments follow rill's
    usual precedence (environment, then ``config.toml``, then defaults); ``api_key`` defaults to
    ``OPENROUTER_API_KEY``. With ``history=True`` the exchange is recorded like a command run.
    Configuration problems (no key for OpenRouter, bad base URL) raise ``RillError`` at once,
    when ``stream_chat`` is called; everything that happens upstream arrives as an ``Error``
    event. Leaving the loop early cancels the request at its next network read (the worker
    thread is a daemon: it never keeps the interpreter alive). Only the idle ``timeout``
    applies here: first-token and total limits need the main thread's alarm.
    """
    import dataclasses

    from rill.config.settings import resolve_settings
    from rill.input.prompting import build_messages
    from rill.stream.client import ChatClient, make_http_client
    from rill.stream.protocol import Request
    from rill.stream.session import NullRecorder

    flags = {
        "model": model,
        "base_url": base_url,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "timeout": timeout,
        "retries": retries,
    }
    settings = resolve_settings(flags)
    if api_key is not None:
        settings = dataclasses.replace(settings, api_key=api_key)
    settings.check_transport()
    if isinstance(prompt, str):
        messages, turn = build_messages(prompt, system if system is not None else settings.system)
    else:
        messages, turn = list(prompt), list(prompt)
    request = Request(
        messages=messages,
        model=settings.model,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        reasoning_effort=reasoning_effort,
        extra=dict(options or {}),
    )

    def begin() -> Any:
        if not history:
            return NullRecorder()
        from rill.history import ExchangeStart, HistoryStore

        store = HistoryStore(settings.paths.history_dir, settings.history_format)  # type: ignore[arg-type]
        return store.begin(
            ExchangeStart(None, turn, request.model, request.options(), settings.base_url)
        )

    return _iterate(ChatClient(settings, make_http_client(settings)), request, begin)


def _iterate(client: Any, request: Any, begin: Any) -> Iterator[Event]:
    from rill.stream.session import run_chat

    q: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def work() -> None:
        try:
            run_chat(client, request, _QueueRenderer(q, stop), begin=begin)
        except Exception as exc:  # noqa: BLE001 - whatever happens, the stream ends with an event
            message = exc.message if isinstance(exc, RillError) else f"internal error: {exc!r}"
            code = int(exc.exit_code) if isinstance(exc, RillError) else int(ExitCode.INTERNAL)
            q.put(Error("internal", message, None, code, {"role": "assistant", "content": ""}))
        finally:
            client.http.close()
            q.put(_END)

    worker = threading.Thread(target=work, name="rill-stream", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                return
            yield item
    finally:
        stop.set()  # the worker cancels at its next read and closes the connection
