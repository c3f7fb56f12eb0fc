"""Chunk objects and SSE frames of every persona, and the body of a non-streaming answer."""

from __future__ import annotations

import time
from typing import Any

from rill.fake.common import JSON, JSON_SORTED, KEEPALIVE_TEXT, nested_arrays
from rill.fake.error_bodies import DEFAULT_MIDSTREAM
from rill.fake.pieces import (
    Ctx,
    finish_reasons,
    merge_tool_fragments,
    midstream_position,
    token_counts,
)

_MISSING: Any = object()


class Builder:
    """Turns pieces into the SSE bytes of one persona."""

    def __init__(self, ctx: Ctx) -> None:
        s = ctx.scenario
        self.ctx = ctx
        self.s = s
        self.persona = ctx.persona
        self.le = s.line_ending.encode()
        self.enc = JSON_SORTED if self.persona == "llamacpp-legacy" else JSON
        legacy_field = self.persona in ("llamacpp-legacy", "vllm-old")
        self.rfield = s.reasoning_field or ("reasoning_content" if legacy_field else "reasoning")
        self.sent_completion = 0
        self._template: tuple[bytes, bytes] | None = None
        self._cache: dict[str, bytes] = {}

    # framing
    def frame(self, obj: Any) -> bytes:
        return b"data: " + self.enc.encode(obj).encode() + self.le + self.le

    def comment(self) -> bytes | None:
        if self.persona in ("openai", "vllm-old", "ollama"):
            return None
        text = self.s.keepalive_text
        if text is None:
            text = ":" if self.persona == "llamacpp-legacy" else KEEPALIVE_TEXT
        return text.encode() + self.le + self.le

    def keepalives_before(self) -> int:
        if self.s.keepalives_before is not None:
            return self.s.keepalives_before
        return 1 if self.persona in ("openrouter", "llamacpp-legacy") else 0

    def done(self) -> bytes:
        return b"data: [DONE]" + self.le + self.le

    def final(self, event: bytes) -> bytes:
        """The last event of the stream, with the scripted ending."""
        s = self.s
        if s.no_final_newline:
            return event[: -2 * len(self.le)]
        blank = s.no_final_blank_line
        if blank is None:
            blank = self.persona == "llamacpp-legacy"
        return event[: -len(self.le)] if blank else event

    # chunk objects
    def chunk(self, choices: list[Any], usage: Any = _MISSING) -> dict[str, Any]:
        c, p = self.ctx, self.persona
        fp = self.s.system_fingerprint
        head: dict[str, Any] = {"id": c.gen_id}
        if p == "openrouter":
            d = {**head, "provider": self.s.provider, "model": c.model}
            d.update({"object": "chat.completion.chunk", "created": c.created, "choices": choices})
            if fp is not None:
                d["system_fingerprint"] = fp
        else:
            d = {**head, "object": "chat.completion.chunk", "created": c.created, "model": c.model}
            if p == "openai":
                d["service_tier"] = "default"
                d["system_fingerprint"] = fp
            elif p == "ollama":
                d["system_fingerprint"] = fp or "fp_ollama"
            elif p == "llamacpp-legacy":
                d["system_fingerprint"] = fp or "b5000-fakeserver"
            d["choices"] = choices
            if p == "openai" and c.include_usage:
                d["usage"] = None
            if p == "vllm-old" and c.continuous_usage:
                prompt = token_counts(c, [])[0]
                done = self.sent_completion
                d["usage"] = {
                    "prompt_tokens": prompt,
                    "total_tokens": prompt + done,
                    "completion_tokens": done,
                }
        if usage is not _MISSING:
            d["usage"] = usage
        for key, value in self.s.chunk_overrides.items():
            if key in d:
                d[key] = value
        return d

    def choice(
        self, delta: dict[str, Any], finish: str | None = None, native: str | None = None
    ) -> dict[str, Any]:
        if self.persona == "openrouter":
            return {
                "index": 0,
                "delta": delta,
                "finish_reason": finish,
                "native_finish_reason": native,
                "logprobs": None,
            }
        if self.persona in ("openai", "vllm-old"):
            return {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "delta": delta, "finish_reason": finish}

    def _delta(self, **fields: Any) -> dict[str, Any]:
        if self.persona in ("openrouter", "ollama"):
            return {"role": "assistant", **fields}
        return fields

    def content_delta(self, text: Any) -> dict[str, Any]:
        delta = self._delta(content=text)
        if self.persona == "openrouter" and self.s.reasoning_null_on_content:
            delta.update(reasoning=None, reasoning_details=[])
        return delta

    # events
    def role(self) -> bytes | None:
        p = self.persona
        if p == "ollama":
            return None
        if p == "openai":
            delta: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
        elif p == "llamacpp-legacy":
            delta = {"role": "assistant", "content": None}
        else:
            delta = {"role": "assistant", **self.content_delta("")}
        return self.frame(self.chunk([self.choice(delta)]))

    def content(self, text: str) -> bytes:
        self.sent_completion += 1
        if self.ctx.continuous_usage and self.persona == "vllm-old":
            return self.frame(self.chunk([self.choice(self.content_delta(text))]))
        cached = self._cache.get(text)
        if cached is not None:
            return cached
        if self._template is None:
            sentinel = "\x00\x01piece\x01\x00"
            raw = self.frame(self.chunk([self.choice(self.content_delta(sentinel))]))
            head, tail = raw.split(self.enc.encode(sentinel).encode())
            self._template = (head, tail)
        head, tail = self._template
        data = head + self.enc.encode(text).encode() + tail
        if len(self._cache) < 4096 and len(text) < 256:
            self._cache[text] = data
        return data

    def deep(self, where: str, depth: int) -> bytes:
        """A chunk whose delta.content (or delta.reasoning_details) nests ``depth`` deep."""
        sentinel = "\x00\x01deep\x01\x00"
        if where == "content":
            delta = self.content_delta(sentinel)
        else:
            delta = self._delta(content="", reasoning="", reasoning_details=sentinel)
        raw = self.frame(self.chunk([self.choice(delta)]))
        return raw.replace(self.enc.encode(sentinel).encode(), nested_arrays(depth).encode())

    def piece(self, kind: str, payload: Any) -> bytes:
        if kind == "deep":
            return self.deep(*payload)
        if kind == "content":
            return self.content(payload)
        if kind == "lazy":
            s = self.s
            text = s.content_fn(payload) if s.content_fn else f"{time.time_ns()}\n"
            return self.content(text)
        if kind == "tool":
            self.sent_completion += 1
            if self.persona == "openrouter":
                delta = self._delta(content=None, tool_calls=payload)
            elif self.persona == "ollama":
                delta = self._delta(content="", tool_calls=payload)
            else:
                delta = {"tool_calls": payload}
            return self.frame(self.chunk([self.choice(delta)]))
        detail_base = {"id": None, "format": "anthropic-claude-v1", "index": 0}
        if kind == "reasoning":
            self.sent_completion += 1
            if self.persona == "openrouter":
                delta = self._delta(content="", **{self.rfield: payload})
                if self.s.reasoning_details:
                    detail = {"type": "reasoning.text", "text": payload, "signature": None}
                    delta["reasoning_details"] = [{**detail, **detail_base}]
            elif self.persona == "ollama":
                delta = self._delta(content="", **{self.rfield: payload})
            else:
                delta = {self.rfield: payload}
            return self.frame(self.chunk([self.choice(delta)]))
        if kind == "signature":
            detail = {"type": "reasoning.text", "signature": payload, **detail_base}
        else:  # encrypted
            detail = {"type": "reasoning.encrypted", "data": payload, **detail_base}
        delta = self._delta(content="", reasoning=None, reasoning_details=[detail])
        return self.frame(self.chunk([self.choice(delta)]))

    def finish(self, reason: str, native: str | None, usage: dict[str, Any] | None) -> bytes:
        p = self.persona
        if p in ("openai", "llamacpp-legacy"):
            delta: dict[str, Any] = {}
        elif p == "vllm-old":
            delta = {"content": ""}
        else:
            delta = self._delta(content="")
        choice = self.choice(delta, reason, native if p == "openrouter" else None)
        if "finish_reason" in self.s.chunk_overrides:
            choice["finish_reason"] = self.s.chunk_overrides["finish_reason"]
        if p == "llamacpp-legacy" and usage is not None:
            obj = self.chunk([choice], usage=usage)
            obj["timings"] = {"prompt_n": usage.get("prompt_tokens"), "predicted_per_second": 50.0}
            return self.frame(obj)
        return self.frame(self.chunk([choice]))

    def usage_event(self, usage: dict[str, Any] | None) -> bytes | None:
        if usage is None:
            return None
        if self.persona == "openrouter":
            if self.s.usage_style == "legacy":
                choices = [self.choice(self._delta(content=""))]
            else:
                choices = []
            return self.frame(self.chunk(choices, usage=usage))
        if self.persona in ("openai", "ollama", "vllm-old") and self.ctx.include_usage:
            return self.frame(self.chunk([], usage=usage))
        return None

    def error_event(self, err: dict[str, Any]) -> bytes:
        c, p = self.ctx, self.persona
        message = str(err.get("message", ""))
        code = err.get("code")
        etype = (err.get("metadata") or {}).get("error_type") or "server_error"
        int_code = code if isinstance(code, int) else 500
        if p == "openrouter":
            choices = []
            if not self.s.midstream_error_choices_empty:
                choices = [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]
            obj = {
                "id": c.gen_id,
                "object": "chat.completion.chunk",
                "created": c.created,
                "model": c.model,
                "provider": self.s.provider,
                "error": err,
                "choices": choices,
            }
            return self.frame(obj)
        if p == "llamacpp-legacy":
            legacy = {"code": int_code, "message": message, "type": "server_error"}
            return b"error: " + self.enc.encode(legacy).encode() + self.le + self.le
        if p == "vllm-old":
            kind = "InternalServerError" if int_code >= 500 else "BadRequestError"
            flat = {"object": "error", "message": message, "type": kind, "param": None}
            return self.frame({**flat, "code": int_code})
        generic_code = None if p == "ollama" or code is None else str(code)
        generic_type = "api_error" if p == "ollama" else etype
        error = {"message": message, "type": generic_type, "param": None, "code": generic_code}
        return self.frame({"error": error})


