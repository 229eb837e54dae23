"""A Runalyze destination through the admin API: the token checked and write-only, the formats
it takes, and ``test`` asking the loopback fake whether the token works."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.api.conftest import bearer
from tests.api.test_destination_checks import refused
from tests.api.test_destinations import Api, create
from tests.destinations.fakes.fake_runalyze import TOKEN, FakeRunalyze
from tests.support.servers import serve


@pytest.fixture
def fake(api: Api) -> Iterator[FakeRunalyze]:
    _, _, runtime, _ = api
    with serve("runalyze") as (url, switch):
        fake = FakeRunalyze()
        switch.app = fake.app()
        runtime.settings.runalyze_api_url = f"{url}/api/v1"
        yield fake


async def test_created_with_a_write_only_token_and_tested_against_runalyze(
    api: Api, fake: FakeRunalyze
) -> None:
    client, keys, _, _ = api
    admin = bearer(keys.admin)
    created = await create(
        client,
        keys.admin,
        name="Runalyze",
        kind="runalyze",
        formats=["fit", "tcx"],
        secrets={"token": TOKEN},
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["kind"] == "runalyze" and body["formats"] == ["fit", "tcx"]
    assert body["config"] == {"import_wait_s": 30.0}
    assert body["secrets"] == {"token": "••••" + TOKEN[-4:]}
    shown = (await client.get(f"/v1/destinations/{body['id']}", headers=admin)).text
    assert TOKEN not in shown

    tested = (await client.post(f"/v1/destinations/{body['id']}/test", headers=admin)).json()
    assert tested["ok"] is True, tested
    assert fake.tokens == [TOKEN] and fake.calls["GET /api/v1/ping"] == 1

    # A token Runalyze no longer takes: `test` says so, naming where to make a new one.
    changed = await client.patch(
        f"/v1/destinations/{body['id']}",
        json={"secrets": {"token": "revoked-token-0000"}},
        headers=admin,
    )
    assert changed.status_code == 200, changed.text
    tested = (await client.post(f"/v1/destinations/{body['id']}/test", headers=admin)).json()
    assert tested["ok"] is False and tested["status_code"] == 401
    assert "runalyze.com/settings/personal-api" in tested["error"]
    assert "revoked-token-0000" not in str(tested)


async def test_bad_tokens_settings_and_formats_are_refused(api: Api) -> None:
    client, keys, _, _ = api
    key = keys.admin
    refused(await create(client, key, name="r", kind="runalyze"), "secrets.token", "required")
    refused(
        await create(client, key, name="r", kind="runalyze", secrets={"token": "a b c d e f g"}),
        "secrets.token",
        "runalyze.com/settings/personal-api",
    )
    refused(
        await create(client, key, name="r", kind="runalyze", secrets={"token": TOKEN, "pw": "x"}),
        "secrets.pw",
        "not a runalyze secret (known: token)",
    )
    refused(
        await create(
            client,
            key,
            name="r",
            kind="runalyze",
            secrets={"token": TOKEN},
            config={"import_wait_s": 600},
        ),
        "config.import_wait_s",
    )
    for fmt in ("gpx", "json"):
        refused(
            await create(
                client, key, name="r", kind="runalyze", formats=[fmt], secrets={"token": TOKEN}
            ),
            "formats",
            f"take fit, tcx, not {fmt}",
        )
    listed = await client.get("/v1/destinations", headers=bearer(key))
    assert listed.json()["items"] == []
