"""Webhook deliveries over real loopback HTTP, verified by the standardwebhooks library."""

from __future__ import annotations

import base64
import hashlib
import ssl
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from service import __version__
from service.config import Settings
from service.destinations.kinds.base import (
    DeliveryError,
    DestinationGone,
    PermanentFailure,
)
from service.destinations.kinds.webhook import (
    PayloadTooLarge,
    WebhookConfig,
    WebhookKind,
    generate_secret,
    rotate,
    secret_bytes,
)
from service.destinations.ssrf import AddressPolicy, UnsafeDestination
from service.errors import InvalidInput
from service.webhook_http import build_client
from tests.destinations.conftest import (
    make_certificate,
    make_request,
    make_settings,
    server_tls,
    webhook_config,
)
from tests.destinations.receiver import Answer, Receiver


def kind(
    url: str,
    secret: str,
    client: httpx.AsyncClient,
    settings: Settings,
    **overrides: Any,
) -> WebhookKind:
    config = webhook_config(url, secret, **overrides)
    return WebhookKind(config, client=client, settings=settings)


class Clock:
    """Scripted readings, one per call (the last repeats): unlike the settable
    :class:`tests.support.clock.FakeClock`, it can give the signing and the header-reading steps
    of one delivery different times, in any order."""

    def __init__(self, *times: datetime) -> None:
        self.times = list(times)

    def __call__(self) -> datetime:
        return self.times.pop(0) if len(self.times) > 1 else self.times[0]


# --- signing and payload ------------------------------------------------------------------------


