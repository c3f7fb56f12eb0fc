"""A server that reports no cost: the cost is unknown, never $0."""

from __future__ import annotations

import json

from rill.fake import FakeOpenRouter, Scenario
from tests.e2e import run


def test_unknown_cost_is_not_free(fake_server: FakeOpenRouter) -> None:
    fake_server.enqueue(Scenario(content=["no cost"], usage_omit_cost=True))
    done = run(["--base-url", fake_server.url, "hello"])
    assert done.returncode == 0, done.stderr
    usage = json.loads(run(["usage", "--json"]).stdout)
    assert usage["total"]["cost"] is None and usage["total"]["requests_without_cost"] == 1
    assert usage["rows"][0]["cost"] is None
    text = run(["usage"]).stdout.decode()
    assert "$0.0000" not in text and "—" in text
    assert "1 of 1 requests reported no cost" in text
    listed = run(["history", "list"]).stdout.decode()
    assert "$0.0000" not in listed and "—" in listed
    assert json.loads(run(["history", "list", "--json"]).stdout)[0]["cost"] is None
    fake_server.enqueue(Scenario(content=["with cost"]))
    assert run(["--base-url", fake_server.url, "again"]).returncode == 0
    total = json.loads(run(["usage", "--json"]).stdout)["total"]
    assert total["requests"] == 2 and total["requests_without_cost"] == 1
    assert isinstance(total["cost"], float)
