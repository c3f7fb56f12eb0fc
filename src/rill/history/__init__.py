"""The history store: every exchange is on disk before its request is sent, and nothing is lost.

Under the store's root (directories 0700, files 0600, whatever the umask) each chat is one file,
``chats/<chat_id>.json`` or ``.toml``, holding its exchanges: this turn's messages, the request
options, the requested and served model, the answer, usage, timings and errors. Chat files are the
source of truth and are only ever replaced whole: the new file is written (and, when the change
finishes an exchange, fsynced) under a temporary name first, then, inside a short critical
section serialised across processes by ``flock`` on ``.lock`` (and across the threads of one
process by a lock they queue on), it is renamed into place only if the chat file still holds what
the change was based on (else the change is made again there), so concurrent runs appending to
one chat never lose an exchange.
The record of a prompt about to be sent is not fsynced: it survives the process being killed at
any moment, and the finished exchange, fsynced with its chat file, folder and index, is what
survives a power loss (a batch of thousands of items would otherwise wait on five fsyncs each).
While an answer streams, the text of each network read is appended (one ``write``, before it
is shown; fsynced when the exchange finishes) to ``journal/<exchange_id>.jsonl``, which the
writing process holds under an exclusive ``flock`` for its whole life: a reader that can take a
shared lock on it knows the writer is gone (SIGKILL, power loss) and shows the exchange as
``interrupted`` with the journalled partial answer; ``load`` writes that resolution back into
the chat file. ``index.jsonl`` is an append-only log, one compact
JSON line per event (exchange begun, exchange finished, chat removed; the last line for an
exchange wins), each written by a single ``os.write`` on an ``O_APPEND`` descriptor inside the
same critical section. ``list_chats``, ``usage`` and ``last_chat_id`` read only the index, so they
stay fast with 100,000 exchanges; it is a cache that ``reindex`` rebuilds from the chat files, and
it is rebuilt by itself when missing. Failing to write never breaks a run: the problem is reported
through ``warn`` (once per distinct message; ``not_saved`` counts the answers left unrecorded) and
the answer still streams.

A store opened with ``read_only=True`` never creates, writes, renames or deletes anything under
its root: a missing index is rebuilt in memory, interrupted exchanges are resolved in memory, and
the writing methods raise ``RillError`` (calling them is a bug).

Modules: ``records`` (what chat files and index lines are: pure functions), ``normalise``
(upstream values made storable), ``files`` (the lock and journal reading; the private-file
primitives are in ``rill.files``), ``chatfiles`` (the paths under the root and the one way a
chat file changes), ``running`` (unfinished exchanges seen by a reader), ``index`` (reading
``index.jsonl``), ``blobs`` (attached files, stored once by hash), ``listing`` (the chat list),
``usage`` (token and cost totals), ``search`` (search and export), ``recorder``
(``ExchangeRecorder``, one exchange while it streams) and ``store`` (``HistoryStore``, which
brings them together).
"""

from rill.history.recorder import ExchangeRecorder
from rill.history.records import SCHEMA_VERSION, ExchangeStart, Format, HistoryError, new_id
from rill.history.store import HistoryStore
from rill.history.usage import usage_total

__all__ = [
    "SCHEMA_VERSION",
    "ExchangeRecorder",
    "ExchangeStart",
    "Format",
    "HistoryError",
    "HistoryStore",
    "new_id",
    "usage_total",
]
