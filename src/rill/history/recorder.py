"""``ExchangeRecorder``: one exchange being recorded while it streams (see the package docs)."""

from __future__ import annotations

import os
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rill.files import write_all
from rill.history import normalise
from rill.history.files import LockTimeout
from rill.history.records import HistoryError, encode_line, now_iso, os_reason

if TYPE_CHECKING:
    from rill.history.store import HistoryStore


_COMPACT_EVERY = 4096  # join the kept pieces every 4,096 deltas
_FINISH_PATIENCE = 60.0  # how long a finished answer keeps waiting for a busy lock


class ExchangeRecorder:
    """Records one exchange while its answer streams; every method is safe to call and never
    raises for I/O. A disabled recorder (history could not be written) ignores every call; its
    ``chat_id`` is None for a chat that was never created (as with ``--no-history``).

    ``add`` is called once per network read, before that read's text is shown: it writes the
    text to the journal at once (one ``write(2)``, no fsync), so whatever the user saw survives
    the process being killed. ``finish`` fsyncs; text survives a power loss from then on.
    """

    __slots__ = (
        "chat_id",
        "exchange_id",
        "path",
        "enabled",
        "_store",
        "_exchange",
        "_title",
        "_fd",
        "_content",
        "_reasoning",
        "_journaling",
        "_lock",
        "_finished",
    )

    def __init__(
        self,
        store: HistoryStore | None,
        chat_id: str | None,
        exchange: dict[str, Any],
        path: Path | None = None,
        fd: int | None = None,
        title: str | None = None,
    ) -> None:
        self.chat_id = chat_id
        self.exchange_id: str = exchange.get("id", "")
        self.path = path
        self.enabled = store is not None and fd is not None
        self._store = store
        self._exchange = exchange
        self._title = title
        self._fd = fd
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._journaling = self.enabled
        self._lock = threading.Lock()
        self._finished = False

    @property
    def journal(self) -> Path | None:
        return None if self._store is None else self._store.journal_path(self.exchange_id)

    def add(self, content: str = "", reasoning: str = "") -> None:
        """Keep a delta and append it to the journal now (one write, not fsynced)."""
        if not self.enabled or not (content or reasoning):
            return
        entry: dict[str, str] = {}
        if content:
            entry["c"] = content
            _keep(self._content, content)
        if reasoning:
            entry["r"] = reasoning
            _keep(self._reasoning, reasoning)
        if self._journaling:
            self._journal(encode_line(entry))

    def _journal(self, line: bytes) -> None:
        with self._lock:
            if self._fd is None or self._store is None or not self._journaling:
                return
            try:
                write_all(self._fd, line)
            except OSError as exc:
                self._journaling = False  # keep the lock (the run is alive), stop journaling
                self._store.say(
                    f"history: cannot write {self.journal}: {os_reason(exc)}; "
                    "the answer is kept in memory until the end"
                )

    def flush(self, sync: bool = True) -> None:
        """Make the journal survive a power loss too (the text is already written)."""
        with self._lock:
            if self._fd is not None and self._journaling and sync:
                with suppress(OSError):
                    os.fsync(self._fd)

    def finish(self, outcome: dict[str, Any]) -> None:
        """Write the final exchange into the chat file and the index; drop the journal.

        Idempotent. When the chat file cannot be written, the journal is completed and kept, so
        the answer shows up later as ``interrupted`` with its text.
        """
        store, fd, chat_id = self._store, self._fd, self.chat_id
        if self._finished or not self.enabled or store is None or fd is None or chat_id is None:
            self._finished = True
            return
        self._finished = True
        exchange = dict(self._exchange)
        exchange.update(self._final_fields(outcome))
        try:
            self._save(store, chat_id, exchange)
        except (OSError, HistoryError, ValueError, TypeError) as exc:
            reason = os_reason(exc) if isinstance(exc, OSError) else str(exc)
            self.flush()  # the journal keeps the text; it is shown later as interrupted
            store.say(
                f"history: cannot save the answer to {self.path}: {reason}; "
                f"the partial answer stays in {self.journal}"
            )
        else:
            with suppress(OSError):
                os.unlink(store.journal_path(self.exchange_id))
        with self._lock:
            os.close(fd)
            self._fd = None

    def _save(self, store: HistoryStore, chat_id: str, exchange: dict[str, Any]) -> None:
        """``save_finished``, waiting up to ``_FINISH_PATIENCE`` seconds for a busy lock: an
        answer that has been received is worth the wait, unlike a prompt not yet sent."""
        deadline = time.monotonic() + _FINISH_PATIENCE
        while True:
            try:
                store.save_finished(chat_id, exchange, self._title)
                return
            except LockTimeout:
                if time.monotonic() >= deadline:
                    raise

    def _final_fields(self, outcome: dict[str, Any]) -> dict[str, Any]:
        """The finished exchange's fields, normalised to what the reader accepts (notes say
        what was changed)."""
        notes: list[str] = []
        content = outcome.get("content")
        reasoning = outcome.get("reasoning")
        details = normalise.shallow(outcome.get("reasoning_details"), "reasoning_details", notes)
        answer = {
            "content": content if isinstance(content, str) else "".join(self._content),
            "reasoning": reasoning if isinstance(reasoning, str) else "".join(self._reasoning),
            "tool_calls": normalise.shallow(outcome.get("tool_calls"), "tool_calls", notes) or None,
            "reasoning_details": details or None,
        }
        if not answer["reasoning"]:
            answer["reasoning"] = None
        fields = {
            key: normalise.text_or_none(outcome.get(key), key, notes)
            for key in normalise.TEXT_FIELDS
        }
        timings = normalise.table(outcome.get("timings"), "timings", notes)
        error = normalise.table(outcome.get("error"), "error", notes)
        final = {
            "status": "done",
            "finished_at": now_iso(),
            "answer": answer,
            **fields,
            "usage": normalise.usage(outcome.get("usage"), notes),
            "timings": normalise.finite_numbers(timings, "timings", notes) or None,
            "error": error or None,
            "schema_error": normalise.text_or_none(outcome.get("schema_error"), "schema", notes),
        }
        if notes:
            final["notes"] = notes
        return final


def _keep(pieces: list[str], text: str) -> None:
    """Append ``text``; every 4,096 pieces the last ones are joined into one string, so a long
    answer made of 100,000 tiny deltas is not held as 100,000 string objects."""
    pieces.append(text)
    if len(pieces) % _COMPACT_EVERY == 0:
        pieces[-_COMPACT_EVERY:] = ["".join(pieces[-_COMPACT_EVERY:])]


#: The old name, kept while other code still imports it.
