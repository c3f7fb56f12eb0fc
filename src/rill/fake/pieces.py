"""The plan of one answer: its request context, pieces, token counts and usage."""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from rill.fake.common import JSON, rand, text_of
from rill.fake.records import Recorded
from rill.fake.scenario import Scenario


@dataclass
class Ctx:
    scenario: Scenario
    persona: str
    body: dict[str, Any]
    requested_model: str
    model: str
    gen_id: str
    created: int
    include_usage: bool
    continuous_usage: bool
    reasoning_excluded: bool
    epoch: int
    request: Recorded


def new_id(persona: str, created: int) -> str:
    if persona == "openrouter":
        return f"gen-{created}-{rand(20)}"
    if persona == "ollama":
        return f"chatcmpl-{random.randint(1, 999)}"
    if persona == "vllm-old":
        return f"chatcmpl-{rand(32, string.hexdigits[:16])}"
    return f"chatcmpl-{rand(29)}"


def _estimate_prompt_tokens(body: Mapping[str, Any]) -> int:
    total = 3
    for message in body.get("messages") or []:
        if isinstance(message, dict):
            total += 4 + len(text_of(message.get("content"))) // 4
    return total


def _huge_text(size: int) -> str:
    unit = "0123456789abcdefghijklmnopqrstuvwxyz-ABCDEFGHIJKLMNOPQRSTUVWXYZ\n"
    return (unit * (size // len(unit) + 1))[:size]


def _tool_fragments(ctx: Ctx) -> list[list[dict[str, Any]]]:
    """delta.tool_calls lists, one per chunk."""
    s = ctx.scenario
    if s.tool_fragments is not None:
        return [[dict(f)] for f in s.tool_fragments]
    rng = random.Random(ctx.gen_id)
    calls: list[tuple[Any, str, str]] = []
    for call in s.tool_calls:
        args = call.get("arguments", "")
        args = args if isinstance(args, str) else JSON.encode(args)
        calls.append((call.get("id") or f"call_{rand(24, rng=rng)}", call["name"], args))
    if s.tool_ids != "normal":
        first = calls[0][0] if calls else ""
        new_id = {"empty": "", "null": None, "duplicate": first}[s.tool_ids]
        calls = [(new_id, name, args) for _, name, args in calls]
    if ctx.persona == "ollama":
        whole = [
            {"id": cid, "index": k, "type": "function", "function": {"name": n, "arguments": a}}
            for k, (cid, n, a) in enumerate(calls)
        ]
        return [whole] if whole else []
    out: list[list[dict[str, Any]]] = []
    step = max(1, s.argument_split)
    for k, (cid, name, args) in enumerate(calls):
        index = 0 if s.tool_shared_index else k
        head = {"index": index, "id": cid, "type": "function"}
        if s.tool_whole:
            out.append([{**head, "function": {"name": name, "arguments": args}}])
            continue
        out.append([{**head, "function": {"name": name, "arguments": ""}}])
        for j in range(0, len(args), step):
            frag: dict[str, Any] = {"index": index, "function": {"arguments": args[j : j + step]}}
            if ctx.persona == "openrouter":
                frag["type"] = "function"
            if s.tool_missing_index:
                del frag["index"]
            out.append([frag])
    return out


def build_pieces(ctx: Ctx) -> list[tuple[str, Any]]:
    """(kind, payload) of every piece, in sending order."""
    s = ctx.scenario
    out: list[tuple[str, Any]] = []
    if s.reasoning and not ctx.reasoning_excluded:
        out.extend(("reasoning", r) for r in s.reasoning)
        if ctx.persona == "openrouter" and s.reasoning_details:
            if s.reasoning_encrypted is not None:
                out.append(("encrypted", s.reasoning_encrypted))
            if s.reasoning_signature:
                out.append(("signature", s.reasoning_signature))
    if s.content_fn is not None or s.timestamp_content:
        out.extend(("lazy", j) for j in range(len(s.content)))
    else:
        out.extend(("content", c) for c in s.content)
    if s.huge_piece_bytes:
        out.append(("content", _huge_text(s.huge_piece_bytes)))
    out.extend(("tool", frags) for frags in _tool_fragments(ctx))
    if s.deep_json is not None:
        out.insert(min(1, len(out)), ("deep", s.deep_json))
    return out


def token_counts(
    ctx: Ctx, pieces: list[tuple[str, Any]], upto: int | None = None
) -> tuple[int, int, int]:
    """(prompt, completion, reasoning) tokens: one token per piece."""
    s = ctx.scenario
    sent = pieces if upto is None else pieces[:upto]
    completion = sum(1 for kind, _ in sent if kind in ("content", "lazy", "tool"))
    if upto is None:
        reasoning = len(s.reasoning)
    else:
        reasoning = sum(1 for kind, _ in sent if kind == "reasoning")
    prompt = s.prompt_tokens if s.prompt_tokens is not None else _estimate_prompt_tokens(ctx.body)
    return prompt, completion + reasoning, reasoning


def model_price(models: list[dict[str, Any]], model: str) -> tuple[float, float]:
    for entry in models:
        if entry.get("id") == model:
            pricing = entry.get("pricing") or {}
            return float(pricing.get("prompt", 0)), float(pricing.get("completion", 0))
    return 0.0000025, 0.00001


def build_usage(
    ctx: Ctx, counts: tuple[int, int, int], price: tuple[float, float]
) -> dict[str, Any]:
    s = ctx.scenario
    if s.usage is not None:
        return dict(s.usage)
    prompt, completion, reasoning = counts
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    persona = ctx.persona
    if persona == "openrouter":
        if not s.usage_omit_cost:
            usage["cost"] = round(prompt * price[0] + completion * price[1], 10)
        usage["is_byok"] = False
        nulls = s.usage_null_details
        details: dict[str, Any] = {"cached_tokens": s.cached_tokens}
        if s.cache_write_tokens:
            details["cache_write_tokens"] = s.cache_write_tokens
        usage["prompt_tokens_details"] = None if nulls else details
        usage["cost_details"] = None if nulls else {"upstream_inference_cost": None}
        usage["completion_tokens_details"] = None if nulls else {"reasoning_tokens": reasoning}
    elif persona == "openai":
        usage["prompt_tokens_details"] = {"cached_tokens": s.cached_tokens, "audio_tokens": 0}
        usage["completion_tokens_details"] = {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return usage


def merge_tool_fragments(fragments: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    for frag in fragments:
        index = frag.get("index", len(calls) - 1 if calls else 0)
        while len(calls) <= index:
            calls.append(
                {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
        call = calls[index]
        if frag.get("id") is not None:
            call["id"] = frag["id"]
        fn = frag.get("function") or {}
        if fn.get("name"):
            call["function"]["name"] = fn["name"]
        call["function"]["arguments"] += fn.get("arguments") or ""
    return calls


def midstream_position(s: Scenario, n: int) -> int | None:
    if s.midstream_error_after is not None:
        return min(s.midstream_error_after, n)
    return n if s.midstream_error is not None else None


def finish_reasons(s: Scenario, pieces: list[tuple[str, Any]]) -> tuple[str, str]:
    has_tools = any(kind == "tool" for kind, _ in pieces)
    reason = s.finish_reason or ("tool_calls" if has_tools else "stop")
    return reason, s.native_finish_reason or reason
