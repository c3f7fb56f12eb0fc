"""Exchanges already in history, shown as a turn showed them: the user's words after the prompt
sign, the answer rendered (markdown on a terminal, control sequences neutralised)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rill.env import Environment
from rill.terminal.color import color_enabled
from rill.terminal.safe import SafeText, neutralise
from rill.terminal.sinks import MarkdownSink, PlainSink

PROMPT = "> "


def show_messages(env: Environment, settings: Any, messages: Iterable[dict[str, Any]]) -> None:
    """User messages after the prompt sign; assistant messages rendered; system ones named."""
    for message in messages:
        role, content = message.get("role"), message.get("content")
        text = content if isinstance(content, str) else _text_of(content)
        if role == "assistant":
            show_answer(env, settings, text)
        elif role == "user":
            _line(env, PROMPT + neutralise(text).replace("\n", "\n  "))
        elif role == "system":
            _line(env, f"(system: {neutralise(text)})")


def show_answer(env: Environment, settings: Any, text: str, *, cancelled: bool = False) -> None:
    markdown = settings.markdown if settings.markdown is not None else True
    sink: MarkdownSink | PlainSink
    if markdown and env.stdout_isatty:
        color = color_enabled(env.stdout, settings.color, env.environ)
        sink = MarkdownSink(env.stdout, SafeText(), color=color, env=env.environ)
    else:
        sink = PlainSink(env.stdout, SafeText())
    sink.write(text)
    sink.close(cancelled=cancelled)
    env.stdout.flush()


def exchange_messages(exchange: dict[str, Any]) -> list[dict[str, Any]]:
    """An exchange's messages and its answer (marked when it did not end well)."""
    messages = [m for m in exchange.get("messages", []) if isinstance(m, dict)]
    answer = exchange.get("answer") or {}
    content = answer.get("content") if isinstance(answer, dict) else None
    if isinstance(content, str) and content:
        messages.append({"role": "assistant", "content": content})
    return messages


def status_note(exchange: dict[str, Any]) -> str | None:
    """A line saying the answer shown did not end well (cancelled, cut, failed), else None."""
    error = exchange.get("error")
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return f"(that answer ended with an error: {neutralise(error['message'])})"
    reason = exchange.get("finish_reason")
    if reason in ("cancelled", "length"):
        return f"(that answer was {'cut at the token limit' if reason == 'length' else reason})"
    return None


def _text_of(content: Any) -> str:
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return "" if content is None else str(content)


def _line(env: Environment, text: str) -> None:
    env.stdout.write((text + "\n").encode("utf-8", "replace"))
    env.stdout.flush()
