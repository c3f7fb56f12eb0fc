"""Realistic error bodies and headers: OpenRouter's, and those of the other personas."""

from __future__ import annotations

import json
import time
from http import HTTPStatus
from typing import Any

from rill.fake.common import (
    DEFAULT_MODEL,
    MSG_NO_AUTH,
    MSG_USER_NOT_FOUND,
    REASONS,
    USER_ID,
    seconds,
)

_DOCS_ERRORS = "https://openrouter.ai/docs/api_reference/errors-and-debugging"


ERROR_KINDS: dict[int, tuple[str, ...]] = {
    400: ("invalid-model", "context-length", "stream-options"),
    401: ("no-auth", "user-not-found", "no-auth-legacy"),
    402: ("credits", "insufficient", "key-limit"),
    403: ("moderation", "guardrail"),
    404: ("no-endpoints",),
    408: ("timeout",),
    413: ("too-large",),
    422: ("unprocessable",),
    429: ("platform", "upstream"),
    500: ("server",),
    502: ("upstream", "html"),
    503: ("unavailable",),
    504: ("timeout",),
    524: ("timeout",),
    529: ("overloaded",),
}
"""Canned pre-stream errors: status -> kinds (the first is the default). The kinds "html" (an
edge proxy's HTML page) and "availability" (the 2026 body without ``error.code``) work with any
status."""

_HTML_PAGE = (
    "<html>\r\n<head><title>{status} {phrase}</title></head>\r\n<body>\r\n"
    "<center><h1>{status} {phrase}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
    "</body>\r\n</html>\r\n"
)

_AVAILABILITY = {
    400: ("model_not_found", False, "invalid_request", "{model} is not a valid model ID"),
    403: ("region_restricted", False, "permission_denied", "{model} is not available here"),
    404: ("no_endpoints", False, "not_found", "No endpoints found for {model}."),
    429: ("capacity_exhausted", True, "rate_limit_exceeded", "{model} is out of capacity"),
    503: ("temporarily_unavailable", True, "provider_unavailable", "{model} is unavailable"),
}

