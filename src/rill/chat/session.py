"""The chat loop: read a message, stream its answer, repeat; the slash commands; the signals.

The conversation is one chat in history: each turn reads the chat's messages back from the store
(so a ``rill -c "…"`` run from another shell is part of the next turn), and records its exchange
before anything is sent. With ``--no-history`` the messages are kept in memory only.
"""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from rill.chat.show import exchange_messages, show_answer, show_messages, status_note
from rill.env import Environment
from rill.errors import ExitCode, RillError, UsageError
from rill.process import SIGNALS

NOT_A_TERMINAL = 'rill chat needs a terminal on stdin; for scripted turns use rill -c "…"'
HISTORY_FILE = "chat_input_history"


@dataclass
class ChatArgs:
    flags: dict[str, Any]
    """The prompt command's setting flags (``SettingFlags``): model, system, timeouts…"""
    template: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    continue_chat: bool = False
    chat: str | None = None
    no_history: bool = False
    reasoning_effort: str | None = None
    options: list[str] = field(default_factory=list)
    raw: bool = False


class Leave(Exception):
    """SIGTERM or SIGHUP at the prompt: the session ends with this exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class ChatSession:
    """One conversation's state, between turns."""

    def __init__(self, args: ChatArgs, env: Environment, warn: Callable[[str], None]) -> None:
        self.args = args
        self.env = env
        self.warn = warn
        self.flags = dict(args.flags)
        self.extra: dict[str, Any] = {}
        self.template_prompt: str | None = None
        self.system: str | None = self.flags.get("system")
        self.chat_id: str | None = None
        self.memory: list[dict[str, Any]] = []
        self.attached: list[Any] = []
        """What `/attach` added, sent with the next message (``parts.Attachment`` values)."""
        self.usages: list[dict[str, Any]] = []
        self.last_text: str | None = None
        self.store: Any = None
        self.settings: Any = None
        self.client: Any = None

    # -- setting up ---------------------------------------------------------------------------

    def open(self) -> None:
        from rill.config.settings import resolve_paths, resolve_settings
        from rill.input.prompting import apply_template, load_template, merge_options

        if self.args.template:
            template = load_template(resolve_paths().templates_dir, self.args.template)
            system, prompt = apply_template(template, self.args.params, "")
            self.flags["model"] = self.flags.get("model") or template.model
            self.system = self.system if self.system is not None else system
            self.template_prompt = prompt or None
            self.extra.update(template.options)
        self.extra.update(merge_options(self.args.options))
        resumed = self._resumed()
        self.settings = resolve_settings(self.flags, warn=self.warn)  # type: ignore[arg-type]
        self.settings.check_transport()
        if not self.args.no_history and self.settings.history:
            from rill.history import HistoryStore

            self.store = HistoryStore(
                self.settings.paths.history_dir, self.settings.history_format, warn=self.warn
            )
        if resumed:
            self._show_last()

    def _resumed(self) -> bool:
        if not self.args.continue_chat and self.args.chat is None:
            return False
        from rill.config.settings import resolve_paths
        from rill.history import HistoryStore

        store = HistoryStore(resolve_paths().history_dir, warn=self.warn, read_only=True)
        if self.args.continue_chat and store.last_chat_id() is None:
            raise UsageError("no chat to continue yet: start one with rill chat")
        self.chat_id = store.resolve(self.args.chat or "last")
        model, base_url = store.origin(self.chat_id)
        if self.flags.get("model") is None and model is not None:
            self.flags["model"] = model
        if self.flags.get("base_url") is None and base_url is not None:
            self.flags["base_url"] = base_url
        conversation = store.conversation(self.chat_id)
        last = [m for m in conversation if m.get("role") == "user"][-1:]
        self.last_text = _text(last[0]) if last else None
        return True

    def _connect(self) -> None:
        """The client for the current settings (made at the first turn, not before the prompt:
        the TLS context costs start-up)."""
        from rill.stream.client import ChatClient, RetryPolicy, make_http_client

        self.close()
        http = make_http_client(self.settings, None)
        notes = self._retry_note if self.env.stderr_isatty else None
        policy = RetryPolicy(self.settings.retries, notes)
        self.client = ChatClient(self.settings, http, policy=policy)

    def _retry_note(self, note: str) -> None:
        from rill.output.diagnostics import note_line, write_line

        write_line(self.env.stderr, note_line(note, tty=self.env.stderr_isatty))

    def close(self) -> None:
        if self.client is not None:
            self.client.http.close()
            self.client = None

    def _show_last(self) -> None:
        chat = self.store.load(self.chat_id) if self.store else self._read_chat()
        exchanges = chat.get("exchanges") or []
        if not exchanges:
            return
        self.say(f"chat {self.chat_id} · {len(exchanges)} exchanges · {self.settings.model}")
        show_messages(self.env, self.settings, exchange_messages(exchanges[-1]))
        note = status_note(exchanges[-1])
        if note:
            self.say(note)

    def _read_chat(self) -> dict[str, Any]:
        from rill.history import HistoryStore

        store = HistoryStore(self.settings.paths.history_dir, warn=self.warn, read_only=True)
        chat: dict[str, Any] = store.load(self.chat_id or "last")
        return chat

    # -- the conversation ---------------------------------------------------------------------

    def conversation(self) -> list[dict[str, Any]]:
        if self.chat_id is None:
            return list(self.memory)
        if self.store is not None:
            return list(self.store.conversation(self.chat_id))
        if not self.memory:  # resumed without recording: start from what history holds
            from rill.history import HistoryStore

            paths = self.settings.paths
            self.memory = HistoryStore(paths.history_dir, read_only=True).conversation(self.chat_id)
        return list(self.memory)

    def send(self, text: str, *, retry: bool = False) -> int | None:
        """One turn. Returns an exit code when the session must end (SIGTERM, SIGHUP, a
        terminal gone)."""
        # The pipeline (httpx, TLS) is loaded at the first turn, not before the first prompt.
        from rill.chat.turn import stream_turn
        from rill.input.prompting import build_messages, check_extra
        from rill.stream.protocol import Request

        earlier = self.conversation()
        if retry:
            earlier = _before_last_question(earlier)
        user_text = text
        if self.template_prompt and not earlier:
            user_text = f"{self.template_prompt}\n\n{text}"
        system = self.system
        if system is None and not earlier:
            system = self.settings.system
        messages, turn = build_messages(user_text, system, earlier)
        if self.attached and not retry:  # history stores each file once, as for `rill -a`
            from rill.stream.parts import with_parts

            messages[-1] = with_parts(messages[-1], self.attached)
            turn[-1] = with_parts(turn[-1], self.attached)
            self.attached = []
        check_extra(self.extra)
        request = Request(
            messages=messages,
            model=self.settings.model,
            stream=True,
            max_tokens=self.settings.max_tokens,
            temperature=self.settings.temperature,
            reasoning_effort=self.args.reasoning_effort,
            extra=self.extra,
        )
        begin = self._begin(request, turn) if self.store is not None else None
        if self.client is None:
            self._connect()
        result = stream_turn(
            self.env, self.settings, self.client, request, begin, raw=self.args.raw
        )
        outcome = result.outcome
        self.last_text = text
        self.system = None  # sent: history holds it as the chat's system prompt from now on
        if outcome is not None:
            if self.store is not None:
                self.chat_id = outcome.chat_id or self.chat_id
            else:
                reply = outcome.transcript.content
                self.memory = [*earlier, *turn]
                if reply:
                    self.memory.append({"role": "assistant", "content": reply})
                self.chat_id = self.chat_id or ""
            usage = outcome.transcript.usage()
            if usage:
                self.usages.append(usage)
        return result.exit_code

    def _begin(self, request: Any, turn: list[dict[str, Any]]) -> Callable[[], Any]:
        from rill.history import ExchangeStart

        def begin() -> Any:
            start = ExchangeStart.of(
                request,
                chat_id=self.chat_id or None,
                messages=turn,
                base_url=self.settings.base_url,
            )
            return self.store.begin(start)

        return begin

    def set_model(self, model: str) -> None:
        from rill.config.settings import resolve_settings

        flags = {**self.flags, "model": model}
        settings = resolve_settings(flags, warn=self.warn)  # type: ignore[arg-type]
        self.flags, self.settings = flags, settings
        self.close()  # the next turn connects with the new settings

    def say(self, text: str) -> None:
        from rill.output.diagnostics import safe_for

        line = safe_for(self.env.stderr_isatty)(text)
        self.env.stderr.write(line + "\n")
        self.env.stderr.flush()

    def show_history(self) -> None:
        show_messages(self.env, self.settings, self.conversation())

    def show_answer(self, text: str) -> None:
        show_answer(self.env, self.settings, text)

    def chat_usage(self) -> list[dict[str, Any]]:
        """The usage of each exchange of this chat (all of them when it is in history)."""
        if self.store is not None and self.chat_id:
            exchanges = self.store.load(self.chat_id).get("exchanges") or []
            return [ex.get("usage") or {} for ex in exchanges]
        return list(self.usages)


