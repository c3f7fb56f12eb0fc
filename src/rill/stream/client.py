"""HTTP for chat completions: open a response (with retries), then hand out its bytes.

``ChatClient.open(request)`` is a context manager yielding an open ``httpx.Response`` whose status
was 200; any other status becomes a typed ``APIError`` carrying the upstream's own message. Retries
(jittered exponential backoff honouring ``Retry-After``) happen only here, before a single byte
of the answer exists: for connect errors and statuses 408, 429, 502, 503. Its body is read by
``rill.stream.body.reads``. The response is always closed on the way out, so Ctrl-C, a closed
stdout or an exception drop the connection at once — which is what stops generation (and
billing) upstream.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpx

from rill.config.settings import Settings
from rill.errors import (
    APIError,
    ConfigError,
    NetworkError,
    RillError,
    TimeoutError_,
    error_for_status,
    reason,
)
from rill.stream.control import Control, Limits, seconds
from rill.stream.protocol import Request, build_headers, build_payload, parse_error_body, redact
from rill.urls import display_url

RETRY_STATUSES = frozenset({408, 429, 502, 503})
BACKOFF_BASE = 0.5  # seconds; doubled per attempt, with full jitter
BACKOFF_CAP = 30.0
#: A Retry-After longer than this is not waited out: the user is told instead.
RETRY_AFTER_LIMIT = 60.0
MAX_ERROR_BODY = 1 << 20


def make_http_client(
    settings: Settings,
    transport: httpx.BaseTransport | None = None,
    *,
    connections: int | None = None,
    event_hooks: dict[str, list[Callable[..., Any]]] | None = None,
) -> httpx.Client:
    """The one place an HTTP client is configured (timeouts, TLS, pool size)."""
    timeout = httpx.Timeout(
        connect=settings.connect_timeout,
        read=settings.timeout,
        write=30.0,
        pool=settings.connect_timeout,
    )
    # A TLS context (and its certificate store) is only built when the base URL needs one: it
    # costs a tenth of a second, which is most of rill's start-up against a local server.
    verify: bool = urlsplit(settings.base_url).scheme == "https"
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.Client(
        timeout=timeout,
        transport=transport,
        verify=verify,
        trust_env=verify,
        limits=limits if connections else httpx.Limits(),
        event_hooks=event_hooks,
    )


def backoff_delay(attempt: int) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): doubling, capped, fully jittered."""
    return float(min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.5))


class RetryPolicy:
    """When ``ChatClient`` tries again, and how it waits. Retries happen only before a single
    byte of the answer exists: for connect errors and statuses 408, 429, 502, 503, up to
    ``retries`` times, waiting ``Retry-After`` when the server gave one (and not at all when it
    asks for more than ``RETRY_AFTER_LIMIT``), else ``backoff_delay``.

    A caller that runs many requests at once (``rill batch``) subclasses it: ``before_attempt``
    runs before every send (wait at a shared gate) and ``wait`` may push that gate instead of
    sleeping alone. Every wait goes through the request's ``Control``, so a cancel or a time
    limit ends it at once.
    """

    def __init__(self, retries: int, on_retry: Callable[[str], None] | None = None) -> None:
        self.retries = retries
        self.on_retry = on_retry or (lambda _message: None)

    def before_attempt(self, control: Control) -> None:
        """Called before each send."""

    def should_retry(self, attempt: int, failure: RillError) -> bool:
        if attempt >= self.retries:
            return False
        if isinstance(failure, APIError):
            return failure.status in RETRY_STATUSES and (failure.retry_after or 0) <= (
                RETRY_AFTER_LIMIT
            )
        return isinstance(failure, NetworkError) and failure.retryable

    def delay(self, attempt: int, failure: RillError) -> float:
        """Seconds before retry ``attempt``: what the server asked for, else the backoff."""
        retry_after = failure.retry_after if isinstance(failure, APIError) else None
        return retry_after if retry_after is not None else backoff_delay(attempt)

    def wait(self, attempt: int, failure: RillError, control: Control) -> None:
        """Wait before retry ``attempt``."""
        delay = self.delay(attempt, failure)
        self.on_retry(f"retrying in {delay:.1f} s ({failure.message})")
        control.sleep(delay)


#: What a closed response's stream is replaced by.
_CLOSED = httpx.ByteStream(b"")


def let_go(response: httpx.Response) -> None:
    """Once ``response`` is closed: httpx binds a streamed response and its stream to each other
    (to time the response), a cycle that keeps the response, its connection and its request
    until the cyclic collector runs, ~75 objects per request. Dropping the closed stream frees
    all of it at once."""
    response.stream = _CLOSED


