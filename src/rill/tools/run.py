"""Run one tool call: the declared argv, no shell, the arguments as JSON on stdin.

The command runs in a process group of its own, so that a timeout or a cancel (Ctrl-C, SIGTERM)
kills it together with whatever it started. Its stdout becomes the ``tool`` message, up to
``OUTPUT_CAP`` bytes (then cut, with a note saying so); a non-zero exit, a timeout or a cancel
become a message that says so, with the end of its stderr. The API key is not in its environment.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import threading
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from rill.errors import Cancelled
from rill.tools.definitions import Tool

OUTPUT_CAP = 100 * 1024
_STDERR_TAIL = 2048
_READ = 65536
#: Exit codes for calls that did not end by themselves, as timeout(1) and shells report them.
TIMED_OUT = 124
NOT_EXECUTABLE = 126
NOT_FOUND = 127
#: Never passed to a tool: the key is rill's alone.
_HIDDEN = ("OPENROUTER_API_KEY",)


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What one call gave: the ``tool`` message's content, and how it ended (``exit_code`` None:
    the call was not run, because it was not approved or its arguments were invalid)."""

    id: str
    name: str
    exit_code: int | None
    content: str

    def as_dict(self) -> dict[str, Any]:
        """The ``tool_result`` event's data."""
        return {
            "id": self.id,
            "name": self.name,
            "exit_code": self.exit_code,
            "content": self.content,
        }

    def message(self) -> dict[str, Any]:
        """The ``tool`` message sent back to the model."""
        return {"role": "tool", "tool_call_id": self.id, "content": self.content}


def cut(data: bytes, total: int) -> str:
    """``data`` as text, with a note when the output was longer than ``OUTPUT_CAP``."""
    text = data[:OUTPUT_CAP].decode("utf-8", "replace")
    if total > OUTPUT_CAP:
        text += f"\n[rill: the output was cut at {OUTPUT_CAP // 1024} KB; {total:,} bytes in all]"
    return text


class Execution:
    """One call being run; ``cancel`` from a signal handler (or any thread) kills its process
    group, and the call ends as cancelled."""

    def __init__(self) -> None:
        self.cancelled: Cancelled | None = None
        self.served = False
        """Running a served tool (an MCP server's): nothing here can be killed, so a cancel
        returns False and the signal edge raises it out of the wait instead."""
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def cancel(self, reason: Cancelled) -> bool:
        self.cancelled = reason
        if self.served:
            return False
        with self._lock:
            proc = self._proc
        if proc is not None:
            kill_group(proc)
        return True

    def run(self, tool: Tool, arguments: dict[str, Any], call_id: str) -> ToolResult:
        if tool.call is not None:  # served by another program (an MCP server)
            self.served = True
            code, text = tool.call(arguments)
            return ToolResult(call_id, tool.name, code, text)
        env = {k: v for k, v in os.environ.items() if k not in _HIDDEN}
        env["RILL_TOOL_NAME"] = tool.name
        env["RILL_TOOL_CALL_ID"] = call_id
        try:
            proc = subprocess.Popen(
                list(tool.command),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,  # its own process group: killed whole
            )
        except FileNotFoundError:
            return self._failed(tool, call_id, NOT_FOUND, f"{tool.command[0]} was not found")
        except PermissionError:
            return self._failed(tool, call_id, NOT_EXECUTABLE, f"cannot run {tool.command[0]}")
        except OSError as exc:
            return self._failed(tool, call_id, NOT_EXECUTABLE, f"cannot run it: {exc.strerror}")
        with self._lock:
            self._proc = proc
        if self.cancelled is not None:
            kill_group(proc)
        try:
            return self._collect(tool, call_id, proc, json.dumps(arguments).encode())
        finally:
            with self._lock:
                self._proc = None
            kill_group(proc)  # whatever it left running in its group goes with it
            with suppress(subprocess.TimeoutExpired):
                proc.wait(5)

    def _failed(self, tool: Tool, call_id: str, code: int, why: str) -> ToolResult:
        return ToolResult(call_id, tool.name, code, f"error: {why}")

    def _collect(
        self, tool: Tool, call_id: str, proc: subprocess.Popen[bytes], payload: bytes
    ) -> ToolResult:
        deadline = time.monotonic() + tool.timeout
        out, err, total, timed_out = _pump(proc, payload, deadline)
        if not timed_out:
            try:  # its output has ended: it has until the deadline to exit
                proc.wait(max(deadline - time.monotonic(), 0.001))
            except subprocess.TimeoutExpired:
                timed_out = True
        if timed_out:
            kill_group(proc)
        code = proc.wait()
        stderr = err[-_STDERR_TAIL:].decode("utf-8", "replace").strip()
        if self.cancelled is not None:
            why = f"error: the call was cancelled ({self.cancelled.reason})"
            return ToolResult(call_id, tool.name, int(self.cancelled.exit_code), why)
        if timed_out:
            why = f"error: the command did not finish within {tool.timeout:g} s and was stopped"
            return ToolResult(call_id, tool.name, TIMED_OUT, _with(why, out, total, stderr))
        if code < 0:
            why = f"error: the command was killed by signal {-code}"
            return ToolResult(call_id, tool.name, 128 - code, _with(why, out, total, stderr))
        if code != 0:
            why = f"error: the command exited with status {code}"
            return ToolResult(call_id, tool.name, code, _with(why, out, total, stderr))
        return ToolResult(call_id, tool.name, 0, cut(out, total))


def _with(why: str, out: bytes, total: int, stderr: str) -> str:
    parts = [why]
    if stderr:
        parts.append(f"stderr: {stderr}")
    if total:
        parts.append(f"stdout: {cut(out, total)}")
    return "\n".join(parts)


def _pump(
    proc: subprocess.Popen[bytes], payload: bytes, deadline: float
) -> tuple[bytes, bytes, int, bool]:
    """Feed stdin and read stdout and stderr until both end or the deadline passes:
    (stdout up to the cap, stderr's tail, stdout's full size, whether it timed out)."""
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    stdin: Any = proc.stdin
    os.set_blocking(stdin.fileno(), False)
    out = bytearray()
    err = bytearray()
    total = 0
    readers = {proc.stdout.fileno(): "out", proc.stderr.fileno(): "err"}
    pending = memoryview(payload)
    if not pending:
        stdin.close()
        stdin = None
    while readers:
        left = deadline - time.monotonic()
        if left <= 0:
            return bytes(out), bytes(err), total, True
        writers = [stdin.fileno()] if stdin is not None else []
        readable, writable, _ = select.select(list(readers), writers, [], left)
        if writable and stdin is not None:
            try:
                sent = os.write(stdin.fileno(), pending[:_READ])
                pending = pending[sent:]
            except BlockingIOError:
                pass
            except OSError:  # it does not read its stdin: fine
                pending = pending[len(pending) :]
            if not pending:
                with suppress(OSError):
                    stdin.close()
                stdin = None
        for fd in readable:
            piece = os.read(fd, _READ)
            if not piece:
                del readers[fd]
            elif readers[fd] == "out":
                total += len(piece)
                if len(out) <= OUTPUT_CAP:
                    out += piece[: OUTPUT_CAP + 1 - len(out)]
            else:
                err += piece
                del err[:-_STDERR_TAIL]
    if stdin is not None:
        with suppress(OSError):
            stdin.close()
    return bytes(out), bytes(err), total, False


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill the call's process group (it leads its own), and so everything it started."""
    with suppress(ProcessLookupError, PermissionError, OSError):
        os.killpg(proc.pid, signal.SIGKILL)
