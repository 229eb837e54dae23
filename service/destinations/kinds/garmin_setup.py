"""Setting up a Garmin destination: its config and secrets models, what the user gives instead
of tokens, how long the sign-in lasts, and its dashboard form.

A destination's secrets may be given as a ``service_ticket`` (traded for tokens at the DI token
URL, :meth:`.garmin_auth.DiAuth.exchange_ticket`) or a ``token_file`` (python-garminconnect's
``garmin_tokens.json``, :func:`parse_token_file`); :func:`tokens_from_user` turns either into the
secrets to store (neither is ever stored). :func:`sign_in_expiry` says when the refresh token
ends, for the destination's page (a warning from :data:`WARN_DAYS` days before).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.destinations.kinds.base import DeliveryError, NeedsReauthorization
from service.destinations.kinds.garmin_auth import DiAuth, DiTokens, claim_int, jwt_claims
from service.destinations.kinds.garmin_devices import AUTO, CHOICES, check_choice
from service.destinations.kinds.spec import TOKEN_PATTERN, CredentialsNote, FormField
from service.errors import ExternalServiceError, InvalidInput

if TYPE_CHECKING:
    from service.runtime import Runtime

#: The user agent pelosync stored by default before it sent Android's: an iOS agent with an
#: Android client id, which no working tool sends. Read as "the default" (None).
_OLD_DEFAULT_USER_AGENT = "GCM-iOS-5.7.2.1"


class GarminConfig(BaseModel):
    """A Garmin Connect destination's settings (no secrets)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The device the FIT files claim (:data:`.garmin_devices.CHOICES`): ``auto`` picks one per
    #: discipline so Garmin credits Training Effect and VO2 max; ``none`` claims no device.
    device: str = Field(default=AUTO, max_length=40)
    #: Overrides Garmin Connect Mobile's ``User-Agent`` (None: Android's, matching the client id).
    user_agent: str | None = Field(default=None, min_length=1, max_length=200)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        return check_choice(value)

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str | None) -> str | None:
        return None if value == _OLD_DEFAULT_USER_AGENT else value


