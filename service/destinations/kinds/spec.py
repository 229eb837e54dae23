"""What a destination kind is to the rest of the service: one :class:`KindSpec` per kind.

Each kind module (``webhook.py``, ``strava.py``...) defines its ``SPEC``; :mod:`.registry` lists
them. The admin API (``kinds_api``, ``destinations.service``), the engine
(``registry.build_handler``, ``fit_device``) and the dashboard (the destination form) read the
spec and nothing else, so a new kind is its module plus one line in the registry.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from pydantic import BaseModel, ValidationError

from service.errors import InvalidInput, validation_problems

if TYPE_CHECKING:
    from service.config import Settings
    from service.convert.fit import FitDevice
    from service.destinations.kinds.base import DestinationKindHandler
    from service.destinations.models import Destination
    from service.runtime import Runtime

M = TypeVar("M", bound=BaseModel)

ALL_FORMATS = ("tcx", "gpx", "fit", "json")
#: What upload services take (no JSON).
SERVICE_FORMATS = ("fit", "tcx", "gpx")
#: How a credential sent in an HTTP header is checked: visible ASCII only.
TOKEN_PATTERN = r"^[\x21-\x7e]+$"


class Validated(NamedTuple):
    """A kind's settings as stored: public ``config``, ``secrets`` to encrypt, and a secret
    pelosync generated (shown once), if it did."""

    config: dict[str, Any]
    secrets: dict[str, Any]
    generated: str | None = None


@dataclass(frozen=True)
class FormField:
    """One input of the dashboard's destination form, rendered by ``destination.html``.

    A config field's blank input is null (on an edit: the stored value is removed, the default
    applies), unless ``blank_keeps``; a secret's blank input is always left out (kept).
    """

    name: str  # the config or secret key, and the input's name
    label: str
    input: Literal["text", "url", "number", "password", "textarea", "select", "choices"] = "text"
    secret: bool = False  # goes in ``secrets``; never shown back
    required: bool = False  # for secrets: on the add form only
    placeholder: str = ""  # a secret's placeholder on the edit form is about keeping it
    help: str = ""
    minimum: int | None = None  # number inputs
    error_label: str = ""  # how a bad whole number is named in the error ("inline limit")
    blank_keeps: bool = False
    #: ``choices`` inputs (a list setting, one box per value) and ``select`` inputs (one value):
    #: ``(value, title)`` pairs, and the values ticked (selected) when the setting is unset (a
    #: select without one selects its first).
    choices: tuple[tuple[str, str], ...] = ()
    default: tuple[str, ...] = ()
    help_link: str = ""  # a guide to the value, linked after the help ("how to get one")

    def placeholder_for(self, editing: bool) -> str:
        if self.secret and editing:
            return "leave blank to keep the current one"
        return self.placeholder


@dataclass(frozen=True)
class CredentialsNote:
    """A line about a destination's credentials on its page ("sign-in valid until ...")."""

    text: str
    warning: bool = False  # shown as a warning (they end soon, or have ended)


@dataclass(frozen=True)
class KindSpec:
    """Everything the service knows of one destination kind, besides its handler's code."""

    kind: str  # stored in ``destinations.kind``: never change it
    label: str  # "Garmin Connect"
    config_model: type[BaseModel]
    #: The handler of a stored row (config validated, secrets decrypted in memory).
    factory: Callable[[Runtime, Destination], DestinationKindHandler]
    formats: tuple[str, ...] = SERVICE_FORMATS
    #: The secrets a user may set (None: none). Other stored keys (rotated secrets, OAuth
    #: tokens) are the service's own bookkeeping and are kept as they are.
    secrets_model: type[BaseModel] | None = None
    #: Why user secrets are refused, instead of listing the known ones (Strava: connect).
    secrets_refused: str | None = None
    #: ``(config, secrets) -> Validated``, None values dropped already; None: the generic
    #: :func:`validate_generic` (config model, then the user secrets model).
    validate: Callable[[Mapping[str, Any], Mapping[str, Any]], Validated] | None = None
    #: What the API documentation says of its ``config`` and ``secrets`` (OpenAPI).
    config_doc: str = ""
    secrets_doc: str = ""
    form_fields: tuple[FormField, ...] = ()
    form_note: str = ""  # shown on the add form ("connect it after adding it")
    addable: bool = True  # whether the dashboard can add one (else the API only)
    #: Refuse a new destination of this kind on a service not set up for it.
    check_available: Callable[[Settings], None] | None = None
    #: What can be known to fail at create or edit time, refused then (validated config given).
    check_config: Callable[[Settings, Mapping[str, Any]], Awaitable[None]] | None = None
    #: The FIT device a destination's files should claim for a discipline (None: the default).
    fit_device: Callable[[Destination, str], FitDevice | None] | None = None
    #: Turns what a user gave into the secrets to store before they are checked (Garmin: a
    #: service ticket traded for tokens); None when there is nothing to turn. It may call the
    #: service, so it runs before the request's transaction begins. Credentials it made lift a
    #: parking for re-authorization.
    prepare_secrets: (
        Callable[[Runtime, Mapping[str, Any]], Awaitable[dict[str, Any] | None]] | None
    ) = None
    #: A line about the credentials for the destination's page, from its masked secrets.
    credentials_note: Callable[[Mapping[str, Any], datetime], CredentialsNote | None] | None = None

    @property
    def user_secrets(self) -> frozenset[str]:
        if self.secrets_model is None:
            return frozenset()
        return frozenset(self.secrets_model.model_fields)

    def validated(self, config: Mapping[str, Any], secrets: Mapping[str, Any]) -> Validated:
        """``config`` and ``secrets`` as to store, all checked; null values are dropped."""
        config = {k: v for k, v in config.items() if v is not None}
        secrets = {k: v for k, v in secrets.items() if v is not None}
        if self.validate is not None:
            return self.validate(config, secrets)
        return validate_generic(self, config, secrets)


def parse_input(model: type[M], data: Mapping[str, Any], where: str) -> M:
    """``data`` as ``model``, or :class:`InvalidInput` naming the field (``config.root``)."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        inner, message = validation_problems(exc)[0]
        field = f"{where}.{inner}" if inner else where
        raise InvalidInput(f"{field}: {message}", field=field) from None


def validate_generic(
    spec: KindSpec, config: Mapping[str, Any], secrets: Mapping[str, Any]
) -> Validated:
    public = parse_input(spec.config_model, config, "config").model_dump(mode="json")
    if spec.secrets_model is not None:
        user = {k: v for k, v in secrets.items() if k in spec.user_secrets}
        parse_input(spec.secrets_model, user, "secrets")
    return Validated(public, dict(secrets))


def stored_config(model: type[M], destination: Destination) -> M:
    """A stored row's config as ``model`` (checked when it was stored: an error here means the
    row was changed by hand or the model grew stricter)."""
    try:
        return model.model_validate(destination.config or {})
    except ValidationError as exc:
        where, message = validation_problems(exc)[0]
        raise InvalidInput(
            f"invalid {destination.kind} settings: {where or 'config'}: {message}"
        ) from None


def decrypted_secrets(runtime: Runtime, destination: Destination) -> dict[str, Any]:
    """A destination's secrets in clear, in memory only."""
    return runtime.secrets.decrypt_json(destination.secrets_encrypted)
