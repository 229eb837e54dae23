"""Destinations: the operations the admin API and the dashboard call (create, change, delete,
test, rotate, connect Strava).

Secrets are validated here, encrypted with the service's key, and never returned: responses
show :func:`~service.destinations.kinds_api.mask` of them.
"""

from __future__ import annotations

import hashlib
import secrets as random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from service.auth.models import Role
from service.auth.repository import ApiKeyRepository
from service.db import autocommit_session
from service.destinations import checks, kinds_api
from service.destinations.kinds import strava, webhook
from service.destinations.kinds.base import (
    REAUTHORIZATION_REASON,
    Delivered,
    DeliveryError,
    NeedsReauthorization,
)
from service.destinations.kinds.registry import build_handler, spec_for
from service.destinations.kinds.spec import decrypted_secrets
from service.destinations.kinds.strava_app import StravaApp, revoke_access, strava_app
from service.destinations.kinds.strava_oauth import ATHLETE_LIMIT, check_granted_scope
from service.destinations.kinds.strava_state import (
    STATE_MAX_AGE_S,
    InvalidOAuthState,
    OAuthStateSigner,
)
from service.destinations.kinds.webhook import WebhookConfig, generate_secret, rotate
from service.destinations.models import Destination, OAuthState
from service.destinations.repository import DestinationRepository, OAuthStateRepository
from service.errors import ExternalServiceError, InvalidInput, NotFound
from service.runtime import Runtime

log = structlog.get_logger(__name__)

DEFAULT_FORMATS = ["fit"]
STATE_PURPOSE = "pelosync strava oauth state"
#: How a destination parked by a refused grant is disabled (``deliveries.retry.decide_attempt``):
#: the one disabled state a new Strava authorization lifts.
#: Where an athlete sees (and removes) the applications connected to their Strava account.
STRAVA_APPS_PAGE = "https://www.strava.com/settings/apps"


async def get(session: AsyncSession, destination_id: int) -> Destination:
    destination = await DestinationRepository(session).get(destination_id)
    if destination is None:
        raise NotFound(f"destination {destination_id} not found")
    return destination


async def page(session: AsyncSession, *, after_id: int | None, limit: int) -> list[Destination]:
    """Up to ``limit + 1`` destinations after ``after_id``."""
    return await DestinationRepository(session).page(after_id=after_id, limit=limit + 1)


def masked_secrets(
    runtime: Runtime, destination: Destination, *, show_tail: bool = True
) -> dict[str, Any]:
    """The destination's secrets masked (:func:`kinds_api.mask`); ``show_tail`` only for
    admin keys."""
    secrets = decrypted_secrets(runtime, destination)
    masked: dict[str, Any] = kinds_api.mask(secrets, show_tail=show_tail)
    return masked


async def _prepared_secrets(
    runtime: Runtime, kind: str, given: dict[str, Any]
) -> dict[str, Any] | None:
    """The kind's ``prepare_secrets`` of what the user gave (a Garmin service ticket traded for
    tokens), or None when it had nothing to turn. Callers hold no transaction open: it may call
    the service."""
    prepare = spec_for(kind).prepare_secrets
    if prepare is None or not given:
        return None
    return await prepare(runtime, given)


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
    prepared = await _prepared_secrets(runtime, kind, given)  # before the first query
    given = given if prepared is None else prepared
    config, hidden, generated = kinds_api.validate(kind, values.get("config") or {}, given)
    await checks.check_config(runtime.settings, kind, config)
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
    reauthorized = False
    if changes.get("secrets"):
        # The kind may call its service to prepare the secrets (Garmin trades a ticket): before
        # the request's session starts its transaction.
        async with autocommit_session(runtime.sessions) as lookup:
            kind = (await get(lookup, destination_id)).kind
        kinds_api.check_user_secrets(kind, changes["secrets"])
        prepared = await _prepared_secrets(runtime, kind, changes["secrets"])
        if prepared is not None:
            changes, reauthorized = {**changes, "secrets": prepared}, True
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
        await checks.check_config(runtime.settings, kind, config)
        destination.config = config
        _store_secrets(runtime, destination, hidden)
        if reauthorized:
            _lift_reauthorization(destination)
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


def _lift_reauthorization(destination: Destination) -> None:
    """New credentials enable a destination parked because its old ones were refused (one an
    admin disabled stays disabled); its waiting deliveries resume."""
    if not destination.enabled and (destination.disabled_reason or "").startswith(
        REAUTHORIZATION_REASON
    ):
        destination.enabled = True
        destination.disabled_reason = None
    destination.failing_since = None


@dataclass(frozen=True)
class Revocation:
    """What is needed to revoke a deleted Strava destination's access (held in memory only,
    from before its row was deleted): run :func:`revoke` once the deletion is committed."""

    destination_id: int
    name: str
    app: StravaApp
    secrets: dict[str, Any] = field(repr=False)


async def delete(runtime: Runtime, session: AsyncSession, destination_id: int) -> Revocation | None:
    """Delete the destination; the database cascades to its deliveries and their attempts.

    A connected Strava destination also gets its access revoked on Strava: the caller runs the
    returned :class:`Revocation` with :func:`revoke` after the commit, outside any transaction,
    and the deletion never waits for Strava or depends on it."""
    destination = await get(session, destination_id)
    revocation = None
    if destination.kind == strava.KIND:
        secrets = decrypted_secrets(runtime, destination)
        if secrets.get("refresh_token"):
            try:
                app = strava_app(runtime, destination, secrets)
            except InvalidInput:  # no application any more: nothing can revoke it
                log.warning("destinations.strava_not_revoked", destination_id=destination_id)
            else:
                revocation = Revocation(destination.id, destination.name, app, secrets)
    await DestinationRepository(session).delete(destination)
    return revocation


