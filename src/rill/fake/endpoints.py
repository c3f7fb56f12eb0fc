"""The side endpoints: ``/models``, ``/generation``, ``/key`` (and ``/auth/key``), ``/credits``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rill.fake import hostile
from rill.fake.common import USER_ID
from rill.fake.records import Recorded
from rill.fake.wire import Handler, send_bytes, send_json

if TYPE_CHECKING:
    from rill.fake.server import FakeOpenRouter


def models(fake: FakeOpenRouter, h: Handler, rec: Recorded) -> None:
    place = fake.side_scenario().echo_key
    if place in hostile.ERROR_PLACES:
        headers, text = hostile.key_error(place, hostile.key_of(rec.headers))
        send_bytes(h, 400, text.encode(), headers)
        return
    models = list(fake.models)
    if place == "models":
        models.append(hostile.model_with_key(hostile.key_of(rec.headers)))
    wanted = [p for p in rec.query.get("supported_parameters", "").split(",") if p]
    if wanted:
        models = [m for m in models if set(wanted) <= set(m.get("supported_parameters", []))]
    outputs = rec.query.get("output_modalities", "text")
    if outputs != "all":
        kinds = set(outputs.split(","))
        models = [
            m
            for m in models
            if kinds & set(m.get("architecture", {}).get("output_modalities", ["text"]))
        ]
    style = fake.models_style or ("openrouter" if fake.persona == "openrouter" else "generic")
    if style == "generic":
        data = [
            {
                "id": m["id"],
                "object": "model",
                "created": m.get("created", 0),
                "owned_by": "fake",
            }
            for m in models
        ]
        send_json(h, 200, {"object": "list", "data": data})
        return
    body = {"data": models, "total_count": len(models), "links": {"next": None}}
    send_json(h, 200, body, {"Cache-Control": "public, max-age=300"})


def generation(fake: FakeOpenRouter, h: Handler, rec: Recorded) -> None:
    if not fake.side_auth(h, rec):
        return
    gen_id = rec.query.get("id", "")
    data, polls = fake.poll_generation(gen_id)
    if data is None or polls < fake.generation_404_polls:
        message = f"Generation {gen_id} not found" if gen_id else "Missing generation id"
        fake.send_error(h, 404 if gen_id else 400, message)
        return
    send_json(h, 200, {"data": data})


def key(fake: FakeOpenRouter, h: Handler, rec: Recorded) -> None:
    if not fake.side_auth(h, rec):
        return
    spent = fake.spent
    limit = fake.key_limit
    data = {
        "label": fake.key_label,
        "limit": limit,
        "limit_remaining": None if limit is None else round(limit - spent, 10),
        "limit_reset": None,
        "include_byok_in_limit": False,
        "usage": spent,
        "usage_daily": spent,
        "usage_weekly": spent,
        "usage_monthly": spent,
        "byok_usage": 0,
        "byok_usage_daily": 0,
        "byok_usage_weekly": 0,
        "byok_usage_monthly": 0,
        "is_free_tier": False,
        "is_management_key": fake.management_key,
        "is_provisioning_key": fake.management_key,
        "creator_user_id": USER_ID,
        "expires_at": None,
        "rate_limit": {"requests": -1, "interval": "10s", "note": "deprecated; ignore"},
    }
    send_json(h, 200, {"data": data})


def credits(fake: FakeOpenRouter, h: Handler, rec: Recorded) -> None:
    if not fake.side_auth(h, rec):
        return
    if not fake.management_key:
        fake.send_error(h, 403, "Only management keys can perform this operation")
        return
    send_json(h, 200, {"data": {"total_credits": fake.credits_total, "total_usage": fake.spent}})