def _before_last_question(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation as it was when the last question was asked."""
    out = list(messages)
    while out and out[-1].get("role") == "assistant":
        out.pop()
    if out and out[-1].get("role") == "user":
        out.pop()
    return out


def _text(message: dict[str, Any]) -> str:
    content = message.get("content")
    return content if isinstance(content, str) else ""


@contextmanager
def leave_on_terminate(leave: Callable[[BaseException], None]) -> Iterator[None]:
    """At the prompt, SIGTERM and SIGHUP end the session (143) through ``leave``, which lets the
    editor restore the terminal first; Ctrl-C is the editor's key."""

    def handle(signum: int, _frame: FrameType | None) -> None:
        leave(Leave(int(SIGNALS[signum][1])))

    wanted = [signal.SIGTERM, signal.SIGHUP]
    previous = {sig: signal.signal(sig, handle) for sig in wanted}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_chat(args: ChatArgs, env: Environment | None = None) -> int:
    from rill.chat.commands import COMMANDS, dispatch
    from rill.output.diagnostics import note_line, write_line

    env = env or Environment.from_process()
    if not env.stdin_isatty:
        raise UsageError(NOT_A_TERMINAL)

    def warn(message: str) -> None:
        write_line(env.stderr, note_line(message, tty=env.stderr_isatty))

    session = ChatSession(args, env, warn)
    session.open()
    from rill.chat.editor import LineEditor

    # --no-history keeps the typed lines to the session too.
    keep = None if args.no_history else session.settings.paths.cache_dir / HISTORY_FILE
    editor = LineEditor(keep, COMMANDS, lambda: _models(session))
    # Between answers a Ctrl-C (typed while the terminal is not the editor's) ends nothing: a
    # handler, not SIG_IGN, so that the editor /edit starts gets the default again.
    previous = signal.signal(signal.SIGINT, _ignore)
    try:
        while True:
            try:
                with leave_on_terminate(editor.leave):
                    text = editor.read()
            except Leave as leave:
                return leave.code
            if text is None:
                return int(ExitCode.OK)
            try:
                code = dispatch(session, text)
            except RillError as exc:
                warn(exc.message)
                continue
            if code is not None:
                return code
    finally:
        signal.signal(signal.SIGINT, previous)
        session.close()


def _ignore(_signum: int, _frame: FrameType | None) -> None:
    pass


def _models(session: ChatSession) -> list[str]:
    """Model IDs for ``/model`` completion: the cached list (however old) and the aliases."""
    import time

    from rill.config.models import cache_path, read_cache

    ids = sorted(session.settings.aliases)
    cached = read_cache(
        cache_path(session.settings), session.settings.base_url, now=time.time(), ttl=float("inf")
    )
    if cached is not None:
        ids += sorted(str(m.get("id")) for m in cached.models if m.get("id"))
    return ids
