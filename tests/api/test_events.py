"""``/v1/events`` and the webhooks' ``events`` setting through the API, and each event type's
request documented in the OpenAPI document."""

from __future__ import annotations

import httpx

from service.app import create_app
from service.destinations.models import Destination
from service.events import service as events
from service.events.models import EventType
from service.peloton.sandbox import SandboxState
from service.runtime import Runtime
from tests.api.conftest import Keys, bearer

Api = tuple[httpx.AsyncClient, Keys, Runtime, SandboxState]


async def test_a_webhook_subscribes_through_the_api_and_the_events_are_listed(api: Api) -> None:
    client, keys, runtime, _ = api
    admin = bearer(keys.admin)
    created = await client.post(
        "/v1/destinations",
        json={
            "name": "ops",
            "kind": "webhook",
            "config": {"url": "https://hooks.example.com/ops", "events": ["delivery.failed"]},
        },
        headers=admin,
    )
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["config"]["events"] == ["delivery.failed"]
    # Unset, a webhook gets workout.synced as before; an unknown type is refused by name.
    plain = await client.post(
        "/v1/destinations",
        json={"name": "p", "kind": "webhook", "config": {"url": "https://a.example.com/h"}},
        headers=admin,
    )
    assert plain.json()["config"]["events"] == ["workout.synced"]
    bad = await client.patch(
        f"/v1/destinations/{hook['id']}",
        json={"config": {"events": ["workout.deleted"]}},
        headers=admin,
    )
    assert bad.status_code == 422 and "events" in bad.text
    changed = await client.patch(
        f"/v1/destinations/{hook['id']}",
        json={"config": {"events": ["destination.disabled", "delivery.failed"]}},
        headers=admin,
    )
    assert changed.json()["config"]["events"] == ["destination.disabled", "delivery.failed"]

    async with runtime.sessions() as session, session.begin():
        for name in ("a", "b", "c"):
            row = Destination(name=name, kind="directory", config={}, formats=["tcx"])
            session.add(row)
            await session.flush()
            await events.destination_disabled(session, row, "gone: x", now=runtime.clock())
    listed = await client.get("/v1/events?limit=2", headers=bearer(keys.read_only))
    assert listed.status_code == 200, listed.text
    page = listed.json()
    assert [e["payload"]["destination"]["name"] for e in page["items"]] == ["c", "b"]
    first = page["items"][0]
    assert first["type"] == "destination.disabled" and first["resolved_at"] is None
    assert [d["destination_id"] for d in first["deliveries"]] == [hook["id"]]
    assert first["deliveries"][0]["state"] == "pending"
    rest = await client.get(f"/v1/events?limit=2&cursor={page['next_cursor']}", headers=admin)
    assert [e["payload"]["destination"]["name"] for e in rest.json()["items"]] == ["a"]
    assert rest.json()["next_cursor"] is None
    none = await client.get("/v1/events?type=delivery.failed", headers=admin)
    assert none.json()["items"] == []
    one = await client.get(f"/v1/events/{first['id']}", headers=admin)
    assert one.json() == first
    assert (await client.get("/v1/events/999", headers=admin)).status_code == 404
    assert (await client.get("/v1/events?type=nope", headers=admin)).status_code == 422
    assert (await client.get("/v1/events")).status_code == 401


def test_every_event_type_is_documented_as_a_webhook() -> None:
    schema = create_app(migrate=False, scheduler=False).openapi()
    hooks = schema["webhooks"]
    assert set(hooks) == {t.value for t in EventType}
    components = schema["components"]["schemas"]
    for event_type, item in hooks.items():
        body = item["post"]["requestBody"]["content"]["application/json"]["schema"]
        envelope = components[body["$ref"].rsplit("/", 1)[1]]
        assert envelope["properties"]["type"]["const"] == event_type
        assert set(envelope["required"]) == {"type", "timestamp", "data"}
    failed = components["DeliveryFailedData"]["properties"]
    assert set(failed) == {"occurred_at", "delivery", "workout", "account", "destination"}
