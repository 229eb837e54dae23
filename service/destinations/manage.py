"""Destinations for the admin API: create, change, delete, test, rotate, connect Strava.

Secrets are validated here, encrypted with the service's key, and never returned: responses
show :func:`~service.destinations.kinds_api.mask` of them.
"""

from __future__ import annotations

import secrets as random
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from service.destinations import checks, kinds_api
from service.destinations.kinds.base import Delivered, DeliveryError, NeedsReauthorization
from service.destinations.kinds.strava_oauth import OAuthStateSigner, check_granted_scope
from service.destinations.kinds.webhook import WebhookConfig, generate_secret, rotate
from service.destinations.models import Destination, DestinationKind
from service.destinations.repository import DestinationRepository
from service.destinations.service import build_handler, decrypted_secrets, strava_app
from service.errors import ExternalServiceError, InvalidInput, NotFound
from service.runtime import Runtime

log = structlog.get_logger(__name__)

DEFAULT_FORMATS = ["fit"]
STATE_PURPOSE = "pelosync strava oauth state"


async def get(session: AsyncSession, destination_id: int) -> Destination:
    destination = await DestinationRepository(session).get(destination_id)
    if destination is None:
        raise NotFound(f"destination {destination_id} not found")
    return destination


async def page(session: AsyncSession, *, after_id: int | None, limit: int) -> list[Destination]:
    """Up to ``limit + 1`` destinations after ``after_id``."""
    return await DestinationRepository(session).page(after_id=after_id, limit=limit + 1)


def masked_secrets(runtime: Runtime, destination: Destination) -> dict[str, Any]:
    masked: dict[str, Any] = kinds_api.mask(decrypted_secrets(runtime, destination))
    return masked


def _store_secrets(runtime: Runtime, destination: Destination, values: dict[str, Any]) -> None:
    destination.secrets_encrypted = runtime.secrets.encrypt_json(values) if values else None


async def create(
    runtime: Runtime, session: AsyncSession, values: dict[str, Any]
) -> tuple[Destination, str | None]:
    """A new destination; also the webhook secret pelosync generated, if it did."""
    kind = values["kind"]
    checks.check_kind_available(runtime.settings, kind)
    given = values.get("secrets") or {}
    kinds_api.check_user_secrets(kind, given)
    formats = [str(f) for f in values.get("formats") or DEFAULT_FORMATS]
    kinds_api.check_formats(kind, formats)
    config, hidden, generated = kinds_api.validate(kind, values.get("config") or {}, given)
    await checks.check_reachable(runtime.settings, kind, config)
    destination = Destination(
        name=values["name"],
        kind=kind,
        config=config,
        formats=formats,
        account_ids=values.get("account_ids"),
        disciplines=values.get("disciplines"),
        enabled=values.get("enabled", True),
        concurrency=values.get("concurrency") or 4,
    )
    _store_secrets(runtime, destination, hidden)
    await DestinationRepository(session).add(destination)
    log.info("destinations.created", destination_id=destination.id, kind=kind)
    return destination, generated


async def update(
    runtime: Runtime, session: AsyncSession, destination_id: int, changes: dict[str, Any]
) -> Destination:
    """Apply the fields given; ``config`` and ``secrets`` merge key by key (null removes)."""
    destination = await get(session, destination_id)
    kind = destination.kind
    for name in ("name", "formats", "concurrency"):
        if name in changes and changes[name] is None:
            raise InvalidInput(f"{name}: may not be null", field=name)
    if "config" in changes or "secrets" in changes:
        patch = changes.get("secrets") or {}
        kinds_api.check_user_secrets(kind, patch)
        config = {**destination.config, **(changes.get("config") or {})}
        stored = decrypted_secrets(runtime, destination)
        config, hidden, _ = kinds_api.validate(kind, config, {**stored, **patch})
        await checks.check_reachable(runtime.settings, kind, config)
        destination.config = config
        _store_secrets(runtime, destination, hidden)
    if "formats" in changes:
        formats = [str(f) for f in changes["formats"]]
        kinds_api.check_formats(kind, formats)
        destination.formats = formats
    for name in ("name", "account_ids", "disciplines", "concurrency"):
        if name in changes:
            setattr(destination, name, changes[name])
    destination.updated_at = runtime.clock()
    await session.flush()
    return destination


async def delete(session: AsyncSession, destination_id: int) -> None:
    """Delete the destination; the database cascades to its deliveries and their attempts."""
    await DestinationRepository(session).delete(await get(session, destination_id))


