"""What the fake server records and reports: request headers, requests, generations, and the
``Gate`` that lets a test hold streamed pieces back."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class Headers(dict[str, str]):
    """Request headers with case-insensitive lookup (keys are stored lower-case)."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        super().__init__()
        for key, value in items:
            low = key.lower()
            super().__setitem__(low, f"{self[low]}, {value}" if low in self else value)

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclass(frozen=True)
class Recorded:
    """One request as the server saw it. ``time`` is ``time.monotonic()`` once the body was read."""

    method: str
    path: str
    headers: Headers
    body: Any  # parsed JSON, or None when the body was empty or not JSON
    time: float
    query: dict[str, str] = field(default_factory=dict)
    raw_body: bytes = b""


@dataclass
class Generation:
    """What ``GET /generation`` reports about one served chat completion."""

    id: str
    model: str
    provider: str
    streamed: bool
    created_at: float  # time.time()
    origin: str = ""
    user_agent: str = ""
    external_user: str | None = None
    tokens_prompt: int = 0
    tokens_completion: int = 0
    tokens_reasoning: int = 0
    tokens_cached: int = 0
    cost: float = 0.0
    finish_reason: str | None = None
    native_finish_reason: str | None = None
    cancelled: bool = False
    done: bool = False
    latency_ms: int = 0
    generation_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        created = datetime.fromtimestamp(self.created_at, UTC).isoformat().replace("+00:00", "Z")
        return {
            "id": self.id,
            "upstream_id": "chatcmpl-" + self.id.rsplit("-", 1)[-1],
            "total_cost": self.cost,
            "cache_discount": None,
            "upstream_inference_cost": None,
            "created_at": created,
            "model": self.model,
            "app_id": None,
            "streamed": self.streamed,
            "cancelled": self.cancelled,
            "provider_name": self.provider,
            "latency": self.latency_ms,
            "moderation_latency": None,
            "generation_time": self.generation_ms,
            "finish_reason": self.finish_reason,
            "native_finish_reason": self.native_finish_reason,
            "tokens_prompt": self.tokens_prompt,
            "tokens_completion": self.tokens_completion,
            "native_tokens_prompt": self.tokens_prompt,
            "native_tokens_completion": self.tokens_completion,
            "native_tokens_completion_images": 0,
            "native_tokens_reasoning": self.tokens_reasoning,
            "native_tokens_cached": self.tokens_cached,
            "num_media_prompt": None,
            "num_media_completion": None,
            "num_search_results": None,
            "origin": self.origin,
            "usage": self.cost,
            "is_byok": False,
            "api_type": "completions",
            "external_user": self.external_user,
            "user_agent": self.user_agent,
        }


class Gate:
    """Holds streamed pieces back until the test has seen the previous one.

    Before sending piece ``i`` (i >= 1) the server blocks until ``release(i)`` is called; the test
    calls it once it has seen piece ``i - 1`` on the client's output, which proves the client
    streams for real. Without a release for ``timeout`` seconds the server gives up and closes the
    connection (``timed_out`` becomes True), so nothing ever hangs.
    """

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self.timed_out = False
        self._cond = threading.Condition()
        self._released: set[int] = set()
        self._open = False
        self._waiting = 0

    def release(self, *indexes: int) -> None:
        with self._cond:
            self._released.update(indexes)
            self._cond.notify_all()

    def open(self) -> None:
        """Release every piece, now and later."""
        with self._cond:
            self._open = True
            self._cond.notify_all()

    @property
    def waiting_for(self) -> int:
        """Highest piece index the server has started waiting for (0: none yet)."""
        with self._cond:
            return self._waiting

    def wait(self, index: int, timeout: float) -> bool:
        """Server side: wait up to ``timeout`` seconds for piece ``index`` to be released."""
        with self._cond:
            if index > self._waiting:
                self._waiting = index
                self._cond.notify_all()
            return self._cond.wait_for(lambda: self._open or index in self._released, timeout)

    def wait_for_server(self, index: int, timeout: float) -> bool:
        """Test side: wait until the server is blocked before piece ``index`` (or beyond)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._waiting >= index, timeout)
