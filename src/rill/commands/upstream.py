"""Side requests to the upstream (``GET /models``, ``GET /key``) for ``rill models`` and
``rill key``, and the model list they share with its on-disk cache (``rill.config.models``).

Failures become rill's typed errors, as in a chat. No key is needed to list models; one is sent
when configured, under the same rules as a chat request.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from rill.config.models import ModelList, cache_path, parse_models, read_cache, write_cache
from rill.config.settings import Settings
from rill.errors import ConfigError, NetworkError, TimeoutError_, error_for_status
from rill.stream.client import make_http_client
from rill.stream.protocol import build_headers, parse_error_body

#: Bodies larger than this are not a model list (OpenRouter's full list is about 0.5 MB).
MAX_BODY = 64 << 20


def load_models(
    settings: Settings,
    *,
    refresh: bool = False,
    transport: httpx.BaseTransport | None = None,
    clock: Callable[[], float] = time.time,
    warn: Callable[[str], None] | None = None,
) -> ModelList:
    """The cached list when it is fresh and for this base URL, else a newly fetched one.

    A list that cannot be cached (read-only folder, full disk) is still returned; ``warn`` is
    told why.
    """
    path = cache_path(settings)
    now = clock()
    if not refresh:
        cached = read_cache(path, settings.base_url, now=now)
        if cached is not None:
            return cached
    models = fetch_models(settings, transport=transport)
    try:
        write_cache(path, settings.base_url, models, fetched_at=now)
    except OSError as exc:
        if warn is not None:
            warn(f"cannot write the models cache {path}: {exc.strerror or exc}")
    return ModelList(settings.base_url, models, now, from_cache=False)


def check_models_transport(settings: Settings) -> None:
    """The chat request's rules, except that listing models needs no key."""
    parts = urlsplit(settings.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"base URL {settings.base_url!r} is not an http(s) URL")
    if settings.api_key:
        settings.check_transport()


def fetch_models(
    settings: Settings, *, transport: httpx.BaseTransport | None = None
) -> list[dict[str, Any]]:
    """``GET {base_url}/models``; a non-200 status becomes the same typed error as in a chat."""
    check_models_transport(settings)
    return parse_models(api_get(settings, "/models", transport=transport))


def api_get(settings: Settings, path: str, *, transport: httpx.BaseTransport | None = None) -> str:
    """The body of ``GET {base_url}{path}`` (a side endpoint: ``/models``, ``/key``).

    Failures become rill's typed errors, as in a chat: a status other than 200 by its code (401
    → exit 4, 402 → 5, 429 → 6, …) with the upstream's own message, a network failure or a
    timeout as exit 8. The caller checks the transport rules first.
    """
    url = f"{settings.base_url}{path}"
    host = urlsplit(url).hostname
    headers = build_headers(settings, stream=False)
    headers.pop("Content-Type", None)  # a GET has no body
    with make_http_client(settings, transport) as http:
        try:
            response = http.get(url, headers=headers)
        except httpx.ConnectTimeout:
            raise TimeoutError_(
                f"cannot connect to {host}: timed out after {settings.connect_timeout:g} s"
            ) from None
        except httpx.TimeoutException:
            limit = f" within {settings.timeout:g} s" if settings.timeout else ""
            raise TimeoutError_(f"no response from {host}{limit}") from None
        except httpx.ConnectError as exc:
            raise NetworkError(f"cannot connect to {host}: {_reason(exc)}") from None
        except (httpx.TransportError, OSError) as exc:
            raise NetworkError(f"request to {host} failed: {_reason(exc)}") from None
    text = response.content[:MAX_BODY].decode("utf-8", errors="replace")
    if response.status_code != 200:
        code, message, body = parse_error_body(response.status_code, text)
        raise error_for_status(response.status_code, message, code=code, body=body)
    return text


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "] " in text and text.startswith("["):  # "[Errno 111] Connection refused"
        text = text.split("] ", 1)[1]
    return " ".join(text.split())
