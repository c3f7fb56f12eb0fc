"""The requests ``rill serve`` is answering: listed by ``GET /api/requests``, cancelled by
``DELETE /api/requests/{id}``, by the client going away, or all at once on SIGINT/SIGTERM."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rill.errors import Cancelled, ExitCode, RillError
from rill.stream.pipeline import ChatStream

#: Why a request stops when ``DELETE /api/requests/{id}`` asks.
BY_REQUEST = Cancelled("DELETE /api/requests", ExitCode.INTERRUPTED)
#: Why a request stops when its client disconnects.
BY_CLIENT = Cancelled("the client going away", ExitCode.INTERRUPTED)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Active:
    """One request being answered. ``tokens`` counts the content and reasoning deltas so far
    (one per upstream chunk: what a live counter shows before the usage arrives)."""

    id: str
    stream: ChatStream
    model: str | None
    endpoint: str
    start: str = field(default_factory=_now)
    tokens: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "chat": self.stream.chat_id,
            "model": self.model,
            "endpoint": self.endpoint,
            "start": self.start,
            "tokens": self.tokens,
        }


class Registry:
    """Thread-safe: the event loop adds and lists, worker threads count, anyone cancels."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, Active] = {}
        self.closing = False

    def add(self, stream: ChatStream, model: str | None, endpoint: str) -> Active:
        entry = Active(f"req-{secrets.token_hex(8)}", stream, model, endpoint)
        with self._lock:
            self._active[entry.id] = entry
            closing = self.closing
        if closing:  # the server is stopping: a request that slipped in ends at once
            stream.cancel(Cancelled("the server stopping", ExitCode.TERMINATED))
        return entry

    def remove(self, entry: Active) -> None:
        with self._lock:
            self._active.pop(entry.id, None)

    def listing(self) -> list[dict[str, Any]]:
        with self._lock:
            entries = list(self._active.values())
        return [e.as_dict() for e in entries]

    def cancel(self, request_id: str, reason: RillError = BY_REQUEST) -> bool:
        """Cancel one request; False when no such request is active."""
        with self._lock:
            entry = self._active.get(request_id)
        if entry is None:
            return False
        entry.stream.cancel(reason)
        return True

    def cancel_all(self, reason: RillError) -> int:
        with self._lock:
            self.closing = True
            entries = list(self._active.values())
        for entry in entries:
            entry.stream.cancel(reason)
        return len(entries)

    def __len__(self) -> int:
        with self._lock:
            return len(self._active)
