"""The registry of destination kinds drives the API, the dashboard and the engine: a kind
registered here, in one entry, is validated by the API, offered and rendered by the dashboard's
form, and built by the engine, without any other file knowing it."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import select

from service.convert.fit import FitDevice
from service.destinations.kinds import registry
from service.destinations.kinds.base import Delivered, DeliveryRequest
from service.destinations.kinds.registry import KINDS, build_handler, fit_device, spec_for
from service.destinations.kinds.spec import (
    FormField,
    KindSpec,
    decrypted_secrets,
    stored_config,
)
from service.destinations.models import Destination
from service.errors import InvalidInput
from service.runtime import Runtime
from tests.api.conftest import bearer
from tests.web.conftest import Site, fresh, page, sign_in
from tests.web.test_actions import follow

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
MEMO_DEVICE = FitDevice(manufacturer="development", product=7)


class MemoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: str = Field(pattern=r"^#[a-z]+$")
    copies: int = Field(default=1, ge=1, le=3)


class MemoSecrets(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token: str = Field(min_length=8)


@dataclass
class MemoHandler:
    config: MemoConfig
    token: str

    async def deliver(self, request: DeliveryRequest) -> Delivered:
        return Delivered(external_id=f"{self.config.channel}:{request.delivery_id}")

    async def ping(self) -> Delivered:
        return Delivered(response_excerpt=f"pinged {self.config.channel}")


def _memo(runtime: Runtime, destination: Destination) -> MemoHandler:
    secrets = decrypted_secrets(runtime, destination)
    return MemoHandler(stored_config(MemoConfig, destination), secrets["token"])


def _memo_device(destination: Destination, discipline: str) -> FitDevice | None:
    return MEMO_DEVICE if discipline == "cycling" else None


MEMO = KindSpec(
    kind="memo",
    label="Memo board",
    config_model=MemoConfig,
    factory=_memo,
    formats=("fit", "json"),
    secrets_model=MemoSecrets,
    fit_device=_memo_device,
    form_fields=(
        FormField("channel", "Channel", required=True, placeholder="#rides"),
        FormField("copies", "Copies", input="number", minimum=1, error_label="copies"),
        FormField("token", "Board token", input="password", secret=True, required=True),
    ),
    form_note="Memo boards keep every workout.",
)


@pytest.fixture
def memo(monkeypatch: pytest.MonkeyPatch) -> KindSpec:
    """The test kind, registered the way a real one is: one entry in the registry."""
    monkeypatch.setitem(KINDS, MEMO.kind, MEMO)
    return MEMO


async def _stored(site: Site, name: str) -> Destination:
    async with site.runtime.sessions() as session:
        found = list((await session.execute(select(Destination).filter_by(name=name))).scalars())
    assert len(found) == 1
    return found[0]


@SQLITE_ONLY
async def test_a_registered_kind_is_validated_by_the_api_and_built_by_the_engine(
    site: Site, memo: KindSpec
) -> None:
    client, admin = site.client, bearer(site.keys.admin)
    body: dict[str, Any] = {"name": "board", "kind": "memo", "config": {"channel": "#rides"}}
    refused = await client.post(
        "/v1/destinations", json={**body, "secrets": {"token": "short"}}, headers=admin
    )
    assert refused.status_code == 422 and "secrets.token" in refused.text
    unknown = await client.post(
        "/v1/destinations", json={**body, "secrets": {"pin": "12345678"}}, headers=admin
    )
    assert unknown.status_code == 422 and "not a memo secret (known: token)" in unknown.text
    wrong_format = await client.post(
        "/v1/destinations",
        json={**body, "secrets": {"token": "t0ken-123"}, "formats": ["gpx"]},
        headers=admin,
    )
    assert "memo destinations take fit, json, not gpx" in wrong_format.text
    bad_config = await client.post(
        "/v1/destinations",
        json={**body, "config": {"channel": "rides"}, "secrets": {"token": "t0ken-123"}},
        headers=admin,
    )
    assert bad_config.status_code == 422 and "config.channel" in bad_config.text

    created = await client.post(
        "/v1/destinations",
        json={**body, "secrets": {"token": "t0ken-123"}, "formats": ["json"]},
        headers=admin,
    )
    assert created.status_code == 201, created.text
    assert created.json()["config"] == {"channel": "#rides", "copies": 1}
    assert created.json()["secrets"] == {"token": "••••"}

    destination = await _stored(site, "board")
    handler = build_handler(site.runtime, destination)
    assert isinstance(handler, MemoHandler)
    assert handler.token == "t0ken-123" and handler.config.channel == "#rides"
    assert fit_device(destination, "cycling") == MEMO_DEVICE
    assert fit_device(destination, "yoga") is None
    tested = await client.post(f"/v1/destinations/{destination.id}/test", headers=admin)
    assert tested.json()["ok"] is True, tested.text


@SQLITE_ONLY
async def test_a_registered_kind_is_offered_and_rendered_by_the_dashboard(
    site: Site, memo: KindSpec
) -> None:
    client = site.client
    await sign_in(client, site.keys.admin)
    listing = page(await client.get("/destinations"))
    assert listing.xpath("//a[@href='/destinations/new?kind=memo']/text()") == ["Memo board"]

    new = page(await client.get("/destinations/new?kind=memo"))
    assert "New Memo board destination" in new.xpath("string(//h1)")
    assert new.xpath("//input[@name='channel']/@placeholder") == ["#rides"]
    assert len(new.xpath("//input[@name='channel'][@required]")) == 1
    assert len(new.xpath("//input[@name='token'][@required]")) == 1
    assert new.xpath("//input[@name='copies']/@type") == ["number"]
    assert new.xpath("//input[@name='token']/@type") == ["password"]
    assert new.xpath("//input[@name='formats']/@value") == ["fit", "json"]
    assert "Memo boards keep every workout." in new.text_content()

    form = {"kind": "memo", "name": "wall", "channel": "#rides", "copies": "2", "formats": "fit"}
    refused = await client.post(
        "/destinations", data={**form, "channel": "rides", "csrf": await fresh(client)}
    )
    assert refused.status_code == 422
    shown = page(refused)
    assert shown.xpath("string(//input[@name='channel']/@aria-invalid)") == "true"
    assert shown.xpath("string(//input[@name='channel']/@value)") == "rides"

    created = await client.post(
        "/destinations", data={**form, "token": "t0ken-123", "csrf": await fresh(client)}
    )
    detail = page(await follow(client, created))
    destination = await _stored(site, "wall")
    assert destination.kind == "memo" and destination.config == {"channel": "#rides", "copies": 2}
    assert decrypted_secrets(site.runtime, destination) == {"token": "t0ken-123"}
    # The edit form shows the settings, never the secret, and a blank secret keeps it.
    assert detail.xpath("//input[@name='copies']/@value") == ["2"]
    assert detail.xpath("//input[@name='token'][@required]") == []
    assert detail.xpath("//input[@name='token']/@value") == []
    edited = await client.post(
        f"/destinations/{destination.id}/edit",
        data={**form, "channel": "#runs", "copies": "", "csrf": await fresh(client)},
    )
    assert edited.status_code == 303, edited.text
    destination = await _stored(site, "wall")
    assert destination.config == {"channel": "#runs", "copies": 1}  # blank: the default
    assert decrypted_secrets(site.runtime, destination) == {"token": "t0ken-123"}


def test_an_unknown_kind_is_refused_by_name() -> None:
    with pytest.raises(InvalidInput) as caught:
        spec_for("ftp")
    assert caught.value.field == "kind"
    assert "unknown destination kind 'ftp'" in caught.value.message


def test_the_registry_is_one_entry_per_kind_module() -> None:
    assert list(KINDS) == ["webhook", "directory", "strava", "intervals", "runalyze", "garmin"]
    assert all(spec.kind == kind for kind, spec in registry.KINDS.items())
    # Stored in destinations.kind (String(20)) and taken by the dashboard's ?kind= (a-z).
    assert all(re.fullmatch(r"[a-z]{1,20}", kind) for kind in KINDS)


@pytest.mark.parametrize("spec", list(KINDS.values()), ids=list(KINDS))
def test_every_form_field_is_a_setting_or_a_user_secret_of_its_kind(spec: KindSpec) -> None:
    for field in spec.form_fields:
        model = spec.secrets_model if field.secret else spec.config_model
        assert model is not None and field.name in model.model_fields, (spec.kind, field.name)
    assert not (spec.addable and spec.secrets_model is not None and not spec.form_fields)


def _enum(schema: Mapping[str, Any]) -> list[str]:
    components = schema["components"]["schemas"]
    kind = components["DestinationCreate"]["properties"]["kind"]
    return list(kind.get("enum") or components[kind["$ref"].split("/")[-1]]["enum"])


@SQLITE_ONLY
async def test_the_openapi_kind_enum_is_the_registry(site: Site) -> None:
    schema = (await site.client.get("/openapi.json")).json()
    assert _enum(schema) == list(KINDS)
    refused = await site.client.post(
        "/v1/destinations",
        json={"name": "x", "kind": "ftp"},
        headers=bearer(site.keys.admin),
    )
    assert refused.status_code == 422
    assert "'strava', 'intervals', 'runalyze' or 'garmin'" in refused.text


@SQLITE_ONLY
async def test_process_wide_objects_are_made_once_per_runtime(site: Site) -> None:
    """The Strava app (shared rate limits) and the webhook handlers live in the runtime's
    typed singletons: one per runtime, made on first use."""
    from service.destinations.kinds.strava import StravaApp, strava_app
    from service.runtime import Singletons

    made: list[str] = []

    def make(channel: str) -> MemoConfig:
        made.append(channel)
        return MemoConfig(channel=channel)

    singletons = Singletons()
    first = singletons.get(MemoConfig, lambda: make("#a"))
    assert singletons.get(MemoConfig, lambda: make("#b")) is first
    assert first.channel == "#a" and made == ["#a"]

    site.runtime.settings.strava_client_id = "4242"
    site.runtime.settings.strava_client_secret = SecretStr("app-secret")
    app = strava_app(site.runtime)
    assert isinstance(app, StravaApp) and strava_app(site.runtime) is app
