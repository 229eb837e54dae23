"""Dashboard forms into the values the domain services take, checked by the admin API's own
schemas (so a form accepts exactly what the API accepts), errors as :class:`InvalidInput`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from service.accounts.schemas import AccountUpdate, PelotonCredentials
from service.destinations.kinds.registry import spec_for
from service.destinations.schemas import DestinationCreate, DestinationUpdate
from service.errors import InvalidInput, validation_problems
from service.schemas import MAX_ID
from service.web.deps import Form

M = TypeVar("M", bound=BaseModel)

FIELD_NAMES = {
    "refresh_token": "refresh token",
    "poll_interval_s": "poll interval",
    "config.url": "URL",
    "config.root": "folder",
    "config.template": "file name template",
    "secrets.secret": "signing secret",
    "secrets": "API key",
    "secrets.api_key": "API key",
    "config.athlete_id": "athlete id",
    "config.inline_max_bytes": "largest file sent inline",
    "config.events": "events",
    "kind": "",  # the kind is the page's: its errors read as they are
}


def field_message(exc: InvalidInput) -> str:
    """An error about one field, named as the form labels it (``URL: ...``, not
    ``config.url: ...``)."""
    field, message = exc.field, exc.message
    if field and message.startswith(f"{field}: "):
        name = FIELD_NAMES.get(field, field.split(".")[-1].replace("_", " "))
        rest = message.removeprefix(f"{field}: ")
        return f"{name}: {rest}" if name else rest[:1].upper() + rest[1:]
    return message


def parse(model: type[M], values: dict[str, Any]) -> M:
    """``model`` from ``values``, or :class:`InvalidInput` naming the first bad field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        where, message = validation_problems(exc)[0]
        name = FIELD_NAMES.get(where, where.replace("_", " "))
        raise InvalidInput(f"{name}: {message}" if name else message, field=where) from None


def day(form: Form, name: str) -> datetime | None:
    """A ``<input type=date>`` as midnight UTC of that day."""
    text = form.get(name)
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"{name.replace('_', ' ')}: not a date (YYYY-MM-DD)") from None


def whole(form: Form, name: str, label: str) -> int | None:
    text = form.get(name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise InvalidInput(f"{label}: a whole number, please") from None


def identifier(form: Form, name: str, label: str) -> int:
    """A row id chosen in the form (ids beyond 32 bits exist nowhere: refused here)."""
    value = whole(form, name, label)
    if value is None or not 1 <= value <= MAX_ID:
        raise InvalidInput(f"{label}: choose one")
    return value


def date_range(form: Form) -> tuple[datetime, datetime]:
    """``[start day 00:00, end day + 1 00:00)`` UTC: both days included."""
    start, end = day(form, "start"), day(form, "end")
    if start is None or end is None:
        raise InvalidInput("give both a first and a last day")
    if end < start:
        raise InvalidInput("the last day is before the first")
    return start, end + timedelta(days=1)


# --- accounts -----------------------------------------------------------------------------------


def credentials(form: Form) -> PelotonCredentials:
    """A refresh token, or a username and password with Peloton's password or web login."""
    method = form.get("method", "refresh_token")
    if method == "refresh_token":
        values: dict[str, Any] = {"refresh_token": form.get("refresh_token") or None}
        if values["refresh_token"] is None:
            raise InvalidInput("refresh token: required")
    elif method in ("password", "pkce"):
        values = {
            "username": form.get("username") or None,
            "password": form.raw("password") or None,
            "method": method,
        }
        if values["username"] is None or values["password"] is None:
            raise InvalidInput("a username and a password are required")
    else:
        raise InvalidInput("method: refresh_token, password or pkce")
    return parse(PelotonCredentials, values)


def poll_interval(form: Form) -> int | None:
    minutes = whole(form, "poll_interval_min", "poll interval")
    return None if minutes is None else minutes * 60


def account_update(form: Form) -> dict[str, Any]:
    """The account settings form: label, poll interval (blank: the default), since-date,
    whether imported workouts are delivered (a checkbox: absent when unticked)."""
    values: dict[str, Any] = {
        "label": form.get("label") or None,
        "poll_interval_s": poll_interval(form),
        "include_external": form.get("include_external") == "1",
    }
    since = day(form, "sync_since")
    if since is not None:
        values["sync_since"] = since
    if values["label"] is None:
        raise InvalidInput("label: required")
    return parse(AccountUpdate, values).model_dump(exclude_unset=True)


# --- destinations -------------------------------------------------------------------------------


def _filters(form: Form) -> dict[str, Any]:
    accounts: list[int] = []
    for text in form.getlist("account_ids"):
        try:
            accounts.append(int(text))
        except ValueError:
            raise InvalidInput("accounts: not an account id") from None
    disciplines = form.getlist("disciplines")
    return {
        "formats": form.getlist("formats") or None,
        # No box ticked means every account / discipline.
        "account_ids": accounts or None,
        "disciplines": disciplines or None,
        "concurrency": whole(form, "concurrency", "parallel sends"),
    }


def _config(kind: str, form: Form) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, secrets) fields of the kind's form (its spec's ``form_fields``). A blank
    optional setting is null (the default: an update removes the stored value) unless the field
    keeps it; a blank secret is left out (kept)."""
    config: dict[str, Any] = {}
    secrets: dict[str, Any] = {}
    for field in spec_for(kind).form_fields:
        text = form.get(field.name)
        if field.secret:
            if text:
                secrets[field.name] = text
        elif field.input == "choices":
            # A form without the boxes (its hidden marker) leaves the setting as it is; none
            # ticked is sent as such, for the kind's model to refuse by name if it must.
            if form.get(f"{field.name}_shown"):
                config[field.name] = form.getlist(field.name)
        elif field.blank_keeps and not text:
            continue
        elif field.input == "number":
            config[field.name] = whole(form, field.name, field.error_label or field.label)
        else:
            config[field.name] = text if field.required else text or None
    return config, secrets


def destination_create(kind: str, form: Form) -> dict[str, Any]:
    """``destinations.service.create`` values from the new-destination form."""
    config, secrets = _config(kind, form)
    values = {
        "name": form.get("name"),
        "kind": kind,
        "config": {k: v for k, v in config.items() if v is not None},
        "secrets": secrets or None,
        **_filters(form),
    }
    if values["formats"] is None:
        raise InvalidInput("formats: tick at least one", field="formats")
    body = parse(DestinationCreate, {k: v for k, v in values.items() if v is not None})
    dumped = body.model_dump(exclude_unset=True)
    return dumped


def destination_update(kind: str, form: Form) -> dict[str, Any]:
    """``destinations.service.update`` changes from the edit form: settings merge, a blank
    secret keeps the stored one, unticked filters mean "all"."""
    config, secrets = _config(kind, form)
    filters = _filters(form)
    values: dict[str, Any] = {"name": form.get("name"), **filters}
    if config:
        values["config"] = config
    if secrets:
        values["secrets"] = secrets
    if values["formats"] is None:
        raise InvalidInput("formats: tick at least one", field="formats")
    if values["concurrency"] is None:
        del values["concurrency"]
    return parse(DestinationUpdate, values).model_dump(exclude_unset=True)
