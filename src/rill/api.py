"""rill as a library: ``stream_chat`` yields the same typed events the machine formats show.

    import rill

    for event in rill.stream_chat("Name three rivers", model="openai/gpt-4o-mini"):
        if isinstance(event, rill.Chunk):
            print(event.content, end="", flush=True)
        elif isinstance(event, rill.Error):
            raise SystemExit(event.message)

It is a plain generator over ``ChatStream``, the pipeline the command pulls: no worker thread,
every time limit kept by the reads themselves, so it works the same in any thread. Leaving the
loop early (``break``, an exception, ``close()``) closes the upstream connection at once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rill.events import Event


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
    first_token_timeout: float | None = None,
    total_timeout: float | None = None,
    retries: int | None = None,
    history: bool = False,
    schema: str | dict[str, Any] | None = None,
    schema_multi: bool = False,
    attachments: list[str] | None = None,
) -> Iterator[Event]:
    """Stream one completion: ``Start``, deltas, then exactly one ``Done`` or ``Error``.

    ``prompt`` is the user's text, or a full ``messages`` list. Unset arguments follow rill's
    usual precedence (environment, then ``config.toml``, then defaults); ``api_key`` defaults to
    ``OPENROUTER_API_KEY``. With ``history=True`` the exchange is recorded like a command run.
    Configuration problems (no key for OpenRouter, bad base URL) raise ``RillError`` at once,
    when ``stream_chat`` is called; everything that happens upstream arrives as an ``Error``
    event. ``timeout`` is the idle limit between two reads, ``first_token_timeout`` and
    ``total_timeout`` count from the call; an expired one ends the stream with an ``Error`` whose
    ``exit_code`` is 8. Leaving the loop early closes the connection and, with history, records
    the partial answer as cancelled.

    ``schema`` asks for JSON of that shape, as ``--schema`` does (a JSON Schema as a dict, or a
    string: inline JSON, ``@FILE`` or the concise ``"name, age int"``; ``schema_multi`` asks for
    ``{"items": [...]}``). A bad schema raises ``UsageError`` at the call. The answer still
    streams as ``Chunk`` events; a valid one ends with ``Done`` whose ``parsed`` holds it, one
    that is not JSON or not valid ends with an ``Error`` whose ``exit_code`` is 9, ``code``
    ``"schema_mismatch"``, ``message`` the reason and ``partial`` the whole answer.

    ``attachments`` (paths or ``http(s)`` URLs, as ``-a`` takes them) follow the text of the
    last user message; one that cannot be attached raises ``UsageError`` before anything is sent.
    """
    import dataclasses

    from rill.config.settings import SettingFlags, resolve_settings
    from rill.input.prompting import build_messages
    from rill.stream.client import ChatClient, make_http_client
    from rill.stream.control import Limits
    from rill.stream.pipeline import ChatStream, NullSink
    from rill.stream.protocol import Request

    flags: SettingFlags = {
        "model": model,
        "base_url": base_url,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "timeout": timeout,
        "first_token_timeout": first_token_timeout,
        "total_timeout": total_timeout,
        "retries": retries,
    }
    parsed_schema = None
    if schema is not None:
        from rill.schema import parse_schema

        parsed_schema = parse_schema(schema, multi=schema_multi)
    settings = resolve_settings(flags)
    if api_key is not None:
        settings = dataclasses.replace(settings, api_key=api_key)
    settings.check_transport()
    if isinstance(prompt, str):
        messages, turn = build_messages(prompt, system if system is not None else settings.system)
    else:
        messages, turn = list(prompt), list(prompt)
    if attachments:
        messages, turn = _attached(list(attachments), messages, turn)
    _check_values(options or {}, messages)
    request = Request(
        messages=messages,
        model=settings.model,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        reasoning_effort=reasoning_effort,
        extra=dict(options or {}),
        schema=parsed_schema,
    )

    def begin() -> Any:
        if not history:
            return NullSink()
        from rill.history import ExchangeStart, HistoryStore

        store = HistoryStore(settings.paths.history_dir, settings.history_format)  # type: ignore[arg-type]
        return store.begin(
            ExchangeStart(None, turn, request.model, request.options(), settings.base_url)
        )

    limits = Limits(settings.timeout, settings.first_token_timeout, settings.total_timeout)
    client = ChatClient(settings, make_http_client(settings))
    return _pull(ChatStream(client, request, begin=begin, limits=limits))


def _attached(
    specs: list[str], messages: list[dict[str, Any]], turn: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The messages (and the turn history records) with the files after the last user text."""
    from rill.errors import UsageError
    from rill.input.attachments import load_all
    from rill.stream.parts import with_parts

    loaded = load_all(specs)
    out = []
    for messages_ in (messages, turn):
        at = max((n for n, m in enumerate(messages_) if m.get("role") == "user"), default=None)
        if at is None:
            raise UsageError("attachments need a user message to go with")
        messages_ = list(messages_)
        messages_[at] = with_parts(messages_[at], loaded)
        out.append(messages_)
    return out[0], out[1]


def _check_values(options: dict[str, Any], messages: list[dict[str, Any]]) -> None:
    """What JSON cannot carry is refused before anything is sent, as for ``-o``."""
    from rill.errors import UsageError
    from rill.values import MAX_NESTING, has_non_finite, nested_deeper

    if has_non_finite(options) or has_non_finite(messages):
        raise UsageError("NaN and Infinity cannot be sent (JSON has no such numbers)")
    if nested_deeper(options) or nested_deeper(messages, MAX_NESTING + 1):
        raise UsageError(f"options and messages may not nest more than {MAX_NESTING} deep")


def _pull(stream: Any) -> Iterator[Event]:
    try:
        yield from stream
    finally:
        stream.close()  # a no-op after the terminal event; a cancel when the caller left early
        stream.client.http.close()
