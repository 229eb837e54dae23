"""Destinations: building each kind's handler from its stored row."""

from __future__ import annotations

from typing import Any

from service.destinations.kinds.base import DestinationKindHandler
from service.destinations.kinds.directory import DirectoryConfig, DirectoryKind
from service.destinations.kinds.webhook import WebhookConfig, WebhookKind
from service.destinations.models import Destination, DestinationKind
from service.errors import InvalidInput
from service.runtime import Runtime


def decrypted_secrets(runtime: Runtime, destination: Destination) -> dict[str, Any]:
    return runtime.secrets.decrypt_json(destination.secrets_encrypted)


def build_handler(runtime: Runtime, destination: Destination) -> DestinationKindHandler:
    """The handler for a destination row (config validated; secrets decrypted in memory)."""
    kind = destination.kind
    if kind == DestinationKind.WEBHOOK:
        config = WebhookConfig.parse(destination.config, decrypted_secrets(runtime, destination))
        return WebhookKind(config, client=runtime.webhook_http, settings=runtime.settings)
    if kind == DestinationKind.DIRECTORY:
        return DirectoryKind(DirectoryConfig.parse(destination.config))
    raise InvalidInput(f"destination kind {kind!r} is not available in this version")
