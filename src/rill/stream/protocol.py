"""The OpenAI-compatible chat-completions wire format, as OpenRouter and local servers speak it.

Request side: ``Request`` (what to ask) → ``build_payload`` / ``build_headers``. Error side:
``parse_error_body`` turns any error body (OpenRouter's ``{"error": {"code", "message",
"metadata"}}``, OpenAI's string codes, vLLM's flat form, the 2026 availability shape without a
code, or an HTML page from the edge) into a code and a one-line message carrying the upstream's
own words. No HTTP happens here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rill import __version__
from rill.config.settings import Settings

if TYPE_CHECKING:
    from rill.schema import Schema

#: Body fields only OpenRouter understands; other servers may reject unknown fields (PROTOCOL §9).
OPENROUTER_ONLY_FIELDS = frozenset(
    {"models", "provider", "reasoning", "usage", "plugins", "transforms", "route"}
)
APP_URL = "https://pypi.org/project/rill-cli/"
APP_TITLE = "rill"


@dataclass(frozen=True, slots=True)
class Request:
    """One chat-completions request, before it becomes JSON."""

    messages: list[dict[str, Any]]
    model: str | None = None
    stream: bool = True
    max_tokens: int | None = None
    temperature: float | None = None
    reasoning_effort: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Extra body fields (``-o KEY=VALUE``, template options); they win over everything else."""
    schema: Schema | None = None
    """``--schema``: sent as ``response_format``; the complete answer is checked against it."""

    def options(self) -> dict[str, Any]:
        """The request's settings besides messages, as recorded in history."""
        out: dict[str, Any] = {}
        if self.max_tokens is not None:
            out["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            out["temperature"] = self.temperature
        if self.reasoning_effort is not None:
            out["reasoning_effort"] = self.reasoning_effort
        out.update(self.extra)
        if self.schema is not None:
            out["response_format"] = self.schema.response_format()
        return out


def build_payload(request: Request, *, openrouter: bool) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if request.model:
        body["model"] = request.model
    body["messages"] = request.messages
    body["stream"] = request.stream
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.reasoning_effort is not None:
        if openrouter:
            body["reasoning"] = {"effort": request.reasoning_effort}
        else:
            body["reasoning_effort"] = request.reasoning_effort
    if request.stream and not openrouter:
        # OpenRouter always reports usage; OpenAI-compatible servers only when asked.
        body["stream_options"] = {"include_usage": True}
    for key, value in request.extra.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    if request.schema is not None:  # the answer is checked against it: it is what is asked
        body["response_format"] = request.schema.response_format()
    return body


def build_headers(settings: Settings, *, stream: bool) -> dict[str, str]:
    headers = {
        "Content-Type": "application/json",
        "Accept": "text/event-stream" if stream else "application/json",
        "User-Agent": f"rill/{__version__}",
        # The body is read as it arrives (and -f raw passes it on): no compression.
        "Accept-Encoding": "identity",
    }
    if settings.api_key:
        headers["Authorization"] = f"Bearer {settings.api_key}"
    if settings.openrouter:
        headers["HTTP-Referer"] = APP_URL
        headers["X-OpenRouter-Title"] = APP_TITLE
        headers["X-Title"] = APP_TITLE  # the legacy name most of OpenRouter's docs still show
        headers["X-OpenRouter-Categories"] = "cli-agent"
    return headers


def redact(value: str, secret: str | None) -> str:
    """Replace every occurrence of ``secret`` (the API key) in ``value``."""
    if secret and len(secret) >= 8 and secret in value:
        value = value.replace(secret, _redacted(secret))
    return value


def _redacted(secret: str) -> str:
    prefix = secret[:6] if len(secret) > 12 else ""
    return f"{prefix}…REDACTED"


def redacted_headers(headers: dict[str, str], secret: str | None) -> dict[str, str]:
    out = {k: redact(v, secret) for k, v in headers.items()}
    if "Authorization" in out:  # whatever the key's length, it is never printed
        out["Authorization"] = f"Bearer {_redacted(secret or '')}"
    return out


def _one_line(text: str, limit: int = 500) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def error_message(error: dict[str, Any]) -> str:
    """The most useful one-line text of an error object (PROTOCOL §4.1).

    OpenRouter's generic "Provider returned error" hides the real text in ``metadata.raw``
    (often a JSON string); it is shown as ``[provider] text``.
    """
    message = str(error.get("message") or "").strip()
    metadata = error.get("metadata")
    if isinstance(metadata, dict):
        raw = metadata.get("raw")
        provider = metadata.get("provider_name")
        detail = _raw_text(raw) if raw else None
        if detail and (not message or message == "Provider returned error"):
            message = f"[{provider}] {detail}" if provider else detail
        elif provider and message == "Provider returned error":
            message = f"[{provider}] {message}"
    return _one_line(message or "unknown error")


def _raw_text(raw: Any) -> str | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return raw.strip() or None
    if isinstance(raw, dict):
        inner = raw.get("error", raw)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
        if raw.get("message"):
            return str(raw["message"])
    return None


def parse_error_body(status: int, text: str) -> tuple[int | str | None, str, Any]:
    """``(code, message, body)`` from an error response body of any shape."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    except RecursionError:  # nested too deep to parse: the status says what there is to say
        return status, "the server sent an error body nested too deep to read", None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("code")
            if code is None:
                code = error.get("http_status") or error.get("error_type") or status
            return code, error_message(error), body
        if isinstance(error, str):  # some proxies: {"error": "text"}
            return status, _one_line(error), body
        if body.get("message"):  # vLLM before 0.10.1: flat {"object":"error","message",…}
            return body.get("code") or status, _one_line(str(body["message"])), body
    snippet = _html_text(text)
    return status, snippet or "the server gave no error details", text


def _html_text(text: str) -> str:
    """A short readable snippet of a non-JSON body (an edge proxy's HTML error page)."""
    title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
    if title:
        return _one_line(title.group(1), 200)
    stripped = re.sub(r"<[^>]+>", " ", text)
    return _one_line(stripped, 200)
