"""HTTP for chat completions: open a response (with retries), then hand out its bytes.

``ChatClient.open(request)`` is a context manager yielding an open ``httpx.Response`` whose status
was 200; any other status becomes a typed ``APIError`` carrying the upstream's own message. Retries
(jittered exponential backoff honouring ``Retry-After``) happen only here, before a single byte
of the answer exists: for connect errors and statuses 408, 429, 502, 503. ``reads(response)``
yields the body as it arrives, one network read at a time, translating transport failures into
rill's errors. The response is always closed on the way out, so Ctrl-C, a closed stdout or an
exception drop the connection at once — which is what stops generation (and billing) upstream.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from rill.config.settings import Settings
from rill.errors import (
    APIError,
    ConfigError,
    NetworkError,
    StreamError,
    TimeoutError_,
    error_for_status,
)
from rill.stream.chunked import ChunkedDecoder, ChunkedError
from rill.stream.protocol import Request, build_headers, build_payload, parse_error_body

RETRY_STATUSES = frozenset({408, 429, 502, 503})
BACKOFF_BASE = 0.5  # seconds; doubled per attempt, with full jitter
BACKOFF_CAP = 30.0
#: A Retry-After longer than this is not waited out: the user is told instead.
RETRY_AFTER_LIMIT = 60.0
MAX_ERROR_BODY = 1 << 20
READ_SIZE = 64 * 1024  # what httpcore reads at a time


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


class ChatClient:
    #: Read chunked bodies past h11 (see ``reads``). A subclass that wraps the response body
    #: to watch each read (batch's cancellation) turns it off.
    direct_body = True

    def __init__(
        self,
        settings: Settings,
        http: httpx.Client,
        *,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self.http = http
        self.sleep = sleep
        self.on_retry = on_retry or (lambda _msg: None)
        self.url = f"{settings.base_url}/chat/completions"

    def payload(self, request: Request) -> dict[str, Any]:
        return build_payload(request, openrouter=self.settings.openrouter)

    def headers(self, request: Request) -> dict[str, str]:
        return build_headers(self.settings, stream=request.stream)

    @contextmanager
    def open(self, request: Request) -> Iterator[httpx.Response]:
        response = self._send_with_retries(request)
        try:
            yield response
        finally:
            response.close()

    def _send_with_retries(self, request: Request) -> httpx.Response:
        payload = self.payload(request)
        headers = self.headers(request)
        attempt = 0
        while True:
            try:
                response = self._send(payload, headers)
            except NetworkError as exc:
                if attempt >= self.settings.retries or not exc.retryable:
                    raise
                self._wait(attempt, None, str(exc))
                attempt += 1
                continue
            if response.status_code == 200:
                return response
            error = self._error_from(response)
            if (
                error.status == 400
                and "stream_options" in payload
                and "stream_options" in json.dumps(error.body)
            ):
                # Some OpenAI-compatible servers reject stream_options: ask again without it.
                payload = {k: v for k, v in payload.items() if k != "stream_options"}
                continue
            retryable = error.status in RETRY_STATUSES and attempt < self.settings.retries
            if not retryable or (error.retry_after or 0) > RETRY_AFTER_LIMIT:
                raise error
            self._wait(attempt, error.retry_after, error.message)
            attempt += 1

    def _send(self, payload: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        host = urlsplit(self.url).hostname
        try:
            req = self.http.build_request("POST", self.url, json=payload, headers=headers)
            return self.http.send(req, stream=True)
        except httpx.ConnectTimeout:
            error: NetworkError = TimeoutError_(
                f"cannot connect to {host}: timed out after {_secs(self.settings.connect_timeout)}"
            )
            error.retryable = True
            raise error from None
        except httpx.TimeoutException:
            raise TimeoutError_(
                f"no response from {host} within {_secs(self.settings.timeout)} (idle timeout)"
            ) from None
        except httpx.ConnectError as exc:
            if _is_tls(exc):  # retrying a failed handshake gives the same answer
                raise NetworkError(f"TLS handshake with {host} failed: {_reason(exc)}") from None
            error = NetworkError(f"cannot connect to {host}: {_reason(exc)}")
            error.retryable = True
            raise error from None
        except httpx.InvalidURL as exc:
            raise ConfigError(f"base URL is not valid: {exc}") from None
        except (httpx.TransportError, OSError) as exc:
            raise NetworkError(f"request to {host} failed: {_reason(exc)}") from None

    def _error_from(self, response: httpx.Response) -> APIError:
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
        text = body.decode("utf-8", errors="replace")
        code, message, decoded = parse_error_body(response.status_code, text)
        return error_for_status(
            response.status_code,
            message,
            code=code,
            body=decoded,
            retry_after=_retry_after(response.headers.get("retry-after")),
        )

    def _wait(self, attempt: int, retry_after: float | None, why: str) -> None:
        if retry_after is not None:
            delay = retry_after
        else:
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt) * random.uniform(0.5, 1.5)
        self.on_retry(f"retrying in {delay:.1f} s ({why})")
        self.sleep(delay)


def reads(
    response: httpx.Response, idle_timeout: float | None, *, direct: bool = True
) -> Iterator[bytes]:
    """The body's bytes as they arrive, one network read at a time.

    With ``direct``, a chunked HTTP/1.1 body is read past h11 when it can be (``_direct_body``).
    """
    if response.is_stream_consumed:  # already read (a test transport with a fixed body)
        yield response.content
        return
    direct_body = _direct_body(response) if direct else None
    try:
        if direct_body is not None:
            yield from _read_chunked(*direct_body, idle_timeout)
        else:
            yield from response.iter_raw()
    except (httpx.ReadTimeout, httpcore.ReadTimeout):
        raise TimeoutError_(
            f"the stream went silent for {_secs(idle_timeout)} (idle timeout)"
        ) from None
    except (httpx.RemoteProtocolError, httpcore.RemoteProtocolError, ChunkedError):
        raise StreamError(
            "the connection closed before the answer was complete", status=200, code="truncated"
        ) from None
    except (httpx.TransportError, httpcore.NetworkError, OSError) as exc:
        raise StreamError(
            f"the connection failed mid-stream: {_reason(exc)}", status=200, code="network"
        ) from None


def _direct_body(response: httpx.Response) -> tuple[bytes, Any] | None:
    """What h11 has buffered and the connection, when the body can be read past h11.

    A chunked HTTP/1.1 body is read straight from httpcore's network stream and de-chunked by
    ``ChunkedDecoder`` (see ``rill.stream.chunked`` for why: it is most of the cost of a fast
    stream).
    The response headers came through httpx and h11 as usual; the bytes h11 received after them
    are taken from its public ``trailing_data``. Reaching h11 goes through private attributes of
    httpx and httpcore, so every step is checked: when anything differs (another transport, HTTP/2,
    a compressed body, other versions of the libraries) this returns None and the body is read
    with ``iter_raw`` as before. Closing the response then closes the connection, since h11 never
    saw the body end: nothing half-read goes back to the pool.
    """
    if (
        response.extensions.get("http_version") != b"HTTP/1.1"
        or response.headers.get("transfer-encoding", "").lower() != "chunked"
        or response.headers.get("content-encoding", "identity").lower() != "identity"
    ):
        return None
    network = response.extensions.get("network_stream")
    conn: Any = response.stream
    for attr in ("_stream", "_httpcore_stream", "_stream", "_connection", "_h11_state"):
        conn = getattr(conn, attr, None)
    try:
        import h11
    except ImportError:  # pragma: no cover - httpcore 1.x always brings h11
        return None
    if network is None or not isinstance(conn, h11.Connection):
        return None
    if conn.their_state is not h11.SEND_BODY:
        return None
    buffered, _closed = conn.trailing_data
    return bytes(buffered), network


def _read_chunked(buffered: bytes, network: Any, idle_timeout: float | None) -> Iterator[bytes]:
    decoder = ChunkedDecoder()
    data = buffered
    while True:
        if data:
            try:
                body = decoder.feed(data)
            except ChunkedError as exc:
                if exc.body:
                    yield exc.body  # what came before the fault is still the answer's
                raise
            if body:
                yield body
            if decoder.done:
                return
        data = network.read(READ_SIZE, idle_timeout)
        if not data:
            raise ChunkedError("the connection closed inside the chunked body")


def _secs(value: float | None) -> str:
    return "(no limit)" if value is None else f"{value:g} s"


def _is_tls(exc: BaseException) -> bool:
    import ssl

    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, ssl.SSLError):
            return True
        cause = cause.__cause__ or cause.__context__
    return "_ssl.c" in str(exc) or "SSL" in str(exc)


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    # httpx wraps OSErrors as "[Errno 111] Connection refused": keep the words.
    if "] " in text and text.startswith("["):
        text = text.split("] ", 1)[1]
    text = re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)  # OpenSSL's source location is noise
    return " ".join(text.split())


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
