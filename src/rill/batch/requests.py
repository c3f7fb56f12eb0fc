"""Items into requests: the defaults every item gets, prefixes, routing and caching."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rill.config.settings import Settings
from rill.schema import Schema, parse_schema
from rill.stream.protocol import Request

if TYPE_CHECKING:
    from rill.input.routing import RoutingFlags

from rill.batch.items import Item


@dataclass(frozen=True, slots=True)
class Defaults:
    """What the command line (and a template) gives every item that does not say otherwise."""

    model: str | None
    system: str | None
    max_tokens: int | None = None
    temperature: float | None = None
    reasoning_effort: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    prefix: str = ""
    template: Any = None  # rill.input.prompting.Template
    params: dict[str, str] = field(default_factory=dict)
    aliases: Mapping[str, str] = field(default_factory=dict)
    routing: RoutingFlags | None = None
    settings: Settings | None = None
    """With ``routing``: where the ``provider`` table and the OpenRouter check come from."""
    cache_pieces: tuple[str, ...] | None = None
    """``--cache``: the text every prompt shares (prefix, template text); None: no caching."""
    schema: Schema | None = None
    """``--schema``/``--schema-multi``: what every item's answer must match, unless the item
    gives its own ``"schema"`` (which ``--schema-multi`` then wraps too)."""
    schema_multi: bool = False


def merge_fields(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def build_request(item: Item, d: Defaults) -> tuple[Request, list[dict[str, Any]]]:
    """(request, messages this new chat starts with). The item's fields win over the defaults."""
    from rill.input.prompting import apply_template, build_messages, check_extra

    system = item.system if item.system is not None else d.system
    if item.messages is not None:
        messages = [dict(m) for m in item.messages]
        has_system = any(m.get("role") == "system" for m in messages)
        if item.system is not None:
            messages = [m for m in messages if m.get("role") != "system"]
        if system and (item.system is not None or not has_system):
            messages.insert(0, {"role": "system", "content": system})
    else:
        text = with_prefix(d.prefix, item.prompt or "")
        if d.template is not None:
            _template_system, text = apply_template(d.template, d.params, text)
        messages, _turn = build_messages(text, system)
    messages = _attached(item, messages)
    model = d.aliases.get(item.model, item.model) if item.model else d.model
    model, extra = _routed(d, model, merge_fields(d.options, item.options))
    request = Request(
        messages=_cache_marked(d, messages, model),
        model=model,
        stream=True,
        max_tokens=d.max_tokens,
        temperature=d.temperature,
        reasoning_effort=d.reasoning_effort,
        extra=extra,
        schema=d.schema if item.schema is None else parse_schema(item.schema, multi=d.schema_multi),
    )
    check_extra(request.extra)  # an item may not override model, messages or stream
    return request, messages


def _attached(item: Item, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The item's files after the text of its last user message (read now: one that cannot
    be attached fails the item, exit 2, with nothing sent)."""
    if not item.attachments:
        return messages
    from rill.errors import UsageError
    from rill.input.attachments import load_all
    from rill.stream.parts import with_parts

    at = max((n for n, m in enumerate(messages) if m.get("role") == "user"), default=None)
    if at is None:
        raise UsageError("attachments need a user message to go with")
    messages = list(messages)
    messages[at] = with_parts(messages[at], load_all(item.attachments))
    return messages


def with_prefix(prefix: str, text: str) -> str:
    """``--prompt-prefix``: the prefix, a newline, then the item's text; a prefix that already
    ends with whitespace (``"Translate: "``, ``"Context\\n\\n"``) is followed by the text as is."""
    if not prefix or prefix[-1].isspace():
        return prefix + text
    return f"{prefix}\n{text}"


def _routed(d: Defaults, model: str | None, extra: dict[str, Any]) -> tuple[str | None, Any]:
    """The item's model and fields under the routing flags, as the prompt command routes
    them: the ``:online`` variant, then ``provider``/``models`` below the explicit fields."""
    if d.routing is None or d.settings is None:
        return model, extra
    from rill.input.routing import merge_under, routed_model, routing_fields

    model = routed_model(d.routing, model)
    return model, merge_under(extra, routing_fields(d.routing, d.settings, model))


def _cache_marked(
    d: Defaults, messages: list[dict[str, Any]], model: str | None
) -> list[dict[str, Any]]:
    """``--cache``: breakpoints after the system prompt and the shared text (history keeps
    the messages unmarked)."""
    if d.cache_pieces is None:
        return messages
    from rill.input.caching import mark_cache

    fallbacks = d.routing.fallback if d.routing is not None else ()
    return mark_cache(messages, d.cache_pieces, (model, *fallbacks))
