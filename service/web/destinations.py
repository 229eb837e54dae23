"""Destinations: health at a glance, adding and editing, testing, pausing, connecting Strava."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from service.auth.service import Forbidden
from service.convert.model import Discipline
from service.deps import RuntimeDep, SessionDep
from service.destinations import checks
from service.destinations import service as destinations
from service.destinations.kinds import strava
from service.destinations.kinds.registry import KINDS
from service.destinations.kinds.spec import CredentialsNote, KindSpec
from service.destinations.models import Destination
from service.destinations.router import callback_url
from service.errors import InvalidInput, PelosyncError
from service.runtime import Runtime
from service.schemas import IdPath
from service.web import forms, queries
from service.web import session as cookies
from service.web.deps import (
    Action,
    ActionDep,
    Form,
    Viewer,
    ViewerDep,
    WebRoute,
    redirect,
    render,
    safe_next,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)

KindQuery = Annotated[str | None, Query(pattern=r"^[a-z]{1,20}$")]


def kind_labels() -> dict[str, str]:
    """Each kind's name as the dashboard shows it ("Garmin Connect")."""
    return {kind: spec.label for kind, spec in KINDS.items()}


def _addable() -> list[str]:
    """The kinds the dashboard can add, in the registry's order."""
    return [kind for kind, spec in KINDS.items() if spec.addable]


def _addable_spec(kind: str) -> KindSpec:
    spec = KINDS.get(kind)
    if spec is None or not spec.addable:
        raise InvalidInput(f"kind: one of {', '.join(_addable())}")
    return spec


def _connected(runtime: Runtime, destination: Destination) -> bool:
    return "refresh_token" in destinations.masked_secrets(runtime, destination)


