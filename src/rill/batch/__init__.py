"""``rill batch``: many independent prompts, run concurrently, one JSON line per finished item.

The input is read whole and checked before anything is sent (duplicate ids are a usage error; a
line that cannot be sent becomes a failed item, exit 2, without stopping the others). Each item
becomes one ``Request`` and one ``ChatStream`` pulled on a worker thread, exactly as the prompt
command pulls one — same retries, same time limits (idle, first token, total: kept by the
stream's own reads, so they hold on any thread), same history record (one chat per item) — and
the line written for it is its terminal event (``Done`` or ``Error``) with ``"id"`` put first.

All workers share one ``httpx.Client`` whose pool keeps one connection per job, and one
``BackoffGate``: a 429 or a ``Retry-After`` on any item pushes the gate's deadline, and every
worker waits at the gate before its next send (``GatedPolicy``, the client's retry policy), so the
whole batch slows down instead of each worker running into the limit on its own.

Lines are written whole, one write each, under a lock: in completion order, or in input order with
``ordered`` (early results wait in a buffer). With an output file, ids whose ``done`` line is
already in it are skipped, which makes a killed batch resumable and lets shards be merged by id;
lines are appended as items finish, and at the end the file is rewritten (atomically) with one
line per id, the latest outcome of each, so a re-run replaces the lines of the items it retried.
Stopping (SIGINT, SIGTERM, SIGHUP, a closed stdout) raises one flag: no new item starts, and every
running stream is cancelled, which shuts its socket down and wakes its worker at once; the stream
records the partial answer with finish reason ``cancelled``. A cancelled item writes no line: the
next run picks it up. No typer or rich here.
"""

from rill.batch.items import (
    Item,
    ItemId,
    check_unique,
    completed_ids,
    id_key,
    is_done_line,
    parse_item,
    parse_jsonl,
    parse_lines,
)
from rill.batch.output import (
    Output,
    compact_output,
    compacted,
    encode_line,
    open_output,
)
from rill.batch.pacing import BackoffGate, GatedPolicy, Stop, make_pool
from rill.batch.progress import Reporter, Tally
from rill.batch.requests import Defaults, build_request, with_prefix
from rill.batch.run import BatchArgs, read_input, resolve, run_batch
from rill.batch.runner import Batch

__all__ = [
    "BackoffGate",
    "Batch",
    "BatchArgs",
    "Defaults",
    "GatedPolicy",
    "Item",
    "ItemId",
    "Output",
    "Reporter",
    "Stop",
    "Tally",
    "build_request",
    "check_unique",
    "compact_output",
    "compacted",
    "completed_ids",
    "encode_line",
    "id_key",
    "is_done_line",
    "make_pool",
    "open_output",
    "parse_item",
    "parse_jsonl",
    "parse_lines",
    "read_input",
    "resolve",
    "run_batch",
    "with_prefix",
]
