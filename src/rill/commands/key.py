"""``rill key``: what OpenRouter says about the API key (``GET /key``), and ``rill usage --check``.

OpenRouter answers ``{"data": {"label", "limit", "limit_remaining", "limit_reset", "usage",
"usage_daily", "usage_weekly", "usage_monthly", "is_free_tier", "rate_limit", …}}`` with money
in USD (credits) and ``null`` for "no limit". Older deployments only know ``/auth/key``; a 404
on ``/key`` falls back to it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import typer

from rill.commands import options as opt
from rill.commands.output import piped, print_json, stdout_is_terminal, tsv_cell, warn
from rill.errors import APIError, ConfigError

KEY_PATHS = ("/key", "/auth/key")


def fetch_key(settings: Any, *, transport: Any = None) -> dict[str, Any]:
    """The ``data`` object of ``GET {base_url}/key`` (exit 3 without a key)."""
    from rill.commands.upstream import api_get, redact_json

    if not settings.api_key:
        raise ConfigError(
            "no API key: set OPENROUTER_API_KEY (or api_key_cmd in config.toml) to ask about it"
        )
    settings.check_transport()
    for n, path in enumerate(KEY_PATHS):
        try:
            text = api_get(settings, path, transport=transport)
        except APIError as exc:
            if exc.status == 404 and n + 1 < len(KEY_PATHS):
                continue
            raise
        break
    try:
        body: Any = redact_json(json.loads(text), settings.api_key)
    except ValueError:
        raise APIError("the /key answer is not JSON", status=200, code="bad_response") from None
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict):
        raise APIError("the /key answer has no data object", status=200, code="bad_response")
    return data


def money(value: Any, *, none: str = "-") -> str:
    """USD for a person: ``$12.50``, ``$0.0042`` (small amounts keep their digits)."""
    if value is None:
        return none
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if value == 0 or abs(value) >= 0.01:
        return f"${value:,.2f}"
    return "$" + f"{value:.6f}".rstrip("0")


def key_lines(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of ``rill key``'s human output."""
    limit = money(data.get("limit"), none="no limit")
    reset = data.get("limit_reset")
    if data.get("limit") is not None and reset:
        limit += f" (resets {reset})"
    usage = " · ".join(
        f"{name} {money(data.get(field))}"
        for name, field in (
            ("today", "usage_daily"),
            ("this week", "usage_weekly"),
            ("this month", "usage_monthly"),
            ("all time", "usage"),
        )
        if field in data
    )
    rows = [
        ("label", str(data.get("label") or "-")),
        ("limit", limit),
        ("remaining", money(data.get("limit_remaining"), none="no limit")),
        ("usage", usage or "-"),
    ]
    rate = data.get("rate_limit")
    if isinstance(rate, dict) and rate.get("requests") is not None:
        rows.append(("rate limit", f"{rate.get('requests')} requests / {rate.get('interval')}"))
    if "is_free_tier" in data:
        rows.append(("free tier", "yes" if data.get("is_free_tier") else "no"))
    return rows


def key_command(
    ctx: typer.Context,
    as_json: opt.Json = False,
    base_url: opt.BaseUrl = None,
) -> None:
    """Show the API key's label, limit, what remains and its spending (OpenRouter's /key)."""
    from rill.config.settings import resolve_settings

    transport = ctx.obj.get("transport") if isinstance(ctx.obj, dict) else None
    settings = resolve_settings({"base_url": base_url}, warn=warn)
    data = fetch_key(settings, transport=transport)
    if as_json:
        print_json(data)
        return
    safe: Callable[[str], str] = tsv_cell
    if stdout_is_terminal():
        from rill.terminal.tty import neutralise

        safe = neutralise
    width = max(len(name) for name, _ in key_lines(data))
    with piped():
        for name, value in key_lines(data):
            sys.stdout.write(f"{name:<{width}}  {safe(value)}\n")


def usage_check(
    store: Any, *, transport: Any = None, now: datetime | None = None
) -> dict[str, Any]:
    """Today's cost as rill recorded it beside what the key reports for today (UTC days)."""
    from rill.config.settings import resolve_settings
    from rill.history import usage_total

    now = now or datetime.now(UTC)
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    recorded = float(usage_total(store.usage(since=start, by="day")).get("cost") or 0)
    data = fetch_key(resolve_settings({}, warn=warn), transport=transport)
    reported = data.get("usage_daily")
    reported = reported if isinstance(reported, int | float) else None
    return {
        "day": start.date().isoformat(),
        "recorded_cost": recorded,
        "key_cost": reported,
        "difference": None if reported is None else reported - recorded,
    }


def check_line(check: dict[str, Any]) -> str:
    """``rill usage --check``'s line for a person."""
    head = f"today ({check['day']}, UTC): rill recorded {money(check['recorded_cost'])}"
    if check["key_cost"] is None:
        return head + "; the key reports no daily usage"
    line = f"{head}, the key reports {money(check['key_cost'])}"
    diff = check["difference"]
    if abs(diff) < 0.000001:
        return line + " (they agree)"
    if diff > 0:
        return line + f" ({money(diff)} spent elsewhere: other tools, or runs without history)"
    return line + f" ({money(-diff)} not yet counted by OpenRouter)"


def register(app: typer.Typer) -> None:
    app.command("key")(key_command)


def cache_saving(rows: list[dict[str, Any]], models: list[dict[str, Any]]) -> float | None:
    """What the cached prompt tokens of ``rows`` (``rill usage`` rows by served model) saved at
    the listed prices: each model's prompt price minus its cache-read price. ``None`` when no
    row with cached tokens has both prices."""
    from rill.config.models import per_million

    prices = {}
    for model in models:
        pricing = model.get("pricing")
        if isinstance(pricing, dict):
            full, read = (
                per_million(pricing.get("prompt")),
                per_million(pricing.get("input_cache_read")),
            )
            if full is not None and read is not None and full >= read:
                prices[model.get("id")] = float(full - read) / 1_000_000
    saved = None
    for row in rows:
        cached = row.get("cached_tokens") or 0
        if cached and row.get("key") in prices:
            saved = (saved or 0.0) + cached * prices[row["key"]]
    return saved


def saving_line(rows: list[dict[str, Any]], by: str) -> str | None:
    """``rill usage``'s note on prompt caching, from the cached model list (never fetched here)."""
    if by != "model" or not any(row.get("cached_tokens") for row in rows):
        return None
    import time

    from rill.config.models import cache_path, read_cache
    from rill.config.settings import resolve_settings
    from rill.urls import display_url

    settings = resolve_settings({}, warn=warn)
    server = display_url(settings.base_url)  # as rill.commands.upstream caches it
    listing = read_cache(cache_path(settings), server, now=time.time(), ttl=float("inf"))
    saved = cache_saving(rows, listing.models) if listing is not None else None
    if saved is None:
        return None
    return f"prompt caching saved about {money(saved)} (at the listed cache-read prices)"
