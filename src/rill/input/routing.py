"""OpenRouter's routing flags → the request's ``provider`` object, ``models`` list and model.

``--provider``/``--only``/``--ignore``/``--sort``/``--no-fallbacks``/``--zdr``/
``--deny-data-collection`` fill OpenRouter's provider preferences (``order``, ``only``,
``ignore``, ``sort``, ``allow_fallbacks``, ``zdr``, ``data_collection``); the ``[provider]`` table
of config.toml gives defaults, and a flag wins over the table key it sets. ``--fallback MODEL``
makes ``models: [primary, fallback, …]``; ``--online`` asks for web search with the ``:online``
model variant.

Only OpenRouter understands these fields. With another server each flag is a usage error that
names it, never silently dropped; the config table is a default for OpenRouter and is simply not
sent elsewhere. Pure functions: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rill.config.settings import Settings
from rill.errors import ConfigError, UsageError
from rill.urls import display_url

SORTS = ("price", "throughput", "latency")
ONLINE_SUFFIX = ":online"

#: ``[provider]`` keys rill understands, with the type each value must have.
TABLE_KEYS: dict[str, type] = {
    "order": list,
    "only": list,
    "ignore": list,
    "sort": str,
    "allow_fallbacks": bool,
    "zdr": bool,
    "data_collection": str,
    "require_parameters": bool,
}


@dataclass(frozen=True, slots=True)
class RoutingFlags:
    """The routing flags of one run, as typed (empty = not given)."""

    provider: tuple[str, ...] = ()
    only: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    sort: str | None = None
    no_fallbacks: bool = False
    zdr: bool = False
    deny_data_collection: bool = False
    fallback: tuple[str, ...] = ()
    online: bool = False

    def given(self) -> list[str]:
        """The flags given, spelled as on the command line, in a fixed order."""
        names = [
            ("--provider", bool(self.provider)),
            ("--only", bool(self.only)),
            ("--ignore", bool(self.ignore)),
            ("--sort", self.sort is not None),
            ("--no-fallbacks", self.no_fallbacks),
            ("--zdr", self.zdr),
            ("--deny-data-collection", self.deny_data_collection),
            ("--fallback", bool(self.fallback)),
            ("--online", self.online),
        ]
        return [name for name, on in names if on]

    def preferences(self) -> dict[str, Any]:
        """The provider-object keys these flags set."""
        out: dict[str, Any] = {}
        if self.provider:
            out["order"] = list(self.provider)
        if self.only:
            out["only"] = list(self.only)
        if self.ignore:
            out["ignore"] = list(self.ignore)
        if self.sort is not None:
            out["sort"] = self.sort
        if self.no_fallbacks:
            out["allow_fallbacks"] = False
        if self.zdr:
            out["zdr"] = True
        if self.deny_data_collection:
            out["data_collection"] = "deny"
        return out


def make_flags(
    *,
    provider: Sequence[str] | None = None,
    only: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    sort: str | None = None,
    no_fallbacks: bool = False,
    zdr: bool = False,
    deny_data_collection: bool = False,
    fallback: Sequence[str] | None = None,
    online: bool = False,
) -> RoutingFlags:
    """``RoutingFlags`` from the CLI's values; a bad ``--sort`` or an empty name is exit 2."""
    if sort is not None and sort not in SORTS:
        raise UsageError(f"--sort must be one of {', '.join(SORTS)}, not {sort!r}")
    lists = {"--provider": provider, "--only": only, "--ignore": ignore, "--fallback": fallback}
    for flag, values in lists.items():
        if any(not str(v).strip() for v in values or ()):
            raise UsageError(f"{flag} needs a name, not an empty string")
    return RoutingFlags(
        provider=tuple(provider or ()),
        only=tuple(only or ()),
        ignore=tuple(ignore or ()),
        sort=sort,
        no_fallbacks=no_fallbacks,
        zdr=zdr,
        deny_data_collection=deny_data_collection,
        fallback=tuple(fallback or ()),
        online=online,
    )


def check_table(table: Mapping[str, Any], source: str = "config.toml [provider]") -> None:
    """Refuse a ``[provider]`` table rill cannot send as it is (exit 3, naming the key)."""
    for key, value in table.items():
        expected = TABLE_KEYS.get(key)
        if expected is None:
            known = ", ".join(sorted(TABLE_KEYS))
            raise ConfigError(f"{source}: unknown key {key!r} (known keys: {known})")
        if not isinstance(value, expected):
            raise ConfigError(f"{source}: {key} must be {expected.__name__}")
        if isinstance(value, list) and not all(isinstance(v, str) and v for v in value):
            raise ConfigError(f"{source}: {key} must be a list of provider names")
    if "sort" in table and table["sort"] not in SORTS:
        raise ConfigError(f"{source}: sort must be one of {', '.join(SORTS)}")
    if "data_collection" in table and table["data_collection"] not in ("allow", "deny"):
        raise ConfigError(f"{source}: data_collection must be allow or deny")


def check_routing(flags: RoutingFlags, settings: Settings) -> None:
    """A routing flag for a server that is not OpenRouter is a usage error naming the flag."""
    given = flags.given()
    if given and not settings.openrouter:
        server = display_url(settings.base_url)
        raise UsageError(
            f"{given[0]} is OpenRouter-only, and {server} is not OpenRouter "
            "(set RILL_OPENROUTER=1 if it is OpenRouter behind another address)"
        )


def online_model(model: str | None) -> str | None:
    """The ``:online`` variant of ``model`` (web search); unchanged when it already is one."""
    if model is None or model.endswith(ONLINE_SUFFIX):
        return model
    return model + ONLINE_SUFFIX


def routed_model(flags: RoutingFlags, model: str | None) -> str | None:
    """The model to ask for: with ``--online``, its ``:online`` variant."""
    return online_model(model) if flags.online else model


def routing_fields(
    flags: RoutingFlags, settings: Settings, model: str | None = None
) -> dict[str, Any]:
    """Extra request fields for ``flags`` and the config table: ``provider`` and ``models``.

    ``model`` is the primary model as sent (after ``routed_model``); the ``models`` list starts
    with it. Raises ``UsageError`` for flags aimed at another server, ``ConfigError`` for a bad
    table.
    """
    check_routing(flags, settings)
    if not settings.openrouter:
        return {}
    table = dict(settings.provider)
    check_table(table)
    provider = {**table, **flags.preferences()}
    out: dict[str, Any] = {}
    if provider:
        out["provider"] = provider
    if flags.fallback:
        fallbacks = [routed_model(flags, m) or m for m in flags.fallback]
        out["models"] = [m for m in (model, *fallbacks) if m]
    return out


def merge_under(extra: dict[str, Any], fields: Mapping[str, Any]) -> dict[str, Any]:
    """``extra`` (``-o`` and template fields) over the routing ``fields``: an explicit field
    wins, key by key inside the ``provider`` object."""
    out = dict(fields)
    for key, value in extra.items():
        below = out.get(key)
        out[key] = (
            {**below, **value} if isinstance(below, dict) and isinstance(value, dict) else value
        )
    return out
