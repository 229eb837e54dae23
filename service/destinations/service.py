"""Destinations: building each kind's handler from its stored row."""

from __future__ import annotations

import json
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from service.convert.fit import FitDevice
from service.destinations.kinds.base import DestinationKindHandler
from service.destinations.kinds.directory import DirectoryConfig, DirectoryKind
from service.destinations.kinds.garmin import GarminConfig, GarminDestination, fit_device_for
from service.destinations.kinds.intervals import IntervalsConfig, IntervalsDestination
from service.destinations.kinds.strava import StravaApp, StravaConfig, StravaDestination
from service.destinations.kinds.webhook import WebhookConfig, WebhookKind
from service.destinations.models import Destination, DestinationKind
from service.errors import InvalidInput, validation_problems
from service.runtime import Runtime

C = TypeVar("C", bound=BaseModel)


def decrypted_secrets(runtime: Runtime, destination: Destination) -> dict[str, Any]:
    return runtime.secrets.decrypt_json(destination.secrets_encrypted)


def _config(model: type[C], values: dict[str, Any], kind: str) -> C:
    try:
        return model.model_validate(values or {})
    except ValidationError as exc:
        where, message = validation_problems(exc)[0]
        raise InvalidInput(f"invalid {kind} settings: {where or 'config'}: {message}") from None


def strava_app(runtime: Runtime) -> StravaApp:
    """One per process: Strava's rate limits are shared by every account on the app."""
    app = runtime.extras.get("strava_app")
    if not isinstance(app, StravaApp):
        app = StravaApp.from_settings(runtime.http, runtime.settings, clock=runtime.clock)
        runtime.extras["strava_app"] = app
    return app


def build_handler(runtime: Runtime, destination: Destination) -> DestinationKindHandler:
    """The handler for a destination row (config validated; secrets decrypted in memory)."""
    kind = destination.kind
    settings = runtime.settings
    if kind == DestinationKind.WEBHOOK:
        return _webhook(runtime, destination)
    if kind == DestinationKind.DIRECTORY:
        return DirectoryKind(
            DirectoryConfig.parse(destination.config),
            export_roots=settings.resolved_export_roots(),
        )
    secrets = decrypted_secrets(runtime, destination)
    if kind == DestinationKind.STRAVA:
        return StravaDestination(
            runtime.http,
            _config(StravaConfig, destination.config, kind),
            secrets,
            app=strava_app(runtime),
            clock=runtime.clock,
            sleep=runtime.sleep,
        )
    if kind == DestinationKind.INTERVALS:
        return IntervalsDestination(
            runtime.http,
            _config(IntervalsConfig, destination.config, kind),
            secrets,
            api_url=settings.intervals_api_url,
            clock=runtime.clock,
            sleep=runtime.sleep,
        )
    if kind == DestinationKind.GARMIN:
        return GarminDestination.from_settings(
            runtime.http,
            _config(GarminConfig, destination.config, kind),
            secrets,
            settings,
            clock=runtime.clock,
            sleep=runtime.sleep,
        )
    raise InvalidInput(f"unknown destination kind {kind!r}")


def _webhook(runtime: Runtime, destination: Destination) -> WebhookKind:
    """A webhook's handler, reused while its row is unchanged: decrypting its secrets and
    validating its config on every delivery cost more than signing and sending the request."""
    cache = runtime.extras.setdefault("webhook_handlers", {})
    assert isinstance(cache, dict)
    # The ciphertext changes with every secrets update, the config dict with every edit.
    key = (destination.secrets_encrypted, json.dumps(destination.config, sort_keys=True))
    cached = cache.get(destination.id)
    if cached is not None and cached[0] == key:
        handler: WebhookKind = cached[1]
        return handler
    config = WebhookConfig.parse(destination.config, decrypted_secrets(runtime, destination))
    handler = WebhookKind(config, client=runtime.webhook_http, settings=runtime.settings)
    cache[destination.id] = (key, handler)
    return handler


def fit_device(destination: Destination, discipline: str) -> FitDevice | None:
    """The device a destination's FIT files should claim (Garmin needs one per discipline)."""
    if destination.kind != DestinationKind.GARMIN:
        return None
    config = _config(GarminConfig, destination.config, destination.kind)
    return fit_device_for(discipline, config.device)