_OPENAI_ERRORS = {
    400: ("invalid_request_error", "invalid_value", "Invalid value for 'messages'."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Not supported."),
    404: ("invalid_request_error", "model_not_found", "The model `{model}` does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", "server_error", "The server had an error processing your request."),
    503: ("server_error", "engine_overloaded", "The engine is currently overloaded."),
}


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return REASONS.get(status, "Error")


def _next_midnight_ms() -> str:
    return str((int(time.time() // 86400) + 1) * 86400 * 1000)


_Parts = tuple[str, dict[str, Any] | None, dict[str, Any]]
_USER = {"user_id": USER_ID}


def _bad_request(kind: str, model: str, provider: str, ratelimit: dict[str, str]) -> _Parts:
    if kind == "context-length":
        msg = (
            "This endpoint's maximum context length is 128000 tokens. However, you requested "
            "about 210000 tokens (200000 of text input, 10000 in the output). Please reduce "
            "the length of either one."
        )
        return msg, {"error_type": "context_length_exceeded", "provider_name": None}, {}
    if kind == "stream-options":
        return "Unrecognized request argument supplied: stream_options", None, {}
    return f"{model} is not a valid model ID", None, {}


def _unauthorized(kind: str, model: str, provider: str, ratelimit: dict[str, str]) -> _Parts:
    texts = {"user-not-found": MSG_USER_NOT_FOUND, "no-auth-legacy": "No auth credentials found"}
    return texts.get(kind, MSG_NO_AUTH), None, {}


def _payment(kind: str, model: str, provider: str, ratelimit: dict[str, str]) -> _Parts:
    if kind == "insufficient":
        return "Insufficient credits. Add more using https://openrouter.ai/credits", None, _USER
    if kind == "key-limit":
        msg = (
            "This request requires more credits, or fewer max_tokens. You requested up to "
            "4096 tokens, but can only afford 1200. To increase, visit "
            "https://openrouter.ai/settings/keys and create a key with a higher total limit"
        )
        return msg, {"provider_name": None}, _USER
    msg = (
        "This request requires more credits, or fewer max_tokens. You requested up to 65536 "
        "tokens, but can only afford 3395. To increase, visit "
        "https://openrouter.ai/settings/credits and upgrade to a paid account"
    )
    return msg, {"provider_name": None}, _USER


def _forbidden(kind: str, model: str, provider: str, ratelimit: dict[str, str]) -> _Parts:
    if kind == "guardrail":
        return "Request blocked by guardrail", {"patterns": ["credit-card-number"]}, {}
    msg = (
        f"{model} requires moderation on {provider}. Your input was flagged for "
        '"harassment". No credits were charged.'
    )
    meta = {
        "reasons": ["harassment"],
        "flagged_input": "you are all idiots and I will...",
        "provider_name": provider,
        "model_slug": model,
    }
    return msg, meta, {}


def _rate_limited(kind: str, model: str, provider: str, ratelimit: dict[str, str]) -> _Parts:
    if kind == "upstream":
        raw = {
            "error": {
                "message": f"{model} is temporarily rate-limited upstream. Please retry "
                "shortly, or add your own key to accumulate your rate limits: "
                "https://openrouter.ai/settings/integrations",
                "type": "rate_limit_exceeded",
            }
        }
        meta = {
            "raw": json.dumps(raw),
            "provider_name": provider,
            "error_type": "rate_limit_exceeded",
            "limit_source": "upstream_provider_shared_pool",
            "is_byok": False,
        }
        return "Provider returned error", meta, _USER
    msg = (
        "Rate limit exceeded: free-models-per-day. Add 10 credits to unlock 1000 free model "
        "requests per day"
    )
    meta = {
        "headers": ratelimit,
        "limit_source": "openrouter_free_tier_daily",
        "provider_name": None,
    }
    return msg, meta, _USER


def _bad_gateway(kind: str, model: str, provider: str, ratelimit: dict[str, str]) -> _Parts:
    raw = {"error": {"message": "The server had an error.", "type": "server_error"}}
    meta = {
        "raw": json.dumps(raw),
        "provider_name": provider,
        "error_type": "provider_unavailable",
    }
    return "Provider returned error", meta, {}


_BY_STATUS = {
    400: _bad_request,
    401: _unauthorized,
    402: _payment,
    403: _forbidden,
    429: _rate_limited,
    502: _bad_gateway,
}


def _openrouter_error(
    status: int, kind: str, model: str, provider: str, ratelimit: dict[str, str]
) -> _Parts:
    """(message, metadata, top-level extras) of an OpenRouter error body."""
    special = _BY_STATUS.get(status)
    if special is not None:
        return special(kind, model, provider, ratelimit)
    simple = {
        404: (f"No endpoints found for {model}.", None),
        408: ("Operation timed out. Please try again later.", "timeout"),
        413: ("Request payload too large.", "payload_too_large"),
        422: ("Request could not be processed.", "unprocessable"),
        500: ("Internal Server Error", "server"),
        503: (f"No available providers for {model} right now.", "provider_unavailable"),
        504: ("Upstream request timed out.", "timeout"),
        524: ("Request timed out. Please try again later.", "timeout"),
        529: ("Provider is overloaded. Please try again later.", "provider_overloaded"),
    }
    msg, etype = simple.get(status, (phrase(status), None))
    meta: dict[str, Any] | None = None if etype is None else {"error_type": etype}
    if status == 529 and meta is not None:
        meta["provider_name"] = provider
    return msg, meta, {}


def _availability(
    status: int, model: str, retry_after: float | None
) -> tuple[str, str, dict[str, Any]]:
    code, retryable, etype, msg = _AVAILABILITY.get(status, _AVAILABILITY[503])
    avail: dict[str, Any] = {"code": code, "retryable": retryable}
    if retry_after is not None:
        avail["retry_after"] = retry_after
    avail["requested_models"] = [model]
    avail["docs_url"] = _DOCS_ERRORS
    return msg.format(model=model), etype, avail


def _generic_error(
    status: int, persona: str, model: str, message: str | None
) -> dict[str, Any] | str:
    etype, code, msg = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", "error", "")
    )
    msg = message or msg.format(model=model) or phrase(status)
    if persona == "vllm-old":
        kind = phrase(status).replace(" ", "").removesuffix("Error") + "Error"
        return {"object": "error", "message": msg, "type": kind, "param": None, "code": status}
    if persona == "llamacpp-legacy":
        types = {401: "authentication_error", 404: "not_found_error", 503: "unavailable_error"}
        etype = types.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"code": status, "message": msg, "type": etype}}
    if persona == "ollama":
        etype = {400: "invalid_request_error", 404: "not_found_error"}.get(status, "api_error")
        return {"error": {"message": msg, "type": etype, "param": None, "code": None}}
    return {"error": {"message": msg, "type": etype, "param": None, "code": code}}


def build_error(
    status: int,
    kind: str | None = None,
    *,
    model: str = DEFAULT_MODEL,
    persona: str = "openrouter",
    retry_after: float | None = None,
    message: str | None = None,
    provider: str = "OpenAI",
) -> tuple[dict[str, str], dict[str, Any] | str]:
    """Headers and body of a canned pre-stream error (see ``ERROR_KINDS``)."""
    kind = kind or ERROR_KINDS.get(status, ("generic",))[0]
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = seconds(retry_after)
    if kind == "html":
        headers["Content-Type"] = "text/html"
        return headers, _HTML_PAGE.format(status=status, phrase=phrase(status))
    headers["Content-Type"] = "application/json"
    if persona != "openrouter":
        if kind == "stream-options" and message is None:
            message = "Unrecognized request argument supplied: stream_options"
        return headers, _generic_error(status, persona, model, message)
    if kind == "availability":
        msg, etype, avail = _availability(status, model, retry_after)
        error = {"message": message or msg, "error_type": etype, "http_status": status}
        return headers, {"error": {**error, "availability": avail}}
    ratelimit: dict[str, str] = {}
    if status == 429 and kind == "platform":
        ratelimit = {
            "X-RateLimit-Limit": "50",
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": _next_midnight_ms(),
        }
        headers.update(ratelimit)
    msg, meta, extra = _openrouter_error(status, kind, model, provider, ratelimit)
    body: dict[str, Any] = {"message": message or msg, "code": status}
    if meta is not None:
        body["metadata"] = meta
    if status == 503:
        body["availability"] = _availability(503, model, retry_after)[2]
    return headers, {"error": body, **extra}


DEFAULT_MIDSTREAM = {
    "code": 502,
    "message": "Upstream provider disconnected mid-stream",
    "metadata": {"error_type": "provider_unavailable"},
}
