"""Side requests to the upstream (``GET /models``, ``GET /key``) for ``rill models`` and
``rill key``, and the model list they share with its on-disk cache (``rill.config.models``).

Failures become rill's typed errors, as in a chat. No key is needed to list models; one is sent
when configured, under the same rules as a chat request.

The API key never comes back out, whether it came from ``OPENROUTER_API_KEY``, ``api_key`` or
``api_key_cmd``: every string derived from an answer (a model entry, an error's message, code
or body) has the key replaced before it is printed, cached or cut short, including where a JSON
body spelled it with escapes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from rill.config.models import ModelList, cache_path, parse_models, read_cache, write_cache
from rill.config.settings import Settings
from rill.errors import RillError, error_for_status
from rill.stream.client import make_http_client, request_url, transport_error
from rill.stream.protocol import build_headers, parse_error_body, redact
from rill.urls import display_url, display_urls

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
    server = display_url(settings.base_url)  # the cache file never holds a URL's password
    now = clock()
    if not refresh:
        cached = read_cache(path, server, now=now)
        if cached is not None:  # a cache written before keys were redacted in it is cleaned too
            redact_json(cached.models, settings.api_key)
            return cached
    models = fetch_models(settings, transport=transport)
    try:
        write_cache(path, server, models, fetched_at=now)
    except OSError as exc:
        if warn is not None:
            warn(f"cannot write the models cache {path}: {exc.strerror or exc}")
    return ModelList(server, models, now, from_cache=False)


def check_models_transport(settings: Settings) -> None:
    """The chat request's rules, except that listing models needs no key."""
    settings.check_url()
    if settings.api_key:
        settings.check_transport()


def fetch_models(
    settings: Settings, *, transport: httpx.BaseTransport | None = None
) -> list[dict[str, Any]]:
    """``GET {base_url}/models``; a non-200 status becomes the same typed error as in a chat."""
    check_models_transport(settings)
    models = parse_models(api_get(settings, "/models", transport=transport))
    redact_json(models, settings.api_key)
    return models


def api_get(settings: Settings, path: str, *, transport: httpx.BaseTransport | None = None) -> str:
    """The body of ``GET {base_url}{path}`` (a side endpoint: ``/models``, ``/key``).

    Failures become rill's typed errors, as in a chat: a status other than 200 by its code (401
    → exit 4, 402 → 5, 429 → 6, …) with the upstream's own message, a network failure or a
    timeout as exit 8. The caller checks the transport rules first. The body and every error
    message come without the API key (``redact``); a caller that decodes the body redacts the
    strings it finds there too (``redact_json``), as the JSON may have escaped the key.
    """
    try:
        return _get(settings, path, transport)
    except RillError as exc:
        exc.message = display_urls(redact(exc.message, settings.api_key))
        exc.args = (exc.message,)
        raise


def _get(settings: Settings, path: str, transport: httpx.BaseTransport | None) -> str:
    url = request_url(settings, path)
    host = urlsplit(url).hostname
    headers = build_headers(settings, stream=False)
    headers.pop("Content-Type", None)  # a GET has no body
    with make_http_client(settings, transport) as http:
        try:
            response = http.get(url, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            idle = settings.timeout
            raise transport_error(exc, host, connect=settings.connect_timeout, idle=idle) from None
    text = redact(response.content[:MAX_BODY].decode("utf-8", errors="replace"), settings.api_key)
    if response.status_code != 200:
        # Redacted before parse_error_body cuts the message short: a key cut in two is no
        # longer found.
        text = redact_body(text, settings.api_key)
        code, message, body = parse_error_body(response.status_code, text)
        raise error_for_status(response.status_code, message, code=code, body=body)
    return text


def redact_body(text: str, secret: str | None) -> str:
    """``text`` without ``secret``: a JSON body is decoded, redacted string by string and
    encoded again, so an escaped spelling of the key (``\\u0073k-…``) goes too."""
    text = redact(text, secret)
    if not secret:
        return text
    try:
        return json.dumps(redact_json(json.loads(text), secret), ensure_ascii=False)
    except (ValueError, RecursionError):  # not JSON (already redacted as text), or too deep
        return text


def redact_json(value: Any, secret: str | None) -> Any:
    """``value`` (decoded JSON) with ``secret`` replaced in every string, keys of objects
    included. Lists and objects are changed in place, walked without recursion (a hostile body
    may nest as deep as the decoder allows)."""
    if not secret:
        return value
    if isinstance(value, str):
        return redact(value, secret)
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            pairs = list(item.items())
            item.clear()
            for key, child in pairs:
                item[redact(key, secret) if isinstance(key, str) else key] = _redacted(
                    child, secret, stack
                )
        elif isinstance(item, list):
            for n, child in enumerate(item):
                item[n] = _redacted(child, secret, stack)
    return value


def _redacted(child: Any, secret: str, stack: list[Any]) -> Any:
    """A string redacted; a list or object queued on ``stack``; anything else as it is."""
    if isinstance(child, str):
        return redact(child, secret)
    if isinstance(child, dict | list):
        stack.append(child)
    return child
