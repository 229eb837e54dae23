"""Secrets in response excerpts: short header values too (as whole words)."""

from __future__ import annotations

import httpx

from service.config import Settings
from service.destinations.kinds.http_common import Redactor
from service.destinations.kinds.webhook import WebhookKind
from tests.destinations.conftest import make_request, webhook_config
from tests.destinations.receiver import Answer, Receiver


def test_short_words_are_redacted_where_they_stand_alone() -> None:
    redactor = Redactor(["long-secret-value"], words=["k3y", "x", "   ", "also-a-long-value"])
    text = "got k3y and x; k3yboard, box, long-secret-value, also-a-long-value!"
    assert redactor.text(text) == (
        "got [redacted] and [redacted]; k3yboard, box, [redacted], [redacted]!"
    )
    assert Redactor(["short"]).text("short") == "short"  # plain secrets: 8 characters or more


async def test_a_webhooks_short_header_value_never_reaches_an_excerpt(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    receiver.default = Answer(body=b"echo: X-Token=abc123 Bearer 9z")
    config = webhook_config(
        receiver.url(), secret, headers={"X-Token": "abc123", "Authorization": "Bearer 9z"}
    )
    delivered = await WebhookKind(config, client=client, settings=settings).deliver(make_request())
    assert delivered.response_excerpt is not None
    assert "abc123" not in delivered.response_excerpt and "9z" not in delivered.response_excerpt
