"""The model list ``GET /models`` serves."""

from __future__ import annotations

from typing import Any

_PARAMS = ["max_tokens", "temperature", "top_p", "stop", "seed", "response_format"]


def _model(
    mid: str,
    name: str,
    context: int,
    prompt: str,
    completion: str,
    max_out: int | None,
    extra_params: list[str],
    tokenizer: str,
    inputs: list[str],
) -> dict[str, Any]:
    modality = "+".join(inputs) + "->text"
    return {
        "id": mid,
        "canonical_slug": mid.split(":")[0],
        "name": name,
        "created": 1747930371,
        "description": f"{name} (served by rill's local test server).",
        "context_length": context,
        "architecture": {
            "modality": modality,
            "input_modalities": inputs,
            "output_modalities": ["text"],
            "tokenizer": tokenizer,
            "instruct_type": None,
        },
        "pricing": {"prompt": prompt, "completion": completion, "request": "0", "image": "0"},
        "top_provider": {
            "context_length": context,
            "max_completion_tokens": max_out,
            "is_moderated": prompt != "0",
        },
        "per_request_limits": None,
        "supported_parameters": sorted(_PARAMS + extra_params),
        "default_parameters": {"temperature": None, "top_p": None, "frequency_penalty": None},
        "supported_voices": None,
        "links": {"details": f"/api/v1/models/{mid.split(':')[0]}/endpoints"},
    }


_MODEL_TABLE = [
    # id, name, context, prompt price, completion price, max output, parameters, tokenizer, inputs
    ("openai/gpt-4o", "OpenAI: GPT-4o", 128000, "0.0000025", "0.00001", 16384, "tools", "GPT",
     "text image"),
    ("anthropic/claude-sonnet-4", "Anthropic: Claude Sonnet 4", 1000000, "0.000003", "0.000015",
     64000, "tools reasoning top_k", "Claude", "text image file"),
    ("google/gemini-2.5-flash", "Google: Gemini 2.5 Flash", 1048576, "0.0000003", "0.0000025",
     65535, "tools reasoning", "Gemini", "text image file audio"),
    ("deepseek/deepseek-r1", "DeepSeek: R1", 163840, "0.0000004", "0.000002", None, "reasoning",
     "DeepSeek", "text"),
    ("meta-llama/llama-3.3-70b-instruct:free", "Meta: Llama 3.3 70B Instruct (free)", 65536, "0",
     "0", 8192, "tools", "Llama3", "text"),
]  # fmt: skip
_PARAM_GROUPS = {"tools": ["tools", "tool_choice"], "reasoning": ["reasoning", "include_reasoning"]}


def default_models() -> list[dict[str, Any]]:
    """The model list ``GET /models`` serves (a fresh copy each call)."""
    models = []
    for mid, name, ctx, prompt, completion, max_out, params, tokenizer, inputs in _MODEL_TABLE:
        extra = [p for group in params.split() for p in _PARAM_GROUPS.get(group, [group])]
        models.append(
            _model(mid, name, ctx, prompt, completion, max_out, extra, tokenizer, inputs.split())
        )
    return models
