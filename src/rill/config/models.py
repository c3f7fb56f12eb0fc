"""The model list of ``GET {base_url}/models``: its cache on disk (an hour) and what is read of it.

OpenRouter answers with rich entries (``context_length``, ``pricing`` in USD per token as strings,
``top_provider``); a generic OpenAI-compatible server answers ``{"object": "list", "data":
[{"id", "object", "created", "owned_by"}]}``. Both are kept exactly as received: the cache holds
the raw entries and ``rill models --json`` prints them, while ``model_row`` reads the few fields a
table shows, tolerating whatever is missing.

The cache file ``<cache_dir>/models.json`` is ``{"fetched_at": <unix seconds>, "base_url": ...,
"data": [...]}``. Shell completion reads it too (``rill.commands.completion``), so completing
``-m`` never touches the network. A cache written for another base URL is never reused. The
request itself is made by ``rill.commands.upstream``; nothing here touches the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from rill.config.settings import Settings
from rill.errors import APIError
from rill.files import make_dirs, read_private, write_atomic
from rill.values import compact_json

#: The cache's file name under the cache folder (shell completion reads it too).
MODELS_CACHE = "models.json"
#: How long a fetched list is reused, in seconds.
CACHE_TTL = 3600.0


@dataclass(frozen=True, slots=True)
class ModelList:
    """The models one server offers, as received, and where they came from."""

    base_url: str
    models: list[dict[str, Any]]
    fetched_at: float
    from_cache: bool


@dataclass(frozen=True, slots=True)
class ModelRow:
    """What the table shows of one model; ``None`` where the server does not say."""

    id: str
    context_length: int | None
    prompt_price: Decimal | None
    """USD per million prompt tokens."""
    completion_price: Decimal | None
    """USD per million completion tokens."""


def cache_path(settings: Settings) -> Path:
    return settings.paths.cache_dir / MODELS_CACHE


def read_cache(
    path: Path, base_url: str, *, now: float, ttl: float = CACHE_TTL
) -> ModelList | None:
    """The cached list, or ``None`` when missing, unreadable, stale or for another server."""
    try:
        data = json.loads(read_private(path).decode("utf-8"))
    except (OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("base_url") != base_url:
        return None
    fetched_at = data.get("fetched_at")
    models = data.get("data")
    if not isinstance(fetched_at, int | float) or isinstance(fetched_at, bool):
        return None
    if not isinstance(models, list):
        return None
    # A timestamp from the future (a clock set back) counts as stale rather than fresh forever.
    if not 0 <= now - fetched_at < ttl:
        return None
    entries = [m for m in models if isinstance(m, dict)]
    return ModelList(base_url, entries, float(fetched_at), from_cache=True)


def write_cache(
    path: Path, base_url: str, models: list[dict[str, Any]], *, fetched_at: float
) -> None:
    """Replace the cache atomically: readers see the old file or the new one, never half."""
    make_dirs(path.parent)
    record = {"fetched_at": int(fetched_at), "base_url": base_url, "data": models}
    text = compact_json(record)
    write_atomic(path, text.encode("utf-8"), sync_dir=False)  # a planted symlink is replaced


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, as a file only its owner can read (0600).

    A symlink at ``path`` is followed, so a linked dotfile is updated rather than replaced by a
    copy (``rill.files.write_atomic`` does the writing).
    """
    target = path.resolve() if path.is_symlink() else path
    write_atomic(target, text.encode("utf-8"), sync_dir=False)


def parse_models(text: str, status: int = 200) -> list[dict[str, Any]]:
    """The entries of a ``/models`` answer: ``{"data": [...]}``, or a bare list."""
    try:
        body: Any = json.loads(text)
    except ValueError:
        raise APIError(
            "the /models answer is not JSON", status=status, code="bad_response", body=text[:500]
        ) from None
    entries = body.get("data") if isinstance(body, dict) else body
    if not isinstance(entries, list):
        raise APIError(
            "the /models answer has no model list", status=status, code="bad_response", body=body
        )
    return [m for m in entries if isinstance(m, dict) and isinstance(m.get("id"), str)]


def search(models: Iterable[dict[str, Any]], text: str | None) -> list[dict[str, Any]]:
    """Models whose ID or name contains every word of ``text`` (case-insensitive)."""
    words = (text or "").lower().split()
    out = []
    for model in models:
        haystack = f"{model.get('id', '')} {model.get('name') or ''}".lower()
        if all(word in haystack for word in words):
            out.append(model)
    return out


