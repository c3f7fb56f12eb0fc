"""``rill history …`` and ``rill usage``: read what every run recorded."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer

from rill.commands import options as opt
from rill.commands.output import console, piped, print_json, print_table, stdout_is_terminal, warn
from rill.urls import display_url

if TYPE_CHECKING:
    from rill.history import HistoryStore

history_app = typer.Typer(
    name="history",
    help="List, show, search, export and remove recorded chats.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def open_store() -> HistoryStore:
    from rill.config.settings import load_config, resolve_paths
    from rill.history import HistoryStore

    paths = resolve_paths()
    fmt = load_config(paths.config_file).get("history_format", "json")
    return HistoryStore(paths.history_dir, fmt, warn=warn)


def _cost(value: Any) -> str:
    """A cost, or "—" when none was reported (unknown is not free)."""
    return f"${value:.4f}" if isinstance(value, int | float) else "—"


def _model_shown(requested: Any, served: Any) -> str:
    """``requested → served`` when the server answered with another model, else the one."""
    if requested and served and requested != served:
        return f"{requested} → {served}"
    return str(served or requested or "-")


def _short_time(value: Any) -> str:
    return str(value or "")[:16].replace("T", " ")


@history_app.command("list")
def history_list(
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many chats.", min=1)] = 20,
    as_json: opt.Json = False,
) -> None:
    """List recent chats, most recently used first."""
    rows = open_store().list_chats(limit)
    if as_json:
        print_json(rows)
        return
    header = ("ID", "UPDATED", "MODEL", "TURNS", "TOKENS", "COST", "FINISH", "TITLE")
    table = [
        (
            r.get("id", ""),
            _short_time(r.get("updated")),
            r.get("model") or "-",
            str(r.get("turns", "")),
            f"{r.get('prompt_tokens', 0)}/{r.get('completion_tokens', 0)}",
            _cost(r.get("cost")),
            r.get("finish_reason") or "-",
            r.get("title") or "",
        )
        for r in rows
    ]
    if stdout_is_terminal():
        _print_chat_table(header, table)
    else:
        print_table(header, table)


_MODEL_ROOM = 28  # columns the model gets before less useful columns are dropped
_TITLE_ROOM = 16


def _print_chat_table(header: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
    """The chat list on a terminal: one line per chat at any width from 60 columns. The ID is
    never cut; when space runs out the time of day goes, then TOKENS, TURNS and FINISH, and
    then the model and the title are cut with "…"."""
    from rill.terminal.tty import neutralise

    cells = [list(header), *([*map(str, r[:-1]), neutralise(str(r[-1]))] for r in rows)]
    width = console().width
    keep = list(range(len(header)))

    def sizes() -> list[int]:
        return [max(len(row[n]) for row in cells) for n in range(len(header))]

    def fixed() -> int:
        size = sizes()
        rest = sum(size[n] for n in keep if header[n] not in ("MODEL", "TITLE"))
        return rest + 2 * (len(keep) - 1) + min(size[2], _MODEL_ROOM) + _TITLE_ROOM

    if fixed() > width:
        for row in cells[1:]:
            row[1] = row[1][:10]  # the date without the time
    for name in ("TOKENS", "TURNS", "FINISH"):
        if fixed() > width:
            keep.remove(header.index(name))
    size = sizes()
    room = width - (fixed() - min(size[2], _MODEL_ROOM) - _TITLE_ROOM)
    size[2] = min(size[2], max(8, room - _TITLE_ROOM))
    size[-1] = max(room - size[2], 6)
    lines = []
    for row in cells:
        parts = [_fit(row[n], size[n]) for n in keep]
        lines.append("  ".join(parts).rstrip() + "\n")
    with piped():
        sys.stdout.write("".join(lines))


def _fit(text: str, width: int) -> str:
    """``text`` in exactly ``width`` columns: padded, or cut with "…"."""
    if len(text) > width:
        return text[: max(width - 1, 0)] + "…"
    return text.ljust(width)


def _text_filter() -> Callable[[str], str]:
    """How upstream text reaches stdout: exact into a pipe; on a terminal, control sequences in
    it (a model's answer can hold any) are shown instead of obeyed."""
    if not stdout_is_terminal():
        return str
    from rill.terminal.safe import neutralise

    return neutralise


@history_app.command("show")
def history_show(
    ref: Annotated[str, typer.Argument(help="Chat ID, unique prefix, or 'last'.")] = "last",
    as_json: opt.Json = False,
) -> None:
    """Show one chat: every turn, with model, finish reason and usage."""
    from rill.history.blobs import records_in
    from rill.history.records import text_of

    store = open_store()
    chat = store.load(store.resolve(ref))
    chat = {**chat, "exchanges": [public(ex) for ex in chat.get("exchanges", [])]}
    if as_json:
        print_json(chat)
        return
    import sys

    safe = _text_filter()

    def write(text: str) -> None:
        sys.stdout.write(safe(text))

    with piped():
        write(f"chat {chat.get('id')}  {chat.get('title', '')}\n")
        for ex in chat.get("exchanges", []):
            model = _model_shown(ex.get("requested_model"), ex.get("served_model"))
            server = f" · {ex['base_url']}" if isinstance(ex.get("base_url"), str) else ""
            usage = ex.get("usage") or {}
            status = ex.get("finish_reason") or ex.get("status") or "-"
            write(
                f"\n--- {_short_time(ex.get('started_at'))} · {model} · {status}"
                f" · {usage.get('prompt_tokens', '-')}/{usage.get('completion_tokens', '-')}"
                f" tokens · {_cost(usage.get('cost'))}{server}\n"
            )
            results = _tool_results(ex)
            for message in ex.get("messages", []):
                role = message.get("role")
                if role == "tool" and message.get("tool_call_id") in results:
                    role = results[message.get("tool_call_id")]
                write(f"[{role}] {text_of(message.get('content'))}\n")
                for record in records_in([message]):
                    write(f"[attachment] {attachment_line(record)}\n")
            answer = ex.get("answer") or {}
            calls = answer.get("tool_calls") or []
            if answer.get("content") or not calls:
                write(f"[assistant] {answer.get('content', '')}\n")
            for call in calls:
                function = call.get("function") or {} if isinstance(call, dict) else {}
                name, arguments = function.get("name"), function.get("arguments")
                write(f"[tool call] {name} {arguments}\n")
            if ex.get("error"):
                write(f"[error] {ex['error'].get('message', '')}\n")
            if ex.get("schema_error"):
                write(f"[schema] {ex['schema_error']}\n")


def _tool_results(exchange: dict[str, Any]) -> dict[Any, str]:
    """A tool round's results by call id, as their messages are labelled: ``tool NAME · exit
    N`` (``not run`` for a call that was refused or invalid)."""
    out: dict[Any, str] = {}
    for result in exchange.get("tool_results") or []:
        if isinstance(result, dict):
            code = result.get("exit_code")
            ended = "not run" if code is None else f"exit {code}"
            out[result.get("id")] = f"tool {result.get('name')} · {ended}"
    return out


def attachment_line(record: dict[str, Any]) -> str:
    """An attached file as ``history show`` lists it: name or URL, type, size, hash."""
    if record.get("url"):
        return f"{record.get('url')} · {record.get('mime')}"
    return (
        f"{record.get('name')} · {record.get('mime')} · {record.get('size')} bytes"
        f" · sha256:{record.get('sha256')}"
    )


@history_app.command("rm")
def history_rm(ref: Annotated[str, typer.Argument(help="Chat ID or unique prefix.")]) -> None:
    """Remove a chat, and the attached files no other chat uses."""
    store = open_store()
    chat_id = store.resolve(ref)
    store.remove(chat_id)
    warn(f"removed chat {chat_id}")


@history_app.command("export")
def history_export() -> None:
    """Every exchange as JSON lines, oldest first."""
    print_json((public(row) for row in open_store().export()), lines=True)


def public(exchange: Any) -> Any:
    """An exchange as it may be shown: a ``base_url`` without credentials (rill stores none,
    but a file from elsewhere or edited by hand may hold some)."""
    url = exchange.get("base_url") if isinstance(exchange, dict) else None
    return {**exchange, "base_url": display_url(url)} if isinstance(url, str) else exchange


@history_app.command("search")
def history_search(
    text: Annotated[str, typer.Argument(help="Text to look for (case-insensitive).")],
    as_json: opt.Json = False,
) -> None:
    """Find chats whose prompts or answers contain TEXT (no match: no output, exit 0)."""
    hits = open_store().search(text)
    if as_json:
        print_json(hits)
        return
    import sys

    safe = _text_filter()
    with piped():
        for hit in hits:
            line = f"{hit.get('chat_id')}\t{hit.get('role')}\t{hit.get('snippet')}\n"
            sys.stdout.write(safe(line))


@history_app.command("reindex")
def history_reindex() -> None:
    """Rebuild the index from the chat files."""
    count = open_store().reindex()
    warn(f"indexed {count} exchanges")


_SINCE = re.compile(r"^(\d+)([hdw])$")


def parse_since(value: str | None, now: datetime | None = None) -> datetime | None:
    if not value:
        return None
    now = now or datetime.now(UTC)
    match = _SINCE.match(value.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        hours = {"h": 1, "d": 24, "w": 24 * 7}[unit] * amount
        try:
            return now - timedelta(hours=hours)
        except OverflowError:  # before the year 1, or past what a timedelta holds
            raise typer.BadParameter(
                f"{value.strip()} reaches back before the year 1", param_hint="--since"
            ) from None
    try:
        day = datetime.strptime(value.strip(), "%Y-%m-%d")
    except ValueError:
        raise typer.BadParameter(
            "expected a duration like 7d, 12h, 2w or a date YYYY-MM-DD", param_hint="--since"
        ) from None
    return day.replace(tzinfo=UTC)


def usage_command(
    since: Annotated[str | None, typer.Option("--since", help="7d, 12h, 2w or YYYY-MM-DD.")] = None,
    by: Annotated[str, typer.Option("--by", help="Group by model or day.")] = "model",
    as_json: opt.Json = False,
    check: Annotated[
        bool, typer.Option("--check", help="Compare today's cost with what the API key reports.")
    ] = False,
) -> None:
    """Token and cost totals from history, grouped by served model or by day."""
    if by not in ("model", "day"):
        raise typer.BadParameter("must be model or day", param_hint="--by")
    start = parse_since(since)
    from rill.history import usage_total

    rows = open_store().usage(since=start, by=by)  # type: ignore[arg-type]
    total = usage_total(rows)
    from rill.commands.key import check_line, saving_line, usage_check

    checked = usage_check(open_store()) if check else None
    if as_json:
        print_json(
            {"by": by, "since": start.isoformat() if start else None, "rows": rows, "total": total}
            | ({"check": checked} if checked else {})
        )
        return
    header = (by.upper(), "REQUESTS", "PROMPT", "COMPLETION", "REASONING", "CACHED", "COST")

    def cells(key: str, r: dict[str, Any]) -> tuple[str, ...]:
        return (
            key,
            str(r.get("requests", 0)),
            str(r.get("prompt_tokens", 0)),
            str(r.get("completion_tokens", 0)),
            str(r.get("reasoning_tokens", 0)),
            str(r.get("cached_tokens", 0)),
            _cost(r.get("cost")),
        )

    table = [cells(str(r.get("key")), r) for r in rows]
    table.append(cells("TOTAL", total))
    print_table(header, table)
    unknown = total.get("requests_without_cost") or 0
    if unknown:
        with piped():
            sys.stdout.write(
                f"{unknown} of {total['requests']} requests reported no cost; "
                "COST leaves them out\n"
            )
    for note in (saving_line(rows, by), check_line(checked) if checked else None):
        if note:  # on stderr: a pipe keeps only the table's rows
            warn(note)


def register(app: typer.Typer) -> None:
    app.add_typer(history_app)
    app.command("usage")(usage_command)
