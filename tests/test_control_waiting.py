"""``Control.waiting``: the thread that waits on the network or on a retry's backoff says so
before and after, so that a pool running it can run another call meanwhile."""

from __future__ import annotations

import pytest

from rill.errors import Cancelled, ExitCode
from rill.stream.control import Control, Limits


def told(control: Control) -> list[bool]:
    calls: list[bool] = []
    control.waiting = calls.append
    return calls


def test_the_phases_that_wait_on_the_network_are_told_and_the_others_are_not() -> None:
    control = Control(Limits())
    calls = told(control)
    for name in (
        "connection.connect_tcp.started",
        "connection.connect_tcp.failed",
        "http11.send_request_headers.started",  # a few bytes: not a wait
        "http11.send_request_headers.complete",
        "http11.receive_response_headers.started",
        "http11.receive_response_headers.complete",
        "http11.response_closed.started",
        "http11.response_closed.complete",
    ):
        control.trace(name, {})
    assert calls == [True, False, True, False]


def test_a_backoff_is_a_wait_even_when_a_cancel_ends_it() -> None:
    control = Control(Limits())
    calls = told(control)
    control.sleep(0.01)
    assert calls == [True, False]
    control.cancel(Cancelled("SIGINT", ExitCode.INTERRUPTED))
    with pytest.raises(Cancelled):
        control.sleep(5)
    assert calls == [True, False, True, False]