class ChatClient:
    """Open chat-completion responses: ``open(request, control)`` yields a 200 response."""

    def __init__(
        self,
        settings: Settings,
        http: httpx.Client,
        *,
        policy: RetryPolicy | None = None,
        direct_body: bool = True,
    ) -> None:
        self.settings = settings
        self.http = http
        self.policy = policy or RetryPolicy(settings.retries)
        #: Read chunked bodies past h11 (see ``reads``). Off for a pool whose connections should
        #: be kept alive between requests (batch): a body read past h11 closes its connection.
        self.direct_body = direct_body
        self.url = request_url(settings, "/chat/completions")

    def payload(self, request: Request) -> dict[str, Any]:
        return build_payload(request, openrouter=self.settings.openrouter)

    def headers(self, request: Request) -> dict[str, str]:
        return build_headers(self.settings, stream=request.stream)

    @contextmanager
    def open(self, request: Request, control: Control | None = None) -> Iterator[httpx.Response]:
        """The 200 response to ``request``, closed after the block; ``control`` (default: the
        idle limit only) cancels it and bounds each wait."""
        if control is None:
            control = Control(Limits(idle=self.settings.timeout))
        response = self._send_with_retries(request, control)
        try:
            yield response
        finally:
            response.close()
            let_go(response)

    def _send_with_retries(self, request: Request, control: Control) -> httpx.Response:
        payload = self.payload(request)
        headers = self.headers(request)
        attempt = 0
        while True:
            self.policy.before_attempt(control)
            control.check()
            try:
                response = self._send(payload, headers, control)
            except NetworkError as exc:
                control.check()  # a cancel that shut the socket down is not a network error
                failure: RillError = control.timed_out() or exc
                if failure is not exc or not self.policy.should_retry(attempt, exc):
                    raise failure from None
                self.policy.wait(attempt, exc, control)
                attempt += 1
                continue
            if response.status_code == 200:
                control.attach_response(response)
                return response
            error = self.error_from(response)
            if (
                error.status == 400
                and "stream_options" in payload
                and "stream_options" in json.dumps(error.body)
            ):
                # Some OpenAI-compatible servers reject stream_options: ask again without it.
                payload = {k: v for k, v in payload.items() if k != "stream_options"}
                continue
            if not self.policy.should_retry(attempt, error):
                raise error
            self.policy.wait(attempt, error, control)
            attempt += 1

    def _send(
        self, payload: dict[str, Any], headers: dict[str, str], control: Control
    ) -> httpx.Response:
        host = urlsplit(self.url).hostname
        settings = self.settings
        # The wait for the response headers is a read too: a nearer deadline shortens it.
        read = control.read_timeout(settings.timeout)
        connect = settings.connect_timeout
        if read is not None and connect is not None:
            connect = min(connect, read)
        timeout = httpx.Timeout(connect=connect, read=read, write=30.0, pool=connect)
        try:
            body = _encoded(payload)
            length = len(body) if isinstance(body, bytes) else body.length
            req = self.http.build_request(
                "POST",
                self.url,
                content=body,
                headers={**headers, "Content-Length": str(length)},
                timeout=timeout,
                extensions={"trace": control.trace},
            )
            return self.http.send(req, stream=True)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise transport_error(exc, host, connect=connect, idle=settings.timeout) from None

    def error_from(self, response: httpx.Response) -> APIError:
        """The ``APIError`` a non-200 response stands for (its body read, at most 1 MiB)."""
        try:
            body = b""
            for piece in response.iter_bytes():
                body += piece
                if len(body) > MAX_ERROR_BODY:
                    break
        except httpx.HTTPError:
            pass
        finally:
            response.close()
            let_go(response)
        # The key goes before anything is parsed or cut: a server that echoes it anywhere in the
        # body (message, code, metadata, broken JSON) cannot leave a prefix of it behind.
        text = redact(body.decode("utf-8", errors="replace"), self.settings.api_key)
        code, message, decoded = parse_error_body(response.status_code, text)
        return error_for_status(
            response.status_code,
            message,
            code=code,
            body=decoded,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )


def _encoded(payload: dict[str, Any]) -> Any:
    """The JSON body, as httpx's ``json=`` would encode it. A payload holding attached files
    (which plain JSON cannot encode) is encoded by ``rill.stream.parts`` into pieces, each file
    base64-encoded only as it is sent; a plain prompt never imports that module."""
    try:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except TypeError:
        from rill.stream.parts import encode_body

        return encode_body(payload)
    return text.encode("utf-8")


def request_url(settings: Settings, path: str) -> str:
    """The URL a request goes to. httpx turns a ``user:password@`` in it into Basic auth, which
    would replace the API key's Bearer header: with a key, the key authenticates and the
    userinfo is left out; without one, it is the proxy's Basic auth and is kept."""
    url = f"{settings.base_url}{path}"
    return display_url(url) if settings.api_key else url


def transport_error(
    exc: BaseException, host: str | None, *, connect: float | None, idle: float | None
) -> RillError:
    """The ``RillError`` for what httpx raised before a response arrived (``connect`` and
    ``idle``: the limits in force, for the message). Connect failures are ``retryable``."""
    error: RillError
    if isinstance(exc, httpx.ConnectTimeout):
        error = TimeoutError_(f"cannot connect to {host}: timed out after {seconds(connect)}")
        error.retryable = True
    elif isinstance(exc, httpx.TimeoutException):
        error = TimeoutError_(f"no response from {host} within {seconds(idle)} (idle timeout)")
    elif isinstance(exc, httpx.ConnectError) and _is_tls(exc):
        # Retrying a failed handshake gives the same answer.
        error = NetworkError(f"TLS handshake with {host} failed: {reason(exc)}")
    elif isinstance(exc, httpx.ConnectError):
        error = NetworkError(f"cannot connect to {host}: {reason(exc)}")
        error.retryable = True
    elif isinstance(exc, httpx.InvalidURL):
        error = ConfigError(f"base URL is not valid: {exc}")
    else:
        error = NetworkError(f"request to {host} failed: {reason(exc)}")
    return error


def _is_tls(exc: BaseException) -> bool:
    import ssl

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "_ssl.c" in str(exc) or "SSL" in str(exc)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    import email.utils  # only for the rare HTTP-date form: it costs 5 ms of start-up

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