async def set_enabled(
    runtime: Runtime, session: AsyncSession, destination_id: int, enabled: bool
) -> Destination:
    """Enabling clears the reason it was disabled and its failure streak: its pending
    deliveries resume. Disabling holds them (nothing is lost)."""
    destination = await get(session, destination_id)
    destination.enabled = enabled
    if enabled:
        destination.disabled_reason = None
        destination.failing_since = None
    else:
        destination.disabled_reason = "disabled through the API"
    destination.updated_at = runtime.clock()
    await session.flush()
    return destination


async def rotate_secret(
    runtime: Runtime, session: AsyncSession, destination_id: int, secret: str | None
) -> tuple[Destination, str | None]:
    """A new webhook signing secret; the old one keeps signing for 24 hours alongside it."""
    destination = await get(session, destination_id)
    if destination.kind != DestinationKind.WEBHOOK:
        raise InvalidInput(f"only webhook secrets rotate; update this {destination.kind}'s secrets")
    current = WebhookConfig.parse(destination.config, decrypted_secrets(runtime, destination))
    generated = None if secret else generate_secret()
    rotated = rotate(current, runtime.clock())
    try:
        rotated = WebhookConfig.model_validate(
            {**rotated.model_dump(), "secret": secret or generated}
        )
    except ValueError as exc:
        raise InvalidInput(f"secret: {str(exc).splitlines()[-1].strip()}") from None
    config, hidden = rotated.split()
    destination.config = config
    _store_secrets(runtime, destination, hidden)
    destination.updated_at = runtime.clock()
    await session.flush()
    log.info("destinations.secret_rotated", destination_id=destination.id)
    return destination, generated


def _persist_secrets(
    runtime: Runtime, destination: Destination, updated: dict[str, Any] | None
) -> None:
    # Tokens a kind refreshed while testing must be kept: the old ones may be dead now.
    if updated:
        merged = {**decrypted_secrets(runtime, destination), **updated}
        _store_secrets(runtime, destination, merged)


async def test(
    runtime: Runtime, session: AsyncSession, destination_id: int
) -> tuple[Delivered | None, DeliveryError | None]:
    """Send the kind's test event (webhook ``ping``, an auth check for services)."""
    destination = await get(session, destination_id)
    handler = build_handler(runtime, destination)
    try:
        result = await handler.ping()
    except DeliveryError as exc:
        _persist_secrets(runtime, destination, exc.updated_secrets)
        return None, exc
    _persist_secrets(runtime, destination, result.updated_secrets)
    return result, None


def _signer(runtime: Runtime) -> OAuthStateSigner:
    return OAuthStateSigner(runtime.secrets.derive_keys(STATE_PURPOSE)[0], clock=runtime.clock)


async def strava_authorize_url(
    runtime: Runtime, session: AsyncSession, destination_id: int, redirect_uri: str
) -> str:
    """Where to send the user to connect a Strava destination (state: signed, 10 minutes)."""
    destination = await get(session, destination_id)
    if destination.kind != DestinationKind.STRAVA:
        raise InvalidInput(f"destination {destination_id} is a {destination.kind}, not strava")
    state = _signer(runtime).sign({"destination_id": destination.id, "nonce": random.token_hex(8)})
    return strava_app(runtime).oauth.authorize_url(redirect_uri, state)


async def strava_connect(
    runtime: Runtime,
    session: AsyncSession,
    *,
    state: str,
    code: str | None,
    scope: str | None,
    error: str | None,
    now: datetime,
) -> tuple[Destination, int | None, str | None]:
    """Finish the connection: check the state and scope, trade the code for tokens, store
    them and enable the destination. (destination, athlete id, granted scope)."""
    data = _signer(runtime).verify(state)
    destination_id = data.get("destination_id")
    if not isinstance(destination_id, int):
        raise InvalidInput("state: not a Strava connection state")
    destination = await get(session, destination_id)
    if destination.kind != DestinationKind.STRAVA:
        raise InvalidInput(f"destination {destination_id} is not a strava destination")
    if error:
        raise InvalidInput(f"Strava authorization was not granted: {error[:100]}")
    if not code:
        raise InvalidInput("code: missing from the Strava callback")
    check_granted_scope(scope)
    try:
        tokens = await strava_app(runtime).oauth.exchange_code(code)
    except NeedsReauthorization as exc:
        raise InvalidInput(f"code: Strava refused it ({exc.message}); connect again") from None
    except DeliveryError as exc:
        raise ExternalServiceError(f"Strava could not be reached: {exc.message}") from None
    _store_secrets(runtime, destination, tokens.as_secrets())
    destination.enabled = True
    destination.disabled_reason = None
    destination.failing_since = None
    destination.updated_at = now
    await session.flush()
    log.info("destinations.strava_connected", destination_id=destination.id)
    return destination, tokens.athlete_id, tokens.scope or scope