class GarminSecrets(BaseModel):
    """The secrets a user sets. ``service_ticket`` and ``token_file`` are turned into the tokens
    (:func:`prepare_secrets`) before this is checked, and never stored."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    service_ticket: str | None = Field(default=None, max_length=2000)
    token_file: str | None = Field(default=None, max_length=64 * 1024)
    access_token: str | None = Field(
        default=None,
        min_length=1,
        max_length=8192,
        pattern=TOKEN_PATTERN,
        validate_default=True,
    )
    refresh_token: str | None = Field(
        default=None, min_length=1, max_length=8192, pattern=TOKEN_PATTERN
    )
    client_id: str | None = Field(default=None, min_length=1, max_length=200, pattern=TOKEN_PATTERN)
    expires_at: int | None = Field(default=None, ge=0, le=2**40)
    refresh_token_expires_at: int | None = Field(default=None, ge=0, le=2**40)

    @field_validator("access_token")
    @classmethod
    def _required(cls, value: str | None) -> str | None:
        if value is None:
            raise ValueError(
                "give a service_ticket (from Garmin's sign-in in a browser), a token_file "
                "(python-garminconnect's garmin_tokens.json) or an access_token"
            )
        return value


#: What a token file is named in errors, and where to get a good one.
_FIELD = "secrets.token_file"
_LOGIN_AGAIN = (
    "sign in again with python-garminconnect 0.3 or later (with prompt_mfa if the account has "
    "two-step verification, see docs/destinations.md), or give a service_ticket instead"
)


def _refuse(message: str) -> InvalidInput:
    return InvalidInput(f"{_FIELD}: {message}", field=_FIELD)


def parse_token_file(text: str) -> DiTokens:
    """The tokens of a pasted ``garmin_tokens.json`` (python-garminconnect's ``Client.dumps``:
    ``{"di_token", "di_refresh_token", "di_client_id"}``), or :class:`InvalidInput` naming what
    is wrong with it. Token values never appear in the messages."""
    try:
        data = json.loads(text)
    except ValueError:
        raise _refuse(
            "not JSON; paste the whole content of garmin_tokens.json (it starts with {)"
        ) from None
    if isinstance(data, list):
        # garth (and python-garminconnect before 0.3) saved [oauth1_token, oauth2_token].
        raise _refuse(
            "this is a garth token file (python-garminconnect before 0.3), whose tokens Garmin "
            f"no longer takes; {_LOGIN_AGAIN}"
        )
    if not isinstance(data, dict):
        raise _refuse("not a JSON object; paste the whole content of garmin_tokens.json")
    access = data.get("di_token")
    if not isinstance(access, str) or not access.strip():
        if data.get("jwt_web"):
            why = "it holds only a jwt_web browser cookie"
        else:
            why = "its di_token is empty"
        raise _refuse(
            f"no di_token: this file came from the cookie login fallback ({why}), which "
            f"pelosync cannot upload with; {_LOGIN_AGAIN}"
        )
    refresh = data.get("di_refresh_token")
    if not isinstance(refresh, str) or not refresh.strip():
        raise _refuse(
            "no di_refresh_token: without it the access token stops working within a day; "
            + _LOGIN_AGAIN
        )
    client = data.get("di_client_id")
    claimed = jwt_claims(access).get("client_id")
    client_id = client if isinstance(client, str) and client.strip() else claimed
    if not isinstance(client_id, str) or not client_id:
        raise _refuse("no di_client_id, and the di_token does not name its client; " + _LOGIN_AGAIN)
    return DiTokens(
        access_token=access.strip(),
        refresh_token=refresh.strip(),
        client_id=client_id.strip(),
        expires_at=claim_int(access, "exp"),
        refresh_token_expires_at=claim_int(refresh, "exp"),
    )


#: The secrets a user gives instead of tokens; they are never stored.
BRINGS_TOKENS = ("service_ticket", "token_file")
_TOKEN_KEYS = (
    "access_token",
    "refresh_token",
    "client_id",
    "expires_at",
    "refresh_token_expires_at",
)
_TICKET_MAX = 2000
_TOKEN_FILE_MAX = 64 * 1024


def brings_tokens(given: Mapping[str, Any]) -> bool:
    """Whether ``given`` secrets hold a service ticket or a token file to turn into tokens."""
    return any(given.get(key) is not None for key in BRINGS_TOKENS)


async def tokens_from_user(auth: DiAuth, given: Mapping[str, Any]) -> dict[str, Any]:
    """The secrets to store for what a user gave: a ``service_ticket`` is traded for tokens (a
    network call: never inside a database transaction), a ``token_file`` read; other secrets are
    kept as given. None values remove stored ones (an expiry Garmin did not give)."""
    ticket, text = (given.get(key) for key in BRINGS_TOKENS)
    rest = {k: v for k, v in given.items() if k not in BRINGS_TOKENS}
    if ticket is None and text is None:
        return rest
    if ticket is not None and text is not None:
        raise InvalidInput(
            "secrets: give a service_ticket or a token_file, not both", field="secrets"
        )
    for key in _TOKEN_KEYS:
        if rest.get(key) is not None:
            raise InvalidInput(
                f"secrets.{key}: a service_ticket or token_file brings its own tokens; leave "
                f"{key} out",
                field=f"secrets.{key}",
            )
    if text is not None:
        if isinstance(text, dict):  # the API may be sent the file's JSON object itself
            text = json.dumps(text)
        if not isinstance(text, str) or len(text) > _TOKEN_FILE_MAX:
            raise _refuse(
                f"paste the content of garmin_tokens.json (at most {_TOKEN_FILE_MAX} bytes)"
            )
        return {**rest, **parse_token_file(text).as_secrets()}
    return {**rest, **(await _exchange(auth, ticket)).as_secrets()}


async def _exchange(auth: DiAuth, ticket: object) -> DiTokens:
    field = "secrets.service_ticket"
    if (
        not isinstance(ticket, str)
        or not ticket.strip().startswith("ST-")
        or len(ticket) > _TICKET_MAX
        or not ticket.strip().isascii()
        or any(c.isspace() for c in ticket.strip())
    ):
        raise InvalidInput(
            f"{field}: a service ticket starts with ST- (copy the value of serviceTicketId, "
            "without the quotes)",
            field=field,
        )
    try:
        return await auth.exchange_ticket(ticket.strip())
    except NeedsReauthorization as exc:
        raise InvalidInput(f"{field}: {exc.message}", field=field) from None
    except DeliveryError as exc:
        raise ExternalServiceError(
            f"Garmin could not trade the service ticket: {exc.message}; try again with a new one"
        ) from None


#: The destination's page warns this many days before the sign-in ends.
WARN_DAYS = 7


@dataclass(frozen=True)
class SignInExpiry:
    """When a Garmin destination's refresh token ends."""

    at: datetime
    days_left: int  # whole days, 0 on the last day, negative once ended

    @property
    def ended(self) -> bool:
        return self.days_left < 0

    @property
    def warning(self) -> bool:
        """Within :data:`WARN_DAYS` days of the end (or past it)."""
        return self.days_left < WARN_DAYS


