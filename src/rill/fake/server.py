"""``FakeOpenRouter``: the server, its settings, its records, routing and authentication."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from rill.fake import content, endpoints, respond
from rill.fake.canned import canned_scenario
from rill.fake.common import DEFAULT_API_KEY, DEFAULT_MODEL, DEMO_CONTENT, Persona
from rill.fake.error_bodies import build_error
from rill.fake.models import default_models
from rill.fake.openrouter_extras import PromptCache, adapt, served_model
from rill.fake.pieces import Ctx, model_price, new_id
from rill.fake.records import Generation, Headers, Recorded
from rill.fake.scenario import Scenario
from rill.fake.wire import Handler, HTTPServer, read_body, send_json


class FakeOpenRouter:
    """A scriptable OpenRouter (and generic OpenAI-compatible) server on a local port.

    Settings (``reset()`` restores the constructor's values): ``api_key``, ``require_auth``,
    ``persona``, ``default_scenario`` (a Scenario or a canned name; a ``hostile-key-*`` one
    also shapes ``GET /models``, see ``side_scenario``), ``generation_404_polls``
    (``/generation`` answers 404 that many times per id first), ``key_limit`` / ``spent`` /
    ``key_label`` / ``management_key`` / ``credits_total`` (``/key`` and ``/credits``),
    ``models`` (the ``/models`` list) and ``models_style`` ("openrouter" | "generic"; None:
    generic for every persona but "openrouter").

    Records: ``requests`` (every request, ``Recorded``), ``attachments`` (each file part of a
    chat request, decoded and hashed: ``rill.fake.content.received``), ``disconnects``
    (``(generation id, time.monotonic())`` per client disconnect seen while answering),
    ``generations`` (id -> ``Generation``) and ``prompt_cache`` (the ``cache_control``
    prefixes seen).
    The "openrouter" persona plays fallbacks, provider preferences and prompt caching on every
    answer that is not an error (``rill.fake.openrouter_extras``).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_key: str = DEFAULT_API_KEY,
        require_auth: bool = True,
        persona: Persona = "openrouter",
        default_scenario: Scenario | str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._defaults = (api_key, require_auth, persona, default_scenario)
        self._cond = threading.Condition()
        self._httpd: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._conns: set[socket.socket] = set()
        self._epoch = 0
        self._active = 0  # chat responses being written (live count, survives reset)
        self.prompt_cache = PromptCache()
        self.log: Callable[[dict[str, Any]], None] | None = None  # fake-server --log
        self.reset()

    # lifecycle
    def start(self) -> FakeOpenRouter:
        self._stopping.clear()
        httpd = HTTPServer((self.host, self.port), Handler)
        httpd.fake = self
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        with self._cond:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=2)
            self._thread = None

    def __enter__(self) -> FakeOpenRouter:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """The base URL clients use: ``http://127.0.0.1:PORT/api/v1``."""
        return f"http://{self.host}:{self.port}/api/v1"

    @property
    def openai_url(self) -> str:
        """The same server under the ``/v1`` prefix of generic OpenAI-compatible servers."""
        return f"http://{self.host}:{self.port}/v1"

    # scripting
    def reset(self) -> None:
        """Forget queue and records, restore settings, and drop streams still in flight."""
        api_key, require_auth, persona, default_scenario = self._defaults
        with self._cond:
            self._epoch += 1
            self.api_key = api_key
            self.require_auth = require_auth
            self.persona: Persona = persona
            self.default_scenario: Scenario | str = default_scenario or Scenario(
                content=list(DEMO_CONTENT)
            )
            self.generation_404_polls = 0
            self.key_label = "sk-or-v1-tes...est"
            self.key_limit: float | None = 10.0
            self.spent = 0.0
            self.management_key = False
            self.credits_total = 25.0
            self.models = default_models()
            self.models_style: Literal["openrouter", "generic"] | None = None
            self.requests: list[Recorded] = []
            self.disconnects: list[tuple[str, float]] = []
            self.attachments: list[dict[str, Any]] = []
            self.generations: dict[str, Generation] = {}
            self._queue: deque[list[Any]] = deque()
            self._disconnects_seen = 0
            self._generation_polls: dict[str, int] = {}
            self.prompt_cache.clear()
            self._cond.notify_all()

    def enqueue(self, *scenarios: Scenario) -> None:
        """Queue scenarios for the next chat requests (each served ``repeat`` times)."""
        with self._cond:
            for scenario in scenarios:
                self._queue.append([scenario, max(1, scenario.repeat)])

    def side_scenario(self) -> Scenario:
        """The default scenario as ``GET /models`` sees it (the queue is for chat requests)."""
        with self._cond:
            default = self.default_scenario
        if isinstance(default, str):
            name = default if default.startswith("fake/") else f"fake/{default}"
            return canned_scenario(name, {}) or Scenario()
        return default

    @property
    def pending(self) -> int:
        """Queued responses not served yet."""
        with self._cond:
            return sum(entry[1] for entry in self._queue)

    @property
    def chat_requests(self) -> list[Recorded]:
        with self._cond:
            return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def last_request(self) -> Recorded | None:
        with self._cond:
            return self.requests[-1] if self.requests else None

    # waiting
    def wait_disconnect(self, timeout: float) -> float | None:
        """Monotonic time of the next client disconnect not yet returned, or None on timeout."""
        with self._cond:
            if not self._cond.wait_for(
                lambda: len(self.disconnects) > self._disconnects_seen, timeout
            ):
                return None
            moment = self.disconnects[self._disconnects_seen][1]
            self._disconnects_seen += 1
            return moment

    def wait_requests(self, count: int, timeout: float, suffix: str = "/chat/completions") -> bool:
        """Wait until ``count`` requests whose path ends with ``suffix`` have arrived."""

        def arrived() -> bool:
            return sum(r.path.endswith(suffix) for r in self.requests) >= count

        with self._cond:
            return self._cond.wait_for(arrived, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no chat response is being written."""
        with self._cond:
            return self._cond.wait_for(lambda: self._active == 0, timeout)

    # request handling
    def track(self, conn: socket.socket, add: bool) -> None:
        with self._cond:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def aborted(self, ctx: Ctx) -> bool:
        return self._stopping.is_set() or ctx.epoch != self._epoch

    def handle(self, h: Handler) -> None:
        raw = read_body(h)
        parts = urlsplit(h.path)
        try:
            body = json.loads(raw) if raw.strip() else None
        except ValueError:
            body = None
        rec = Recorded(
            method=h.command,
            path=parts.path,
            headers=Headers(h.headers.items()),
            body=body,
            time=time.monotonic(),
            query=dict(parse_qsl(parts.query)),
            raw_body=raw,
        )
        with self._cond:
            epoch = self._epoch
            self.requests.append(rec)
            self._cond.notify_all()
        h.server_header = "cloudflare" if self.persona in ("openrouter", "openai") else "uvicorn"
        path = parts.path.rstrip("/")
        routes: dict[str, tuple[str, Callable[[Handler, Recorded, int], None]]] = {
            "/chat/completions": ("POST", self._chat),
            "/models": ("GET", lambda h, r, e: endpoints.models(self, h, r)),
            "/generation": ("GET", lambda h, r, e: endpoints.generation(self, h, r)),
            "/auth/key": ("GET", lambda h, r, e: endpoints.key(self, h, r)),
            "/key": ("GET", lambda h, r, e: endpoints.key(self, h, r)),
            "/credits": ("GET", lambda h, r, e: endpoints.credits(self, h, r)),
        }
        for suffix, (method, serve) in routes.items():
            if path.endswith(suffix):
                if h.command != method:
                    self.send_error(h, 405, "Method Not Allowed")
                    return
                serve(h, rec, epoch)
                return
        self.send_error(h, 404, "Not Found")

    def send_error(self, h: Handler, status: int, message: str) -> None:
        send_json(h, status, {"error": {"message": message, "code": status}})

    def auth_failure(self, headers: Headers, persona: str, override: bool | None) -> str | None:
        required = override if override is not None else self.require_auth
        if override is None and persona == "ollama":
            required = False
        if not required:
            return None
        value = (headers.get("authorization") or "").strip()
        scheme, _, token = value.partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else value
        if not token or token.lower() == "bearer":
            return "no-auth"
        return None if token == self.api_key else "user-not-found"

    def side_auth(self, h: Handler, rec: Recorded) -> bool:
        """Check the key of a side endpoint's request; False when an error was sent."""
        failure = self.auth_failure(rec.headers, self.persona, None)
        if failure is not None:
            self.send_auth_error(h, failure, self.persona)
            return False
        return True

    def poll_generation(self, gen_id: str) -> tuple[dict[str, Any] | None, int]:
        """The ``/generation`` data of ``gen_id`` (None: unknown) and the polls before this one."""
        with self._cond:
            gen = self.generations.get(gen_id)
            polls = self._generation_polls.get(gen_id, 0)
            self._generation_polls[gen_id] = polls + 1
            return (gen.as_json() if gen is not None else None), polls

    def send_auth_error(self, h: Handler, kind: str, persona: str) -> None:
        headers, body = build_error(401, kind, persona=persona)
        send_json(h, 401, body, {k: v for k, v in headers.items() if k != "Content-Type"})

    def _pick(self, rec: Recorded, body: dict[str, Any]) -> tuple[Scenario | None, str, str | None]:
        """Choose the scenario; an auth failure leaves the queue untouched."""
        with self._cond:
            entry = self._queue[0] if self._queue else None
            if entry is not None:
                scenario = entry[0]
            else:
                # A canned model that serves as a fallback plays its scenario too.
                model = served_model(body) or body.get("model")
                scenario = canned_scenario(str(model or ""), body)
                if scenario is None:
                    default = self.default_scenario
                    if isinstance(default, str):
                        name = default if default.startswith("fake/") else f"fake/{default}"
                        default = canned_scenario(name, body) or Scenario(content=DEMO_CONTENT)
                    scenario = default
            persona = scenario.persona or self.persona
            failure = self.auth_failure(rec.headers, persona, scenario.require_auth)
            if failure is not None:
                return None, persona, failure
            if entry is not None:
                entry[1] -= 1
                if entry[1] <= 0:
                    self._queue.popleft()
            return scenario, persona, None

    def _chat(self, h: Handler, rec: Recorded, epoch: int) -> None:
        if not isinstance(rec.body, dict):
            send_json(h, 400, {"error": {"message": "Invalid JSON in request body", "code": 400}})
            return
        body = rec.body
        malformed = content.problem(body)  # as OpenRouter: before any model is asked
        files = content.received(body) if malformed is None else []
        if self.log is not None:
            self.log(content.log_entry(body, files, malformed))
        if malformed is not None:
            return send_json(h, 400, {"error": {"message": malformed, "code": 400}})
        self.attachments += files  # one list operation: safe between handler threads
        scenario, persona, failure = self._pick(rec, body)
        if scenario is None:
            self.send_auth_error(h, failure or "no-auth", persona)
            return
        if persona == "openrouter" and scenario.status == 200 and scenario.error_body is None:
            # Routing, fallbacks and the prompt cache, as OpenRouter plays them.
            scenario = adapt(scenario, body, self.prompt_cache)
        ctx = _context(scenario, persona, rec, body, epoch)
        with self._cond:
            self._active += 1
        try:
            if scenario.reject_stream_options and "stream_options" in body:
                respond.serve_error(self, h, ctx, 400, "stream-options")
            elif scenario.status != 200 or scenario.error_body is not None:
                respond.serve_error(self, h, ctx, scenario.status, scenario.error_kind)
            elif body.get("stream") is True:
                respond.serve_stream(self, h, ctx)
            else:
                respond.serve_json(self, h, ctx)
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def record_disconnect(self, ctx: Ctx, gen: Generation | None) -> None:
        with self._cond:
            if gen is not None:
                gen.cancelled = True
            if ctx.epoch == self._epoch:
                self.disconnects.append((ctx.gen_id, time.monotonic()))
                self._cond.notify_all()

    def open_generation(self, ctx: Ctx, streamed: bool) -> Generation:
        headers = ctx.request.headers
        gen = Generation(
            id=ctx.gen_id,
            model=ctx.model,
            provider=ctx.scenario.provider,
            streamed=streamed,
            created_at=time.time(),
            origin=headers.get("http-referer") or "",
            user_agent=headers.get("user-agent") or "",
            external_user=ctx.body.get("user") if isinstance(ctx.body.get("user"), str) else None,
        )
        with self._cond:
            if ctx.epoch == self._epoch:
                self.generations[gen.id] = gen
        return gen

    def close_generation(
        self,
        ctx: Ctx,
        gen: Generation,
        counts: tuple[int, int, int],
        finish: tuple[str, str] | None,
    ) -> None:
        prompt, completion, reasoning = counts
        price = model_price(self.models, ctx.model)
        with self._cond:
            gen.tokens_prompt, gen.tokens_completion = prompt, completion
            gen.tokens_reasoning, gen.tokens_cached = reasoning, ctx.scenario.cached_tokens
            gen.cost = round(prompt * price[0] + completion * price[1], 10)
            if finish is not None:
                gen.finish_reason, gen.native_finish_reason = finish
            elapsed = int((time.monotonic() - ctx.request.time) * 1000)
            gen.latency_ms = gen.generation_ms = elapsed
            gen.done = True
            if ctx.epoch == self._epoch:
                self.spent = round(self.spent + gen.cost, 10)


def _context(
    scenario: Scenario, persona: str, rec: Recorded, body: dict[str, Any], epoch: int
) -> Ctx:
    """What answering ``body`` with ``scenario`` needs to know."""
    requested = str(body.get("model") or "")
    created = scenario.created if scenario.created is not None else int(time.time())
    options: dict[str, Any] = body.get("stream_options") or {}
    reasoning: dict[str, Any] = body.get("reasoning") or {}
    options = options if isinstance(options, dict) else {}
    reasoning = reasoning if isinstance(reasoning, dict) else {}
    return Ctx(
        scenario=scenario,
        persona=persona,
        body=body,
        requested_model=requested or DEFAULT_MODEL,
        model=scenario.served_model or requested or DEFAULT_MODEL,
        gen_id=scenario.generation_id or new_id(persona, created),
        created=created,
        include_usage=options.get("include_usage") is True,
        continuous_usage=options.get("continuous_usage_stats") is True,
        reasoning_excluded=reasoning.get("exclude") is True
        or body.get("include_reasoning") is False,
        epoch=epoch,
        request=rec,
    )