async def test_delivery_is_signed_and_carries_the_workout(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    request = make_request()
    delivered = await kind(receiver.url(), secret, client, settings).deliver(request)

    assert delivered.status_code == 200
    assert delivered.response_excerpt == "thanks"
    (got,) = receiver.requests
    assert got.verified_by == [secret]
    assert got.method == "POST" and got.target == "/hook"
    assert got.headers["webhook-id"] == request.message_id
    assert got.headers["content-type"] == "application/json"
    assert got.headers["user-agent"] == f"pelosync/{__version__}"
    assert got.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert got.body == got.body.strip() and b": " not in got.body  # compact JSON
    payload = got.payload
    assert payload["type"] == "workout.synced"
    sent_at = datetime.fromisoformat(payload["timestamp"].replace("Z", "+00:00"))
    assert abs(sent_at.timestamp() - int(got.headers["webhook-timestamp"])) < 1
    assert payload["data"]["account"] == {
        "id": 3,
        "label": "Alex",
        "peloton_user_id": "u-123",
        "peloton_username": "alex_rides",
    }
    assert payload["data"]["workout"] == request.workout.as_payload()
    (entry,) = payload["data"]["files"]
    assert base64.b64decode(entry.pop("content_base64")) == request.file.data
    assert entry == {
        "format": "fit",
        "filename": "ride.fit",
        "content_type": "application/vnd.ant.fit",
        "size": len(request.file.data),
        "sha256": hashlib.sha256(request.file.data).hexdigest(),
    }


async def test_retries_keep_the_id_and_sign_a_new_timestamp(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    first, second = now - timedelta(seconds=120), now
    config = webhook_config(receiver.url(), secret)
    webhook = WebhookKind(config, client=client, settings=settings, clock=Clock(first, second))
    receiver.answers = [Answer(status=500, body=b"boom")]

    with pytest.raises(DeliveryError) as failed:
        await webhook.deliver(make_request(attempt=1))
    assert failed.value.retryable and not isinstance(failed.value, PermanentFailure)
    assert failed.value.remote_status == 500
    assert failed.value.response_excerpt == "boom"
    await webhook.deliver(make_request(attempt=2))

    one, two = receiver.requests
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == "msg_2Qx7deliv1"
    assert int(one.headers["webhook-timestamp"]) == int(first.timestamp())
    assert int(two.headers["webhook-timestamp"]) == int(second.timestamp())
    assert one.headers["webhook-signature"] != two.headers["webhook-signature"]
    assert one.payload["timestamp"] == first.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert two.payload["timestamp"] == second.strftime("%Y-%m-%dT%H:%M:%S.000Z")


async def test_rotation_signs_with_both_secrets_for_24_hours_then_only_the_new(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    old = generate_secret()
    base = webhook_config("http://127.0.0.1/", old)
    now = datetime.now(UTC)
    fresh = rotate(base, now)  # old secret valid until now + 24 h
    stale = rotate(base, now - timedelta(hours=24, seconds=1))  # grace already over
    assert fresh.previous_secret_expires_at == now + timedelta(hours=24)

    for config, expected_ok in ((fresh, 2), (stale, 1)):
        new = config.secret.get_secret_value()
        assert new != old
        receiver = await Receiver([new, old]).start()
        try:
            config = config.model_copy(update={"url": receiver.url()})
            await WebhookKind(config, client=client, settings=settings).deliver(make_request())
        finally:
            await receiver.close()
        (got,) = receiver.requests
        assert len(got.headers["webhook-signature"].split(" ")) == expected_ok
        Webhook(new).verify(got.body, got.headers)
        if expected_ok == 2:
            Webhook(old).verify(got.body, got.headers)
        else:
            with pytest.raises(WebhookVerificationError):
                Webhook(old).verify(got.body, got.headers)


def test_generated_secrets_and_their_format() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 24
    assert len(secret_bytes(generate_secret(32))) == 32
    assert generate_secret() != generate_secret()
    bare = secret.removeprefix("whsec_")
    config = webhook_config("https://example.com/h", bare)
    assert config.secret.get_secret_value() == secret  # normalised to the whsec_ form


# --- files: inline or linked ----------------------------------------------------------------


async def test_large_files_are_sent_as_a_link(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    webhook = kind(receiver.url(), secret, client, settings, inline_max_bytes=10)
    link = "https://pelosync.example/files/7?sig=abc"
    await webhook.deliver(make_request(data=b"x" * 11, download_url=lambda _peer: link))
    (entry,) = receiver.requests[0].payload["data"]["files"]
    assert entry["url"] == link and "content_base64" not in entry
    assert entry["size"] == 11

    # At the limit the file is still inline.
    await webhook.deliver(make_request(data=b"y" * 10, download_url=lambda _peer: link))
    (entry,) = receiver.requests[1].payload["data"]["files"]
    assert base64.b64decode(entry["content_base64"]) == b"y" * 10 and "url" not in entry


async def test_a_file_of_megabytes_travels_inline_by_default(
    receiver: Receiver, secret: str, client: httpx.AsyncClient
) -> None:
    # A 5-hour GPS workout's TCX is about 6.4 MiB: within the default inline limit, streamed
    # in chunks (over 1 MiB), verified by the receiver.
    settings = make_settings(webhook_allow_private=True)
    data = bytes(range(256)) * (26 * 1024)  # 6.5 MiB
    await kind(receiver.url(), secret, client, settings).deliver(make_request(data=data))
    (entry,) = receiver.requests[0].payload["data"]["files"]
    assert base64.b64decode(entry["content_base64"]) == data
    assert receiver.requests[0].verified_by == [secret]


async def test_too_large_without_a_link_fails_for_good(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    webhook = kind(receiver.url(), secret, client, settings, inline_max_bytes=10)
    with pytest.raises(PermanentFailure, match=r"ride\.fit is 11 bytes, over .* 10 bytes"):
        await webhook.deliver(make_request(data=b"x" * 11))
    assert receiver.requests == []


async def test_the_settings_inline_limit_applies_by_default(
    receiver: Receiver, secret: str, client: httpx.AsyncClient
) -> None:
    settings = make_settings(webhook_allow_private=True, webhook_inline_max_bytes=4)
    with pytest.raises(PermanentFailure, match="inline limit of 4 bytes"):
        await kind(receiver.url(), secret, client, settings).deliver(make_request(data=b"12345"))


# --- ping ------------------------------------------------------------------------------------


async def test_ping_is_a_signed_ping_event(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    webhook = kind(receiver.url(), secret, client, settings)
    delivered = await webhook.ping()
    await webhook.ping()
    assert delivered.status_code == 200
    first, second = receiver.requests
    assert first.verified_by == [secret]
    assert first.payload["type"] == "ping"
    assert "message" in first.payload["data"]
    assert first.headers["webhook-id"].startswith("msg_ping_")
    assert first.headers["webhook-id"] != second.headers["webhook-id"]


async def test_ping_goes_through_the_address_guard(
    receiver: Receiver, secret: str, client: httpx.AsyncClient
) -> None:
    strict = make_settings()
    with pytest.raises(UnsafeDestination, match="loopback"):
        await kind(receiver.url(), secret, client, strict).ping()
    assert receiver.requests == []


# --- answers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
async def test_any_2xx_is_success(
    status: int, receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    receiver.default = Answer(status=status, body=b"" if status == 204 else b"ok")
    delivered = await kind(receiver.url(), secret, client, settings).deliver(make_request())
    assert delivered.status_code == status


async def test_redirects_are_not_followed(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    elsewhere = receiver.url(path="/elsewhere")
    receiver.answers = [Answer(status=307, headers=[("location", elsewhere)])]
    with pytest.raises(DeliveryError, match="redirects are not followed") as failed:
        await kind(receiver.url(), secret, client, settings).deliver(make_request())
    assert not isinstance(failed.value, PermanentFailure)  # retried: the user may fix the URL
    assert failed.value.remote_status == 307
    assert elsewhere in failed.value.message
    assert [r.target for r in receiver.requests] == ["/hook"]


async def test_410_means_the_destination_is_gone(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    receiver.default = Answer(status=410, body=b"endpoint deleted")
    with pytest.raises(DestinationGone) as failed:
        await kind(receiver.url(), secret, client, settings).deliver(make_request())
    assert not failed.value.retryable
    assert failed.value.remote_status == 410
    assert failed.value.response_excerpt == "endpoint deleted"


@pytest.mark.parametrize(
    ("status", "header", "expected"),
    [
        (429, "120", 120.0),
        (429, None, 60.0),  # overload penalty
        (503, "30", 30.0),
        (503, None, None),
    ],
)
async def test_rate_limits_carry_retry_after(
    status: int,
    header: str | None,
    expected: float | None,
    receiver: Receiver,
    secret: str,
    client: httpx.AsyncClient,
    settings: Settings,
) -> None:
    receiver.default = Answer(status=status, headers=[("retry-after", header)] if header else [])
    with pytest.raises(DeliveryError) as failed:
        await kind(receiver.url(), secret, client, settings).deliver(make_request())
    assert failed.value.retryable
    assert failed.value.remote_status == status
    assert failed.value.retry_after == expected


async def test_retry_after_as_an_http_date(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    receiver.default = Answer(
        status=429, headers=[("retry-after", format_datetime(now + timedelta(minutes=5), True))]
    )
    config = webhook_config(receiver.url(), secret)
    clock = Clock(datetime.now(UTC), now)  # signing time, then "now" when reading the header
    webhook = WebhookKind(config, client=client, settings=settings, clock=clock)
    with pytest.raises(DeliveryError) as failed:
        await webhook.deliver(make_request())
    assert failed.value.retry_after == 300.0


@pytest.mark.parametrize("status", [400, 401, 404, 422, 500, 502])
async def test_other_failures_are_retried(
    status: int, receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    receiver.default = Answer(status=status, body=b'{"error": "nope"}')
    with pytest.raises(DeliveryError, match=f"answered HTTP {status}") as failed:
        await kind(receiver.url(), secret, client, settings).deliver(make_request())
    assert type(failed.value) is DeliveryError and failed.value.retryable
    assert failed.value.response_excerpt == '{"error": "nope"}'


async def test_413_without_a_link_is_permanent(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    receiver.default = Answer(status=413)
    with pytest.raises(PayloadTooLarge, match="PELOSYNC_PUBLIC_URL") as failed:
        await kind(receiver.url(), secret, client, settings).deliver(make_request())
    assert failed.value.learned_inline_max is None  # nothing else could have been done
    # Nor when the receiver is out of reach of every address the service knows of.
    receiver.answers = [Answer(status=413)]
    request = make_request(download_url=lambda _peer: None)
    with pytest.raises(PayloadTooLarge):
        await kind(receiver.url(), secret, client, settings).deliver(request)
    assert len(receiver.requests) == 2  # the file inline, twice; no link was sent


async def test_413_to_an_inline_file_sends_it_again_as_a_link(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    receiver.answers = [Answer(status=413, body=b"too big")]
    peers: list[object] = []

    def link(peer: object) -> str:
        peers.append(peer)
        return "http://10.0.0.2:8080/v1/files/workouts/11/fit?expires=1&signature=s"

    data = b"x" * 1000
    delivered = await kind(receiver.url(), secret, client, settings).deliver(
        make_request(data=data, download_url=link)
    )
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]  # the same message
    assert "content_base64" in first.payload["data"]["files"][0]
    (entry,) = second.payload["data"]["files"]
    assert entry["url"] == link(None) and "content_base64" not in entry
    assert entry["size"] == 1000 and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert [str(p) for p in peers[:1]] == ["127.0.0.1"]  # the link is for the receiver's address
    assert delivered.status_code == 200 and delivered.learned_inline_max == 500
    assert "HTTP 413" in (delivered.response_excerpt or "")


async def test_a_link_is_not_sent_again_after_a_413(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    receiver.default = Answer(status=413)
    webhook = kind(receiver.url(), secret, client, settings, inline_max_bytes=10)
    with pytest.raises(PayloadTooLarge) as failed:
        await webhook.deliver(make_request(data=b"x" * 11, download_url=lambda _peer: "http://l"))
    assert len(receiver.requests) == 1 and failed.value.learned_inline_max is None


async def test_a_failed_link_after_a_413_still_teaches_the_limit(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    receiver.answers = [Answer(status=413), Answer(status=503)]
    request = make_request(data=b"x" * 100, download_url=lambda _peer: "http://l")
    with pytest.raises(DeliveryError) as failed:
        await kind(receiver.url(), secret, client, settings).deliver(request)
    assert failed.value.retryable and failed.value.learned_inline_max == 50


async def test_response_excerpt_is_capped_at_4_kb(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    receiver.default = Answer(status=200, body=b"a" * 200_000)
    delivered = await kind(receiver.url(), secret, client, settings).deliver(make_request())
    assert delivered.response_excerpt == "a" * 4096


async def test_timeout_is_retried_with_the_overload_penalty(
    receiver: Receiver, secret: str, client: httpx.AsyncClient
) -> None:
    quick = make_settings(webhook_allow_private=True, webhook_timeout_s=0.3)
    receiver.default = Answer(delay_s=30)
    with pytest.raises(DeliveryError, match="did not answer") as failed:
        await kind(receiver.url(), secret, client, quick).deliver(make_request())
    assert failed.value.retryable and failed.value.retry_after == 60.0
    assert len(receiver.requests) == 1


async def test_dropped_connection_is_retried(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    receiver.default = Answer(drop=True)
    with pytest.raises(DeliveryError, match="RemoteProtocolError") as failed:
        await kind(receiver.url(), secret, client, settings).deliver(make_request())
    assert type(failed.value) is DeliveryError
    assert failed.value.remote_status is None


async def test_refused_connection_is_retried(
    secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    closed = await Receiver([secret]).start()
    await closed.close()  # nothing listens on this port any more
    with pytest.raises(DeliveryError, match="ConnectError") as failed:
        await kind(closed.url(), secret, client, settings).deliver(make_request())
    assert type(failed.value) is DeliveryError


# --- address guard and pinning ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address"),
        ("http://localhost:{port}/hook", "localhost resolves to 127.0.0.1, a loopback address"),
        ("http://[::1]:{port}/hook", "::1 is a loopback address"),
        ("http://[::ffff:127.0.0.1]:{port}/", "a loopback address inside an IPv6 address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://10.1.2.3/hook", "10.1.2.3 is a private address"),
        ("http://0.0.0.0:{port}/", "an unspecified address"),
    ],
)
async def test_private_destinations_are_refused_by_default(
    url: str, reason: str, receiver: Receiver, secret: str, client: httpx.AsyncClient
) -> None:
    strict = make_settings()
    webhook = kind(url.format(port=receiver.port), secret, client, strict)
    with pytest.raises(UnsafeDestination) as refused:
        await webhook.deliver(make_request())
    assert reason in refused.value.message
    assert not refused.value.retryable
    assert "PELOSYNC_WEBHOOK_ALLOW" in refused.value.message
    assert receiver.requests == []


@pytest.mark.parametrize("allowlist", ["127.0.0.0/8", "localhost", "10.0.0.0/8, 127.0.0.1"])
async def test_the_allowlist_lets_a_private_destination_through(
    allowlist: str, receiver: Receiver, secret: str, client: httpx.AsyncClient
) -> None:
    settings = make_settings(webhook_allowlist=allowlist)
    webhook = kind(receiver.url(host="localhost"), secret, client, settings)
    assert (await webhook.deliver(make_request())).status_code == 200
    assert receiver.requests[0].headers["host"] == f"localhost:{receiver.port}"


async def test_allow_private_lets_loopback_through(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    assert settings.webhook_allow_private
    webhook = kind(receiver.url(host="localhost"), secret, client, settings)
    assert (await webhook.deliver(make_request())).status_code == 200


async def test_the_checked_address_is_the_one_connected_to(
    receiver: Receiver, secret: str, client: httpx.AsyncClient
) -> None:
    """DNS rebinding: the name resolves once; a later answer cannot move the connection."""
    answers = [["127.0.0.1"], ["10.9.9.9"]]
    calls: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> Sequence[str]:
        calls.append((host, port))
        return answers[min(len(calls), len(answers)) - 1]

    config = webhook_config(receiver.url(host="hooks.pelosync.test"), secret)
    policy = AddressPolicy.parse("127.0.0.1")
    settings = make_settings()
    webhook = WebhookKind(
        config, client=client, settings=settings, policy=policy, resolver=resolver
    )
    await webhook.deliver(make_request())

    # One lookup; the request reached the checked loopback address (the made-up name has no
    # DNS entry, so the HTTP client cannot have resolved it again), sent as the named host.
    assert calls == [("hooks.pelosync.test", receiver.port)]
    (got,) = receiver.requests
    assert got.headers["host"] == f"hooks.pelosync.test:{receiver.port}"

    # Each attempt resolves and checks afresh: the second answer is refused, nothing is sent.
    with pytest.raises(UnsafeDestination, match="resolves to 10.9.9.9, a private address"):
        await webhook.deliver(make_request(attempt=2))
    assert len(calls) == 2 and len(receiver.requests) == 1


async def test_a_refused_address_falls_back_to_the_next_checked_one(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        return ["127.0.0.2", "127.0.0.1"]  # nothing listens on the first

    config = webhook_config(receiver.url(host="hooks.pelosync.test"), secret)
    webhook = WebhookKind(config, client=client, settings=settings, resolver=resolver)
    assert (await webhook.deliver(make_request())).status_code == 200
    assert len(receiver.requests) == 1


async def test_a_message_id_with_a_dot_is_refused(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    with pytest.raises(PermanentFailure, match="cannot be a webhook-id"):
        await kind(receiver.url(), secret, client, settings).deliver(make_request(message_id="a.b"))
    assert receiver.requests == []


async def test_one_private_answer_among_public_ones_is_refused(
    secret: str, client: httpx.AsyncClient
) -> None:
    async def resolver(host: str, port: int) -> Sequence[str]:
        return ["93.184.216.34", "10.0.0.7"]

    config = webhook_config("https://hooks.example.com/x", secret)
    webhook = WebhookKind(
        config,
        client=client,
        settings=make_settings(),
        resolver=resolver,
    )
    with pytest.raises(UnsafeDestination, match="hooks.example.com resolves to 10.0.0.7"):
        await webhook.deliver(make_request())


@pytest.mark.parametrize("served_name", ["hooks.pelosync.test", "someone-else.pelosync.test"])
async def test_tls_checks_the_host_name_while_connecting_to_the_pinned_address(
    served_name: str, tmp_path: Path, secret: str
) -> None:
    cert_file, key_file, pem = make_certificate(tmp_path, served_name)
    receiver = await Receiver([secret], ssl_context=server_tls(cert_file, key_file)).start()

    async def resolver(host: str, port: int) -> Sequence[str]:
        return ["127.0.0.1"]

    trust = ssl.create_default_context(cadata=pem.decode())
    settings = make_settings(webhook_allow_private=True)
    config = webhook_config(receiver.url(host="hooks.pelosync.test"), secret)
    try:
        async with build_client(settings, verify=trust) as client:
            webhook = WebhookKind(config, client=client, settings=settings, resolver=resolver)
            if served_name == "hooks.pelosync.test":
                assert (await webhook.deliver(make_request())).status_code == 200
                assert receiver.requests[0].verified_by == [secret]
            else:
                with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED"):
                    await webhook.deliver(make_request())
                assert receiver.requests == []
    finally:
        await receiver.close()
    assert receiver.sni_names == ["hooks.pelosync.test"]


async def test_connections_are_kept_alive_between_deliveries(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    webhook = kind(receiver.url(), secret, client, settings)
    for _ in range(3):
        assert (await webhook.deliver(make_request())).status_code == 200
    assert len(receiver.requests) == 3 and receiver.connections == 1


async def test_a_tls_connection_is_only_reused_for_the_name_it_was_verified_for(
    tmp_path: Path, secret: str
) -> None:
    # Two names served from one address: each gets its own handshake (SNI, certificate check)
    # and its own kept-alive connection; neither carries the other's requests.
    names = ["a.pelosync.test", "b.pelosync.test"]
    cert_file, key_file, pem = make_certificate(tmp_path, *names)
    receiver = await Receiver([secret], ssl_context=server_tls(cert_file, key_file)).start()

    async def resolver(host: str, port: int) -> Sequence[str]:
        return ["127.0.0.1"]

    settings = make_settings(webhook_allow_private=True)
    trust = ssl.create_default_context(cadata=pem.decode())
    try:
        async with build_client(settings, verify=trust) as client:
            hooks = [
                WebhookKind(
                    webhook_config(receiver.url(host=name), secret),
                    client=client,
                    settings=settings,
                    resolver=resolver,
                )
                for name in names
            ]
            for hook in (hooks[0], hooks[1], hooks[0], hooks[1], hooks[0]):
                assert (await hook.deliver(make_request())).status_code == 200
    finally:
        await receiver.close()
    assert [r.headers["host"].split(":")[0] for r in receiver.requests] == [
        "a.pelosync.test",
        "b.pelosync.test",
        "a.pelosync.test",
        "b.pelosync.test",
        "a.pelosync.test",
    ]
    assert sorted(n or "" for n in receiver.sni_names) == names  # one handshake per name
    assert receiver.connections == 2


# --- configuration and secrecy ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"url": "ftp://example.com/x"}, "scheme must be http or https"),
        ({"url": "https:///nohost"}, "no host"),
        ({"headers": {"webhook-signature": "v1,forged"}}, "cannot be overridden"),
        ({"headers": {"Content-Type": "text/plain"}}, "cannot be overridden"),
        ({"headers": {"X-Token": "a\r\nInjected: 1"}}, "line break"),
        ({"headers": {"bad name": "x"}}, "not a valid header name"),
        ({"previous_secret": generate_secret()}, "go together"),
        ({"secret": "whsec_c2hvcnQ="}, "24 to 64 bytes"),
        ({"secret": "whsec_not base64!"}, "followed by base64"),
    ],
)
def test_bad_configs_are_refused_with_a_reason(fields: dict[str, object], problem: str) -> None:
    data: dict[str, object] = {"url": "https://example.com/hook", "secret": generate_secret()}
    data.update(fields)
    with pytest.raises(InvalidInput, match=problem):
        WebhookConfig.parse(data)


async def test_extra_headers_are_sent(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    webhook = kind(receiver.url(), secret, client, settings, headers={"Authorization": "Bearer t"})
    await webhook.deliver(make_request())
    assert receiver.requests[0].headers["authorization"] == "Bearer t"


def test_split_and_parse_round_trip() -> None:
    config = rotate(
        webhook_config("https://example.com/hook", generate_secret(), headers={"X-A": "1"}),
        datetime(2026, 3, 1, tzinfo=UTC),
    )
    public, hidden = config.split()
    assert set(hidden) == {"secret", "previous_secret", "headers"}
    assert "secret" not in public and "headers" not in public
    assert WebhookConfig.parse(public, hidden) == config


async def test_secrets_never_appear_in_errors_excerpts_or_logs(
    receiver: Receiver, secret: str, client: httpx.AsyncClient, settings: Settings
) -> None:
    key_b64 = secret.removeprefix("whsec_")
    token = "tok_9f8e7d6c5b4a"
    seen: list[str] = []
    echo = f"you sent Authorization: Bearer {token} signed with {secret}".encode()
    receiver.answers = [
        Answer(status=500, body=echo),
        Answer(status=302, headers=[("location", f"https://x.test/?k={key_b64}")]),
        Answer(status=410),
        Answer(drop=True),
    ]
    with structlog.testing.capture_logs() as logs:
        headers = {"Authorization": f"Bearer {token}"}
        webhook = kind(receiver.url(), secret, client, settings, headers=headers)
        for _ in receiver.answers[:]:
            with pytest.raises(DeliveryError) as failed:
                await webhook.deliver(make_request())
            seen += [str(failed.value), repr(failed.value), str(failed.value.response_excerpt)]
        strict = make_settings()
        with pytest.raises(UnsafeDestination) as refused:
            await kind(receiver.url(), secret, client, strict).deliver(make_request())
        seen.append(str(refused.value))
        receiver.default = Answer(body=echo)
        delivered = await webhook.deliver(make_request())
        seen.append(str(delivered))
    assert delivered.response_excerpt == (
        "you sent Authorization: [redacted] signed with [redacted]"
    )
    with pytest.raises(ValidationError) as invalid:
        webhook_config("nope://x", secret[:12])
    with pytest.raises(InvalidInput) as invalid_parse:
        WebhookConfig.parse({"url": "https://x.test/", "secret": secret + "!"})
    config = webhook_config(receiver.url(), secret, headers=headers)
    seen += [str(invalid.value), str(invalid_parse.value), repr(config), str(config)]
    seen += [repr(entry) for entry in logs]
    assert len(logs) == 6, "every attempt is logged"
    for text in seen:
        assert key_b64[:12] not in text and token not in text
