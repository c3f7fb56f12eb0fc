"""Token and cost totals, added up from the index alone (``rill usage``, ``rill key``)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal

from rill.history.chatfiles import ChatFiles
from rill.history.index import index_text, scan
from rill.history.normalise import is_number
from rill.history.records import decode_at, iso, number_or_zero

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "reasoning_tokens", "cached_tokens")

_Totals = list[Any]
"""requests, the four ``USAGE_FIELDS``, cost, requests without a cost."""


def usage(
    files: ChatFiles, since: datetime | None = None, by: Literal["model", "day"] = "model"
) -> list[dict[str, Any]]:
    """Token and cost totals from the index alone, one row per served model (requested model
    while none was reported) sorted by cost, or per UTC day (``YYYY-MM-DD``) in date order.

    Rows: key, requests, prompt_tokens, completion_tokens, reasoning_tokens, cached_tokens,
    cost. ``since`` is inclusive; a naive datetime is local time. The grand total is
    ``usage_total(rows)``, a row whose key is "total".
    """
    floor = iso(since) if since is not None else ""
    text, _size = index_text(files)
    rows: dict[str, _Totals] = {}
    for _chat, _ev, at, start in scan(files, text).values():
        record = decode_at(text, start) if at >= floor else None
        if record is not None:
            _add(rows, record, at, by)
    result = [usage_row(key, row) for key, row in rows.items()]
    if by == "day":
        return sorted(result, key=lambda r: str(r["key"]))
    return sorted(result, key=lambda r: (-(r["cost"] or 0), -r["requests"], str(r["key"])))


def _add(rows: dict[str, _Totals], record: dict[str, Any], at: str, by: str) -> None:
    """Count one index record into its row of ``rows``."""
    get = record.get
    if get("sent") is False:
        return  # tool results kept after a cancel or the round limit: no request was made
    numbers = (
        get("prompt_tokens", 0),
        get("completion_tokens", 0),
        get("reasoning_tokens", 0),
        get("cached_tokens", 0),
    )
    if not all(is_number(n) for n in numbers):
        return  # a hand-edited line with a non-number is left out
    key = str((at[:10] if by == "day" else get("served") or get("model")) or "unknown")
    row = rows.get(key)
    if row is None:
        row = rows[key] = [0, 0, 0, 0, 0, 0.0, 0]
    row[0] += 1
    for n, number in enumerate(numbers, start=1):
        row[n] += number
    cost = get("cost")
    if is_number(cost):
        row[5] += cost
    else:
        row[6] += 1  # no cost reported: unknown, not free


def usage_row(key: str, row: list[int | float]) -> dict[str, Any]:
    """A usage row; ``cost`` is None when no request in it reported one."""
    requests, without = int(row[0]), int(row[6])
    return {
        "key": key,
        "requests": requests,
        **{field: row[n] for n, field in enumerate(USAGE_FIELDS, start=1)},
        "cost": round(float(row[5]), 9) if requests > without else None,
        "requests_without_cost": without,
    }


def known_cost(records: list[dict[str, Any]]) -> float | None:
    """The sum of the reported costs; None when none was reported."""
    costs = [r["cost"] for r in records if is_number(r.get("cost"))]
    return round(sum(costs), 9) if costs else None


def usage_total(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sum ``HistoryStore.usage`` rows into one row whose key is "total"."""
    total: list[int | float] = [0, 0, 0, 0, 0, 0.0, 0]
    fields = ("requests", *USAGE_FIELDS, "cost", "requests_without_cost")
    for row in rows:
        for n, field in enumerate(fields):
            total[n] += number_or_zero(row.get(field))
    return usage_row("total", total)