def model_row(model: dict[str, Any]) -> ModelRow:
    pricing = model.get("pricing")
    pricing = pricing if isinstance(pricing, dict) else {}
    return ModelRow(
        id=str(model.get("id", "")),
        context_length=_context_length(model),
        prompt_price=per_million(pricing.get("prompt")),
        completion_price=per_million(pricing.get("completion")),
    )


def _context_length(model: dict[str, Any]) -> int | None:
    top = model.get("top_provider")
    candidates = [
        model.get("context_length"),  # OpenRouter
        top.get("context_length") if isinstance(top, dict) else None,
        model.get("max_model_len"),  # vLLM
    ]
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def per_million(value: Any) -> Decimal | None:
    """USD per token (OpenRouter sends strings such as ``"0.000003"``) → USD per million tokens.

    Decimal keeps the price exact (``0.000003`` → ``3``). A negative price is OpenRouter's
    marker for "varies" (``openrouter/auto``) and is shown as unknown.
    """
    if value is None or isinstance(value, bool):
        return None
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        return None
    if not price.is_finite() or price < 0:
        return None
    return price * 1_000_000


def format_price(price: Decimal | None) -> str:
    if price is None:
        return "-"
    text = format(price.normalize(), "f")
    return text if text != "-0" else "0"


def format_context(length: int | None) -> str:
    return str(length) if length is not None else "-"


#: ``--supports`` features: the ``supported_parameters`` entry or input modality that shows each.
FEATURES: dict[str, tuple[str, str]] = {
    "tools": ("parameter", "tools"),
    "structured_outputs": ("parameter", "structured_outputs"),
    "reasoning": ("parameter", "reasoning"),
    "image": ("modality", "image"),
    "file": ("modality", "file"),
    "audio": ("modality", "audio"),
}
SORTS = ("price", "context", "name")


def is_free(model: dict[str, Any]) -> bool:
    """A ``:free`` variant, or a model whose prompt and completion both cost nothing."""
    if str(model.get("id", "")).endswith(":free"):
        return True
    row = model_row(model)
    return row.prompt_price == 0 and row.completion_price == 0


def supports(model: dict[str, Any], feature: str) -> bool:
    """Whether the entry says the model takes ``feature`` (see ``FEATURES``)."""
    kind, name = FEATURES[feature]
    if kind == "parameter":
        values = model.get("supported_parameters")
    else:
        architecture = model.get("architecture")
        values = architecture.get("input_modalities") if isinstance(architecture, dict) else None
    return isinstance(values, list) and name in values


def select_models(
    models: Iterable[dict[str, Any]],
    *,
    free: bool = False,
    features: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The models that are free (when asked) and support every one of ``features``."""
    wanted = list(features)
    return [m for m in models if (not free or is_free(m)) and all(supports(m, f) for f in wanted)]


def sort_models(models: Iterable[dict[str, Any]], by: str = "name") -> list[dict[str, Any]]:
    """By ID (``name``), cheapest first (``price``: prompt then completion), or largest context
    first (``context``); models that do not say come last, by ID."""
    by_id = sorted(models, key=lambda m: str(m.get("id")))
    if by == "price":

        def price(m: dict[str, Any]) -> tuple[bool, Decimal, Decimal]:
            row = model_row(m)
            known = row.prompt_price is not None and row.completion_price is not None
            return (not known, row.prompt_price or Decimal(0), row.completion_price or Decimal(0))

        return sorted(by_id, key=price)
    if by == "context":
        return sorted(by_id, key=lambda m: -(model_row(m).context_length or 0))
    return by_id


def _dollars(price: Decimal) -> str:
    text = format(price.quantize(Decimal("0.0001")).normalize(), "f") if price < 1 else None
    return f"${text or format(price.normalize(), 'f')}"


def format_prices(row: ModelRow) -> str:
    """Prices as OpenRouter's site shows them: ``$3/M input · $15/M output``, or ``free``."""
    prompt, completion = row.prompt_price, row.completion_price
    if prompt is None and completion is None:
        return "-"
    if prompt == 0 and completion == 0:
        return "free"
    parts = []
    if prompt is not None:
        parts.append(f"{_dollars(prompt)}/M input")
    if completion is not None:
        parts.append(f"{_dollars(completion)}/M output")
    return " · ".join(parts)
