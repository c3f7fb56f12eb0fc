"""MCP over stdio: ``[mcp.NAME]`` in config.toml (``command``, an argv) and ``--mcp NAME`` offer
that server's tools, under the same consent rules as declared tools.

The client is the official MCP Python SDK (the ``mcp`` extra), imported only here and only when
``--mcp`` is given. Its session is asynchronous: it runs on an event loop in a thread of its own
for as long as the run lasts, and each call is handed to that loop and waited for (bounded by
the server's ``timeout``, 30 s by default). A call the server reports as an error becomes a
``tool`` message that says so (exit code 1); a call that times out, 124.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from rill.errors import ConfigError, UsageError
from rill.tools.definitions import DEFAULT_TIMEOUT, NAME, Tool, check_parameters

_START_TIMEOUT = 30.0


def server_config(config: Mapping[str, Any], name: str) -> tuple[list[str], float]:
    """``[mcp.NAME]``'s argv and timeout; UsageError naming it when it is not configured."""
    table = config.get("mcp") or {}
    entry = table.get(name) if isinstance(table, dict) else None
    if entry is None:
        known = ", ".join(sorted(table)) if isinstance(table, dict) and table else "none"
        raise UsageError(f"unknown MCP server {name!r}: no [mcp.{name}] in config.toml ({known})")
    command = entry.get("command") if isinstance(entry, dict) else None
    if (
        not isinstance(command, list)
        or not command
        or not all(isinstance(a, str) and a for a in command)
    ):
        raise ConfigError(f"[mcp.{name}]: command must be a non-empty list of strings (an argv)")
    timeout = entry.get("timeout", DEFAULT_TIMEOUT)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(f"[mcp.{name}]: timeout must be a positive number of seconds")
    return command, float(timeout)


class McpServer:
    """One stdio MCP server for the length of a run: ``start`` lists its tools, ``close`` ends
    the session and the server."""

    def __init__(self, name: str, command: list[str], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.name = name
        self.command = command
        self.timeout = timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._session: Any = None
        self._listed: list[Any] = []
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=f"mcp-{name}", daemon=True)

    def start(self) -> list[Tool]:
        try:
            import mcp  # noqa: F401 - only to say what is missing
        except ImportError:
            raise UsageError("--mcp needs the MCP client: pip install 'rill-cli[mcp]'") from None
        self._thread.start()
        if not self._ready.wait(_START_TIMEOUT):
            self.close()
            raise UsageError(f"MCP server {self.name!r} did not start within {_START_TIMEOUT:g} s")
        if self._failure is not None:
            raise UsageError(f"MCP server {self.name!r} failed to start: {_why(self._failure)}")
        return [self._tool(listed) for listed in self._listed]

    def _tool(self, listed: Any) -> Tool:
        name = str(listed.name)
        if not NAME.fullmatch(name):
            raise UsageError(f"MCP server {self.name!r}: tool name {name!r} cannot be offered")
        schema = getattr(listed, "input_schema", None) or getattr(listed, "inputSchema", None)

        def bad(why: str) -> UsageError:
            return UsageError(f"MCP server {self.name!r}: tool {name!r}: {why}")

        parameters = check_parameters(dict(schema or {"type": "object"}), bad)

        def call(arguments: dict[str, Any]) -> tuple[int, str]:
            return self.call(name, arguments)

        description = str(listed.description or "")
        return Tool(name, description, parameters, (), self.timeout, f"mcp:{self.name}", call)

    def call(self, name: str, arguments: dict[str, Any]) -> tuple[int, str]:
        loop = self._loop
        if loop is None or self._session is None:
            return 1, f"error: the MCP server {self.name!r} is not running"
        future = asyncio.run_coroutine_threadsafe(self._session.call_tool(name, arguments), loop)
        try:
            result = future.result(self.timeout)
        except FutureTimeout:
            future.cancel()
            return 124, f"error: the MCP server did not answer within {self.timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - the server's failure is the model's to read
            return 1, f"error: {_why(exc)}"
        texts = [str(getattr(part, "text", "")) for part in getattr(result, "content", [])]
        text = "\n".join(t for t in texts if t)
        failed = bool(getattr(result, "is_error", None) or getattr(result, "isError", False))
        return (1, f"error: {text}") if failed else (0, text)

    def close(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            loop.call_soon_threadsafe(stop.set)
        if self._thread.is_alive():
            self._thread.join(5)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - reported by start()
            self._failure = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        from mcp import ClientSession, StdioServerParameters
        from mcp.client.stdio import stdio_client

        params = StdioServerParameters(
            command=self.command[0], args=self.command[1:], env=_environment()
        )
        with open(os.devnull, "w") as errlog:
            async with (
                stdio_client(params, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()
                listed = await session.list_tools()
                self._listed = list(listed.tools)
                self._session = session
                self._stop = asyncio.Event()
                self._loop = asyncio.get_running_loop()
                self._ready.set()
                await self._stop.wait()


def _environment() -> dict[str, str]:
    """The server's environment: rill's, without the API key."""
    return {k: v for k, v in os.environ.items() if k != "OPENROUTER_API_KEY"}


def _why(exc: BaseException) -> str:
    group = getattr(exc, "exceptions", None)
    if group:
        return _why(group[0])
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