@router.get("/destinations")
async def list_destinations(
    request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    rows = await queries.destinations(db)
    return render(
        request,
        runtime,
        "destinations.html",
        viewer,
        page="destinations",
        destinations=rows,
        counts=await queries.delivery_counts(db),
        kinds=kind_labels(),
        addable=_addable(),
        strava_connected={d.id: _connected(runtime, d) for d in rows if d.kind == strava.KIND},
    )


async def _form_page(
    request: Request,
    runtime: Runtime,
    db: AsyncSession,
    viewer: Viewer,
    kind: str,
    destination: Destination | None,
    *,
    status: int = 200,
    error: str | None = None,
    values: dict[str, Any] | None = None,
    generated_secret: str | None = None,
    error_field: str | None = None,
) -> Response:
    """The add or edit form of a destination, with its values (never its secrets); an error
    about one field is shown beside it."""
    if values is None:
        values = _values_of(destination) if destination is not None else {"formats": ["fit"]}
    spec = KINDS.get(kind)
    return render(
        request,
        runtime,
        "destination.html",
        viewer,
        status=status,
        page="destinations",
        kind=kind,
        kind_name=spec.label if spec else kind,
        spec=spec,
        destination=destination,
        values=values,
        error=error,
        error_field=_input_of(error_field, spec),
        generated_secret=generated_secret,
        formats=spec.formats if spec else (),
        accounts=await queries.account_labels(db),
        disciplines=[d.value for d in Discipline],
        connected=destination is not None and _connected(runtime, destination),
        credentials_note=_credentials_note(runtime, spec, destination),
        counts=(await queries.delivery_counts(db)).get(destination.id, {}) if destination else {},
    )


def _credentials_note(
    runtime: Runtime, spec: KindSpec | None, destination: Destination | None
) -> CredentialsNote | None:
    """The kind's line about the credentials (Garmin: when the sign-in ends), if it has one."""
    if spec is None or spec.credentials_note is None or destination is None:
        return None
    return spec.credentials_note(destinations.masked_secrets(runtime, destination), runtime.clock())


def _input_of(field: str | None, spec: KindSpec | None) -> str | None:
    """The form input a field of the API's (``config.url``, ``secrets.api_key``) is typed in;
    an error about the secrets as a whole is shown by the kind's first secret input."""
    if field is None:
        return None
    if field == "secrets" and spec is not None:
        return next((f.name for f in spec.form_fields if f.secret), field)
    name = field.removeprefix("config.").removeprefix("secrets.")
    return name.split(".")[0]


def _values_of(destination: Destination) -> dict[str, Any]:
    values: dict[str, Any] = {
        "name": destination.name,
        "formats": destination.formats,
        "account_ids": destination.account_ids or [],
        "disciplines": destination.disciplines or [],
        "concurrency": destination.concurrency,
    }
    for key, value in destination.config.items():
        values[key] = "" if value is None else value
    return values


def _form_values(kind: str, form: Form) -> dict[str, Any]:
    """What was typed, to show the form again after an error (secrets left out)."""
    spec = KINDS.get(kind)
    fields = [f for f in spec.form_fields if not f.secret] if spec else []
    values: dict[str, Any] = {"name": form.get("name"), "concurrency": form.get("concurrency")}
    for f in fields:
        values[f.name] = form.getlist(f.name) if f.input == "choices" else form.get(f.name)
    values["formats"] = form.getlist("formats")
    values["account_ids"] = [int(a) for a in form.getlist("account_ids") if a.isdigit()]
    values["disciplines"] = form.getlist("disciplines")
    return values


@router.get("/destinations/new")
async def new_destination(
    request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep, kind: KindQuery = None
) -> Response:
    if not viewer.can_write:
        raise Forbidden("this API key is read-only; sign in with an admin key to add one")
    if kind is None:  # a hand-typed or bookmarked address: the list offers every kind
        return redirect(request, runtime, "/destinations")
    _addable_spec(kind)
    try:
        # Said before the form is filled in, not after (Garmin while it is switched off).
        checks.check_kind_available(runtime.settings, kind)
    except InvalidInput as exc:
        error = forms.field_message(exc)
        return await _form_page(request, runtime, db, viewer, kind, None, error=error)
    return await _form_page(request, runtime, db, viewer, kind, None)


@router.post("/destinations")
async def create_destination(
    request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """Add it. A webhook's generated signing secret is shown on this one answer, never again."""
    kind = _addable_spec(action.form.get("kind")).kind
    try:
        destination, generated = await destinations.create(
            runtime, db, forms.destination_create(kind, action.form)
        )
    except PelosyncError as exc:
        await db.rollback()
        return await _form_page(
            request,
            runtime,
            db,
            action.viewer,
            kind,
            None,
            status=exc.status_code,
            error=forms.field_message(exc) if isinstance(exc, InvalidInput) else exc.message,
            error_field=getattr(exc, "field", None),
            values=_form_values(kind, action.form),
        )
    page = f"/destinations/{destination.id}"
    response = redirect(request, runtime, page, ok=f"Added {destination.name}.")
    if generated is not None:
        # Shown once on the page redirected to, carried there encrypted (never in the URL).
        cookies.set_reveal(response, request, runtime, action.viewer.session, page, generated)
    return response


@router.get("/destinations/{destination_id}")
async def show_destination(
    destination_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    destination = await destinations.get(db, destination_id)
    secret = cookies.take_reveal(request, runtime, viewer.session)
    response = await _form_page(
        request, runtime, db, viewer, destination.kind, destination, generated_secret=secret
    )
    if secret is not None:
        cookies.drop_reveal(response, request)
    return response


@router.post("/destinations/{destination_id}/edit")
async def edit_destination(
    destination_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    destination = await destinations.get(db, destination_id)
    kind = destination.kind
    try:
        changes = forms.destination_update(kind, action.form)
        await destinations.update(runtime, db, destination_id, changes)
    except PelosyncError as exc:
        await db.rollback()
        destination = await destinations.get(db, destination_id)
        return await _form_page(
            request,
            runtime,
            db,
            action.viewer,
            kind,
            destination,
            status=exc.status_code,
            error=forms.field_message(exc) if isinstance(exc, InvalidInput) else exc.message,
            error_field=getattr(exc, "field", None),
            values=_form_values(kind, action.form),
        )
    return redirect(request, runtime, f"/destinations/{destination_id}", ok="Saved.")


@router.post("/destinations/{destination_id}/test")
async def test_destination(
    destination_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """Send the kind's test event now (a signed webhook ping, an authorization check...)."""
    back = f"/destinations/{destination_id}"
    try:
        result, error = await destinations.test(runtime, db, destination_id)
    except PelosyncError as exc:
        await db.rollback()
        return redirect(request, runtime, back, error=f"Test: {exc.message}")
    if error is not None:
        status = f" (HTTP {error.remote_status})" if error.remote_status else ""
        return redirect(request, runtime, back, error=f"Test failed{status}: {error.message}")
    assert result is not None
    status = f" (HTTP {result.status_code})" if result.status_code else ""
    return redirect(request, runtime, back, ok=f"Test succeeded{status}.")


async def _set_enabled(
    request: Request,
    runtime: Runtime,
    db: AsyncSession,
    action: Action,
    destination_id: int,
    on: bool,
) -> Response:
    destination = await destinations.set_enabled(runtime, db, destination_id, on)
    back = safe_next(action.form.get("next"), f"/destinations/{destination_id}")
    word = "Resumed" if on else "Paused"
    return redirect(request, runtime, back, ok=f"{word} {destination.name}.")


@router.post("/destinations/{destination_id}/enable")
async def enable_destination(
    destination_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """Resume: its waiting deliveries go out, its failure streak starts over."""
    return await _set_enabled(request, runtime, db, action, destination_id, True)


@router.post("/destinations/{destination_id}/disable")
async def disable_destination(
    destination_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, action: ActionDep
) -> Response:
    """Pause: nothing is sent; deliveries wait for it."""
    return await _set_enabled(request, runtime, db, action, destination_id, False)


@router.get("/destinations/{destination_id}/strava/connect")
async def connect_strava(
    destination_id: IdPath, request: Request, runtime: RuntimeDep, db: SessionDep, viewer: ViewerDep
) -> Response:
    """To Strava's authorization page; Strava sends the user back to the API's callback."""
    if not viewer.can_write:
        raise Forbidden("this API key is read-only; sign in with an admin key to connect Strava")
    try:
        url = await destinations.strava_authorize_url(
            runtime, db, destination_id, callback_url(runtime, request), api_key_id=viewer.key_id
        )
    except InvalidInput as exc:
        return redirect(request, runtime, f"/destinations/{destination_id}", error=exc.message)
    return redirect(request, runtime, url)
