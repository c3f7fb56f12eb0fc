"""OpenRouter ``chat.completion.chunk`` objects for test data: PROTOCOL.md §3.2's fields and key
order, with what a test needs to vary passed in."""

from __future__ import annotations

import json
from typing import Any


def chunk_obj(
    delta: dict[str, Any] | None = None,
    finish: str | None = None,
    *,
    gen_id: str = "gen-1",
    created: int = 1754441342,
    fingerprint: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """One chunk; ``delta`` adds to ``{"role": "assistant"}``, ``extra`` adds or replaces keys."""
    obj: dict[str, Any] = {
        "id": gen_id,
        "provider": "OpenAI",
        "model": "openai/gpt-4o",
        "object": "chat.completion.chunk",
        "created": created,
        "choices": [
            {
                "index": 0,
                "delta": {"role": "assistant", **(delta or {})},
                "finish_reason": finish,
                "native_finish_reason": finish,
                "logprobs": None,
            }
        ],
    }
    if fingerprint:
        obj["system_fingerprint"] = "fp_07871e2ad8"
    obj.update(extra)
    return obj


def compact(obj: Any) -> str:
    """JSON as OpenRouter writes it: no spaces, raw UTF-8."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