def sign_in_expiry(secrets: Mapping[str, Any], now: datetime) -> SignInExpiry | None:
    """When the sign-in behind these (stored, or masked: the expiry is not masked) secrets ends;
    None when Garmin has not said yet (a token file's opaque refresh token, until its first
    refresh)."""
    value = secrets.get("refresh_token_expires_at")
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None
    at = datetime.fromtimestamp(value, UTC)
    seconds = (at - now).total_seconds()
    return SignInExpiry(at, int(seconds // 86400))


# --- the registry's hooks and the dashboard form ------------------------------------------------


async def prepare_secrets(runtime: Runtime, given: Mapping[str, Any]) -> dict[str, Any] | None:
    """The spec's ``prepare_secrets``: a service ticket or token file as tokens (None: neither
    was given, nothing to do)."""
    if not brings_tokens(given):
        return None
    auth = DiAuth.from_settings(runtime.http, runtime.settings, clock=runtime.clock)
    return await tokens_from_user(auth, given)


def credentials_note(secrets: Mapping[str, Any], now: datetime) -> CredentialsNote | None:
    """The spec's ``credentials_note``: when the Garmin sign-in ends, a warning in its last
    week."""
    expiry = sign_in_expiry(secrets, now)
    if expiry is None:
        if secrets.get("access_token") is None:
            return None
        return CredentialsNote(
            "Garmin sign-in: its end is not known yet (Garmin says at the first token refresh)",
            warning=False,
        )
    day = expiry.at.strftime("%Y-%m-%d %H:%M UTC")
    if expiry.ended:
        text = (
            f"Garmin sign-in ended on {day}: "
            "give the destination a new service ticket or token file"
        )
    elif expiry.warning:
        days = "less than a day" if expiry.days_left == 0 else f"{expiry.days_left} days"
        text = (
            f"Garmin sign-in expires in {days} ({day}): "
            "give it a new service ticket or token file soon"
        )
    else:
        text = f"Garmin sign-in valid until {day}"
    return CredentialsNote(text, warning=expiry.warning)


#: The set-up guide (docs/destinations.md), linked from the form.
GUIDE = "https://github.com/pelosync/pelosync/blob/main/docs/destinations.md#garmin-connect-experimental"
CONFIG_DOC = (
    f"`device` (the device its FIT files claim: {', '.join(f'`{c}`' for c in CHOICES)}), "
    "`user_agent`"
)
SECRETS_DOC = (
    "`service_ticket` (ST-…, traded for tokens when saved) or `token_file` "
    "(python-garminconnect's garmin_tokens.json), or `access_token`, `refresh_token`, "
    "`client_id`; shown back: the tokens masked, with `expires_at` and "
    "`refresh_token_expires_at`"
)
#: The device choices as the form names them (the stored value is the key).
DEVICE_TITLES = {
    "auto": "auto (one per discipline)",
    "tacx_training_app_win": "Tacx Training App",
    "epix_gen2": "Epix (Gen 2)",
    "fr945": "Forerunner 945",
    "none": "none (pelosync's own)",
}
FORM_FIELDS = (
    FormField(
        "service_ticket",
        "Service ticket",
        input="password",
        secret=True,
        placeholder="ST-…",
        help=(
            "Sign in at Garmin's mobile sign-in page with the browser's developer tools open and "
            "copy serviceTicketId from the mobile/api/login answer; it lasts about a minute. Or "
            "paste a token file below."
        ),
        help_link=GUIDE,
    ),
    FormField(
        "token_file",
        "Token file",
        input="textarea",
        secret=True,
        placeholder='{"di_token": "…", "di_refresh_token": "…", "di_client_id": "…"}',
        help="The content of garmin_tokens.json from python-garminconnect 0.3 or later.",
        help_link=GUIDE,
    ),
    FormField(
        "device",
        "Device the files claim",
        input="select",
        choices=tuple((choice, DEVICE_TITLES.get(choice, choice)) for choice in CHOICES),
        help=(
            "auto: Tacx Training App for rides, Epix (Gen 2) for rows, Forerunner 945 for the "
            "rest, so Garmin credits Training Effect and VO2 max; none: pelosync's own."
        ),
    ),
)
FORM_NOTE = (
    "Give a service ticket or a token file. Garmin's sign-in lasts about 30 days; this page "
    "warns a week before, and a new service ticket renews it."
)
