"""The webhook kind's entry in the registry: its handlers, one per destination row, and ``SPEC``.

The parts live beside it: ``webhook_config.py`` (settings, secrets, their checks and rotation),
``webhook_signing.py`` (secrets and signatures) and ``webhook_handler.py`` (sending an event and
reading the receiver's answer).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from service.destinations.kinds.spec import ALL_FORMATS, FormField, KindSpec, decrypted_secrets
from service.destinations.kinds.webhook_config import (
    WebhookConfig,
    WebhookSecrets,
    check_reachable,
    rotate,
    validate_settings,
)
from service.destinations.kinds.webhook_handler import PayloadTooLarge, WebhookKind
from service.destinations.kinds.webhook_signing import generate_secret, secret_bytes, sign
from service.events.models import DEFAULT_SUBSCRIPTION, EventType
from service.events.models import TITLES as EVENT_TITLES

if TYPE_CHECKING:
    from service.destinations.models import Destination
    from service.runtime import Runtime

# The kind's public names, importable from here as before the split.
__all__ = [
    "KIND",
    "SPEC",
    "PayloadTooLarge",
    "WebhookConfig",
    "WebhookHandlers",
    "WebhookKind",
    "WebhookSecrets",
    "generate_secret",
    "rotate",
    "secret_bytes",
    "sign",
]


# Performance machinery (benchmarks/deliver.py): the webhook handler cache.
class WebhookHandlers:
    """The process's webhook handlers, reused while their row is unchanged: decrypting secrets
    and validating config on every delivery cost more than signing and sending the request."""

    def __init__(self) -> None:
        self._handlers: dict[int, tuple[tuple[str | None, str], WebhookKind]] = {}

    def get(self, runtime: Runtime, destination: Destination) -> WebhookKind:
        # The ciphertext changes with every secrets update, the config dict with every edit.
        key = (destination.secrets_encrypted, json.dumps(destination.config, sort_keys=True))
        cached = self._handlers.get(destination.id)
        if cached is not None and cached[0] == key:
            return cached[1]
        config = WebhookConfig.parse(destination.config, decrypted_secrets(runtime, destination))
        handler = WebhookKind(config, client=runtime.webhook_http, settings=runtime.settings)
        self._handlers[destination.id] = (key, handler)
        return handler


def _handler(runtime: Runtime, destination: Destination) -> WebhookKind:
    return runtime.singletons.get(WebhookHandlers, WebhookHandlers).get(runtime, destination)


KIND = "webhook"
SPEC = KindSpec(
    kind=KIND,
    label="Webhook",
    config_model=WebhookConfig,
    factory=_handler,
    formats=ALL_FORMATS,
    secrets_model=WebhookSecrets,
    validate=validate_settings,
    check_config=check_reachable,
    config_doc=(
        "`url`, `inline_max_bytes` (files up to it go inline, bigger ones as links; lowered by "
        "pelosync when the receiver answers 413)"
    ),
    secrets_doc=("`secret` (whsec_..., generated if absent) and `headers` (extra request headers)"),
    form_fields=(
        FormField(
            "url",
            "URL",
            input="url",
            required=True,
            placeholder="https://example.com/hooks/pelosync",
        ),
        FormField(
            "secret",
            "Signing secret",
            input="password",
            secret=True,
            placeholder="whsec_… (blank: generate one)",
        ),
        FormField(
            "inline_max_bytes",
            "Largest file sent inline, bytes",
            input="number",
            minimum=0,
            placeholder="default",
            error_label="inline limit",
        ),
        FormField(
            "events",
            "Events",
            input="choices",
            help="what this webhook receives",
            choices=tuple((t.value, EVENT_TITLES[t]) for t in EventType),
            default=DEFAULT_SUBSCRIPTION,
        ),
    ),
)
