"""Exit codes and the one exception tree rill raises.

Every failure a user can meet is a ``RillError`` carrying the exit code the contract gives it, so
the CLI maps outcomes to codes in exactly one place (``RillError.exit_code``)::

    RillError                      exit 1   internal error (a bug)
    ├── UsageError                 exit 2   bad flags or arguments, empty prompt, placeholder
    ├── ConfigError                exit 3   missing API key, unreadable config, key over plain http
    ├── APIError                   exit 7   the upstream answered with an error (status, code, body)
    │   ├── AuthError              exit 4   HTTP 401, 403
    │   ├── CreditsError           exit 5   HTTP 402
    │   └── RateLimitError         exit 6   HTTP 429 (after retries)
    ├── StreamError                exit 7   error chunk inside the stream, bad framing, truncation
    ├── NetworkError               exit 8   connect/DNS/TLS failure before a response
    │   └── TimeoutError_          exit 8   connect, first-token, idle or total time limit
    ├── SchemaMismatch             exit 9   the answer is not JSON valid for --schema
    └── Cancelled                  exit 130 (SIGINT), 143 (SIGTERM, SIGHUP), 141 (closed stdout)

Messages are one line, carry the upstream's own words, and never contain the API key.
"""

from __future__ import annotations

import re
from enum import IntEnum, unique
from typing import Any


@unique
class ExitCode(IntEnum):
    OK = 0
    INTERNAL = 1
    USAGE = 2
    CONFIG = 3
    AUTH = 4
    CREDITS = 5
    RATE_LIMITED = 6
    UPSTREAM = 7
    NETWORK = 8
    SCHEMA = 9  # the answer does not match --schema (it is still shown and kept)
    OUTPUT = 74  # EX_IOERR (sysexits.h): stdout could not be written, e.g. a full disk
    # 128 + signal number, as shells report a process killed by that signal.
    INTERRUPTED = 130  # SIGINT (2)
    BROKEN_PIPE = 141  # SIGPIPE (13): stdout was closed by its reader
    TERMINATED = 143  # SIGTERM (15); SIGHUP is treated the same way


class RillError(Exception):
    """Root of rill's errors; ``str(err)`` is the one-line message shown to the user."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(RillError):
    exit_code = ExitCode.USAGE


class ConfigError(RillError):
    exit_code = ExitCode.CONFIG


class APIError(RillError):
    """The upstream refused the request (non-2xx before streaming, or an error in a 200 body).

    ``status`` is the HTTP status when there was one, ``code`` the upstream's own error code
    (number or string, as sent), ``body`` the decoded error body (or raw text) for debugging.
    """

    exit_code = ExitCode.UPSTREAM

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | str | None = None,
        body: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code if code is not None else status
        self.body = body
        self.retry_after = retry_after


class AuthError(APIError):
    exit_code = ExitCode.AUTH


class CreditsError(APIError):
    exit_code = ExitCode.CREDITS


class RateLimitError(APIError):
    exit_code = ExitCode.RATE_LIMITED


class StreamError(APIError):
    """The stream itself failed after HTTP 200: an error chunk, bad framing, or truncation."""

    exit_code = ExitCode.UPSTREAM


class NetworkError(RillError):
    exit_code = ExitCode.NETWORK
    retryable = False
    """True for failures another attempt may cure (refused, DNS, connect timeout), not TLS."""


class TimeoutError_(NetworkError):  # noqa: N801 - trailing underscore avoids the builtin's name
    pass


class SchemaMismatch(RillError):
    """The complete answer is not JSON, or not valid for ``--schema``. ``path`` is the first
    failing place in the answer (``$.items[0].age``), None when it is not JSON at all."""

    exit_code = ExitCode.SCHEMA
    code = "schema_mismatch"

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class OutputError(RillError):
    """Standard output is missing or cannot be written (``rill … >&-``, a full disk)."""

    def __init__(self, message: str, exit_code: ExitCode = ExitCode.OUTPUT) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class Cancelled(RillError):
    """The run was stopped from outside: a signal or a closed stdout.

    ``reason`` names the cause ("SIGINT", "SIGTERM", "SIGHUP", "broken pipe"); the exit code
    follows it.
    """

    def __init__(self, reason: str, exit_code: ExitCode) -> None:
        super().__init__(f"cancelled by {reason}")
        self.reason = reason
        self.exit_code = exit_code


def error_for_status(
    status: int,
    message: str,
    *,
    code: int | str | None = None,
    body: Any = None,
    retry_after: float | None = None,
) -> APIError:
    """Build the typed error for an HTTP status (the single status → exit code table)."""
    cls: type[APIError]
    if status in (401, 403):
        cls = AuthError
    elif status == 402:
        cls = CreditsError
    elif status == 429:
        cls = RateLimitError
    else:
        cls = APIError
    return cls(message, status=status, code=code, body=body, retry_after=retry_after)


def error_for_chunk(code: int | str | None, message: str, *, body: Any = None) -> StreamError:
    """Typed error for an error chunk inside a 200 stream.

    The contract puts every error inside the stream under exit 7, whatever its code says (a
    mid-stream 429 is not an HTTP 429: nothing can be retried once tokens were sent).
    """
    return StreamError(message, status=200, code=code or "upstream_error", body=body)


def reason(exc: BaseException) -> str:
    """What an OS or transport error says, in words: ``[Errno 111] Connection refused`` becomes
    ``Connection refused``, OpenSSL's source location is dropped, and it is one line."""
    text = str(exc) or type(exc).__name__
    if "] " in text and text.startswith("["):
        text = text.split("] ", 1)[1]
    text = re.sub(r"\s*\(_ssl\.c:\d+\)", "", text)
    return " ".join(text.split())