async def revoke(runtime: Runtime, revocation: Revocation) -> str:
    """Revoke a deleted Strava destination's access (after its deletion was committed); what
    happened, in words, also logged. Never raises: Strava being unreachable is logged with
    what the athlete can do instead."""
    try:
        outcome = await revoke_access(revocation.app, revocation.secrets, clock=runtime.clock)
    except DeliveryError as exc:
        log.warning(
            "destinations.strava_revoke_failed",
            destination_id=revocation.destination_id,
            error=exc.message,
        )
        return (
            f"Strava could not revoke {revocation.name}'s access ({exc.message}); the athlete "
            f"can remove it at {STRAVA_APPS_PAGE}"
        )
    log.info(
        "destinations.strava_revoked", destination_id=revocation.destination_id, outcome=outcome
    )
    return f"{revocation.name}: {outcome}"


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
    if destination.kind != webhook.KIND:
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
    runtime: Runtime,
    session: AsyncSession,
    destination_id: int,
    redirect_uri: str,
    *,
    api_key_id: int,
) -> str:
    """Where to send the user to connect a Strava destination. Callers must have checked
    that ``api_key_id`` is an admin key. The ``state`` is signed, carries a nonce stored
    here (single-use, 10 minutes) and is bound to the key that started it."""
    destination = await get(session, destination_id)
    if destination.kind != strava.KIND:
        raise InvalidInput(f"destination {destination_id} is a {destination.kind}, not strava")
    nonce = random.token_urlsafe(24)
    now = runtime.clock()
    await OAuthStateRepository(session).add(
        OAuthState(
            nonce_hash=_nonce_hash(nonce),
            destination_id=destination.id,
            api_key_id=api_key_id,
            expires_at=now + timedelta(seconds=STATE_MAX_AGE_S),
            created_at=now,
        )
    )
    state = _signer(runtime).sign(
        {"destination_id": destination.id, "nonce": nonce, "key_id": api_key_id}
    )
    return strava_app(runtime, destination).oauth.authorize_url(redirect_uri, state)


def _nonce_hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode()).hexdigest()


async def _consume_state(runtime: Runtime, state: str, now: datetime) -> tuple[int, int]:
    """Check ``state``'s signature, then use it up: (destination id, id of the key that
    started it). Used up in a transaction of its own, so a callback that fails later (a
    refused code, a missing scope) does not leave it usable again."""
    data = _signer(runtime).verify(state)
    destination_id, nonce, key_id = (data.get(k) for k in ("destination_id", "nonce", "key_id"))
    if not isinstance(destination_id, int) or not isinstance(nonce, str):
        raise InvalidInput("state: not a Strava connection state")
    async with autocommit_session(runtime.sessions) as states:
        stored = await OAuthStateRepository(states).consume(_nonce_hash(nonce), now)
    if stored is None or stored != (destination_id, key_id):
        raise InvalidOAuthState(
            "state: this Strava authorization was used already or has expired; "
            "start the authorization again"
        )
    return stored


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
    """Finish the connection: use up the state, check the key that started it is still an
    admin key, check the scope, trade the code for tokens and store them. A destination parked
    for re-authorization is enabled again; one an admin disabled stays disabled.
    (destination, athlete id, granted scope)."""
    destination_id, key_id = await _consume_state(runtime, state, now)
    starter = await ApiKeyRepository(session).get(key_id)
    if starter is None or starter.revoked_at is not None or starter.role != Role.ADMIN:
        raise InvalidOAuthState(
            "state: the API key that started this Strava authorization is no longer an "
            "active admin key; start the authorization again"
        )
    destination = await get(session, destination_id)
    if destination.kind != strava.KIND:
        raise InvalidInput(f"destination {destination_id} is not a strava destination")
    if error:
        raise InvalidInput(f"Strava authorization was not granted: {error[:100]}")
    if not code:
        raise InvalidInput("code: missing from the Strava callback")
    check_granted_scope(scope)
    try:
        tokens = await strava_app(runtime, destination).oauth.exchange_code(code)
    except NeedsReauthorization as exc:
        if exc.message == ATHLETE_LIMIT:
            raise InvalidInput(ATHLETE_LIMIT) from None
        raise InvalidInput(f"code: Strava refused it ({exc.message}); connect again") from None
    except DeliveryError as exc:
        raise ExternalServiceError(f"Strava could not be reached: {exc.message}") from None
    # The destination's own application credentials stay; the tokens replace the old ones.
    own_app = {
        k: v for k, v in decrypted_secrets(runtime, destination).items() if k == "client_secret"
    }
    _store_secrets(runtime, destination, {**own_app, **tokens.as_secrets()})
    _lift_reauthorization(destination)
    destination.updated_at = now
    await session.flush()
    log.info("destinations.strava_connected", destination_id=destination.id, key_id=key_id)
    return destination, tokens.athlete_id, tokens.scope or scope