def completion_body(
    ctx: Ctx, pieces: list[tuple[str, Any]], usage: dict[str, Any] | None
) -> dict[str, Any]:
    """The ``chat.completion`` object of a non-streaming answer."""
    s, p = ctx.scenario, ctx.persona
    err_at = midstream_position(s, len(pieces))
    message = _message(ctx, pieces if err_at is None else pieces[:err_at])
    reason, native = finish_reasons(s, pieces)
    choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
    if p == "openrouter":
        choice["native_finish_reason"] = native
    choice["message"] = message
    if err_at is not None:
        choice["finish_reason"] = "error"
        choice["error"] = s.midstream_error or DEFAULT_MIDSTREAM
    body: dict[str, Any] = {"id": ctx.gen_id}
    if p == "openrouter":
        body.update(provider=s.provider, model=ctx.model)
    body.update(object="chat.completion", created=ctx.created)
    if p != "openrouter":
        body["model"] = ctx.model
    body["choices"] = [choice]
    for key, value in s.chunk_overrides.items():
        if key in body:
            body[key] = value
        elif key == "finish_reason":
            choice[key] = value
    if s.system_fingerprint is not None or p in ("openai", "ollama"):
        body["system_fingerprint"] = s.system_fingerprint or (
            "fp_ollama" if p == "ollama" else None
        )
    if usage is not None:
        body["usage"] = usage
    return body


def _message(ctx: Ctx, sent: list[tuple[str, Any]]) -> dict[str, Any]:
    """The assistant message of a non-streaming answer made of the pieces ``sent``."""
    s, p = ctx.scenario, ctx.persona
    texts = []
    for kind, payload in sent:
        if kind == "content":
            texts.append(payload)
        elif kind == "lazy":
            texts.append(s.content_fn(payload) if s.content_fn else f"{time.time_ns()}\n")
    reasoning = "".join(payload for kind, payload in sent if kind == "reasoning")
    calls = merge_tool_fragments(f for kind, frags in sent if kind == "tool" for f in frags)
    for call in calls:
        call.pop("index", None)
    text = "".join(texts)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if p in ("openrouter", "openai"):
        message["refusal"] = None
    if p == "openrouter":
        message["reasoning"] = reasoning or None
        if reasoning and s.reasoning_details:
            detail = {
                "type": "reasoning.text",
                "text": reasoning,
                "signature": s.reasoning_signature,
            }
            message["reasoning_details"] = [
                {**detail, "id": None, "format": "anthropic-claude-v1", "index": 0}
            ]
    elif reasoning:
        message[Builder(ctx).rfield] = reasoning
    if calls:
        message["tool_calls"] = calls
    return message
