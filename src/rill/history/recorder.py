"""``Recorder``: one exchange being recorded while its answer streams (see the package docs)."""

from __future__ import annotations

import os
import threading
import time
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rill.files import write_all
from rill.history.files import LOCK_TIMEOUT, LockTimeout
from rill.history.records import HistoryError, encode_line, now_iso, os_reason

if TYPE_CHECKING:
    from rill.history.store import HistoryStore


_JOURNAL_EVERY = 1.0  # seconds between journal appends while an answer streams
_COMPACT_MASK = 4095  # join unjournaled pieces every 4,096 deltas
_FINISH_PATIENCE = 60.0  # how long a finished answer keeps waiting for a busy lock


class Recorder:
    """Records one exchange while its answer streams; every method is safe to call and never
    raises for I/O. A disabled recorder (history could not be written) ignores every call; its
    ``chat_id`` is None for a chat that was never created (as for ``session.NullRecorder``).

    ``add`` only appends to lists, and writes the new text to the journal when a second has
    passed since the last write. A stream that stalls right after a delta calls ``add`` no more,
    so a daemon thread journals such pending text once its second is up: a run killed mid-stall
    still keeps everything it received more than about a second before.
    """

    __slots__ = (
        "chat_id",
        "exchange_id",
        "path",
        "enabled",
        "_store",
        "_clock",
        "_exchange",
        "_title",
        "_fd",
        "_content",
        "_reasoning",
        "_sent",
        "_next_flush",
        "_journaling",
        "_lock",
        "_stop",
        "_thread",
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
        self._clock = store.clock if store is not None else time.monotonic
        self._exchange = exchange
        self._title = title
        self._fd = fd
        self._content: list[str] = []
        self._reasoning: list[str] = []
        self._sent = (0, 0)  # how many content / reasoning pieces are already journalled
        self._next_flush = self._clock() if self.enabled else float("inf")
        self._journaling = self.enabled
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._finished = False
        if self.enabled:
            self._thread = threading.Thread(
                target=self._flush_when_stalled, name="rill-journal", daemon=True
            )
            self._thread.start()

    @property
    def journal(self) -> Path | None:
        return None if self._store is None else self._store.journal_path(self.exchange_id)

    def add(self, content: str = "", reasoning: str = "") -> None:
        """Keep a delta; append what is new to the journal at most once a second."""
        if not self.enabled:
            return
        if content:
            self._content.append(content)
            if len(self._content) & _COMPACT_MASK == 0:
                self._compact()
        if reasoning:
            self._reasoning.append(reasoning)
        if self._clock() >= self._next_flush:
            self.flush()

    def _compact(self) -> None:
        """Join the pieces not yet journaled into one string: a long answer made of 100,000
        tiny deltas must not be held as 100,000 string objects."""
        with self._lock:
            sent_c = self._sent[0]
            end = len(self._content)
            if end - sent_c > 1:
                self._content[sent_c:end] = ["".join(self._content[sent_c:end])]

    def _pending(self) -> bool:
        return (len(self._content), len(self._reasoning)) != self._sent

    def _flush_when_stalled(self) -> None:
        while self._journaling:
            delay = self._next_flush - self._clock()
            if self._stop.wait(delay if delay > 0 else _JOURNAL_EVERY):
                return
            if self._clock() >= self._next_flush and self._pending():
                self.flush()

    def flush(self, sync: bool = True) -> None:
        """Append the text received since the last journal write now, and fsync it (unless
        ``sync`` is False: the text then survives the process being killed, not a power loss)."""
        with self._lock:
            if self._fd is None or self._store is None or not self._journaling:
                return
            self._next_flush = self._clock() + _JOURNAL_EVERY
            entry: dict[str, str] = {}
            sent = []
            # Each journaled range is replaced by its joined text: one string per write, not
            # one per delta. Other threads only append, so the range itself stays put.
            for key, pieces, done in (
                ("c", self._content, self._sent[0]),
                ("r", self._reasoning, self._sent[1]),
            ):
                end = len(pieces)
                if end > done:
                    text = "".join(pieces[done:end])
                    pieces[done:end] = [text]
                    entry[key] = text
                    end = done + 1
                sent.append(end)
            self._sent = (sent[0], sent[1])
            if not entry:
                return
            try:
                write_all(self._fd, encode_line(entry))
                if sync:
                    os.fsync(self._fd)
            except OSError as exc:
                self._journaling = False  # keep the lock (the run is alive), stop journaling
                self._store.say(
                    f"history: cannot write {self.journal}: {os_reason(exc)}; "
                    "the answer is kept in memory until the end"
                )

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
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=LOCK_TIMEOUT)
        # Saving may wait for a busy lock, and a second Ctrl-C ends the process at once: the
        # journal gets the last second's text first, so nothing received is lost either way.
        if self._pending():
            self.flush(sync=False)
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
        content = outcome.get("content")
        reasoning = outcome.get("reasoning")
        answer = {
            "content": content if isinstance(content, str) else "".join(self._content),
            "reasoning": reasoning if isinstance(reasoning, str) else "".join(self._reasoning),
            "tool_calls": outcome.get("tool_calls") or None,
            "reasoning_details": outcome.get("reasoning_details") or None,
        }
        if not answer["reasoning"]:
            answer["reasoning"] = None
        fields = {
            key: outcome.get(key)
            for key in ("served_model", "provider", "generation_id", "finish_reason")
        }
        return {
            "status": "done",
            "finished_at": now_iso(),
            "answer": answer,
            **fields,
            "usage": outcome.get("usage") or None,
            "timings": outcome.get("timings") or None,
            "error": outcome.get("error") or None,
        }
