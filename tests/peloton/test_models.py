"""Models, tokens, credentials, config, and the small parsers (forms, Retry-After, Auth0 errors)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pydantic import ValidationError

from service.config import Settings
from service.errors import ExternalServiceError, InvalidInput
from service.http_headers import parse_retry_after
from service.peloton.auth import auth_error, parse_hidden_form
from service.peloton.errors import (
    NeedsReauthentication,
    PelotonForbidden,
    RateLimited,
    TransientError,
    UnexpectedResponse,
    api_error,
)
from service.peloton.models import (
    Credentials,
    LoginMethod,
    PelotonConfig,
    TokenSet,
    WorkoutListPage,
    jwt_expiry,
)
from tests.peloton.fake_peloton import make_workout

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def jwt(claims: dict[str, object]) -> str:
    def part(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'RS256'})}.{part(claims)}.signature"


# --- response models --------------------------------------------------------------------------


def test_list_page_keeps_raw_json_and_converts_epochs() -> None:
    items = [make_workout(1, 1_670_191_449), make_workout(2, 1_670_093_994, status="IN_PROGRESS")]
    body = {
        "data": items,
        "limit": 2,
        "page": 0,
        "total": 5,
        "count": 2,
        "page_count": 3,
        "show_previous": False,
        "show_next": True,
        "sort_by": "-created_at,-pk",
        "next": {"workout_id": items[1]["id"], "created_at": 1_670_093_994},
        "summary": {"2022-12": 2},
        "aggregate_stats": [],
        "brand_new_envelope_field": 1,
    }
    page = WorkoutListPage.model_validate(body)
    assert page.raw is body
    assert page.data[0].raw is items[0]  # verbatim, unknown fields included
    first = page.data[0]
    assert first.created_at == datetime(2022, 12, 4, 22, 4, 9, tzinfo=UTC)
    assert first.start_time == first.created_at + timedelta(seconds=60)
    assert first.is_complete
    assert not page.data[1].is_complete
    assert first.ride is not None
    assert first.ride.instructor is not None
    assert first.ride.instructor.name == "A. Coach"
    assert first.model_extra == {"some_new_field": {"kept": True}}
    assert page.model_extra == {"aggregate_stats": [], "brand_new_envelope_field": 1}
    assert page.next is not None
    assert page.next.created_at == datetime.fromtimestamp(1_670_093_994, tz=UTC)
    assert page.has_next(0, 2)


def test_missing_fields_are_tolerated() -> None:
    page = WorkoutListPage.model_validate({"data": [{}]})
    workout = page.data[0]
    assert workout.id is None
    assert workout.created_at is None
    assert workout.ride is None
    assert workout.ride_id is None
    assert WorkoutListPage.model_validate({}).data == []


@pytest.mark.parametrize(
    ("ride_id", "expected"),
    [("abc123", "abc123"), ("0" * 32, None), ("", None), (None, None)],
)
def test_ride_id_ignores_empty_and_all_zero_ids(ride_id: str | None, expected: str | None) -> None:
    workout = make_workout(1, 0)
    workout["ride"]["id"] = ride_id
    assert WorkoutListPage.model_validate({"data": [workout]}).data[0].ride_id == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1_670_191_449, datetime(2022, 12, 4, 22, 4, 9, tzinfo=UTC)),
        (1_670_191_449.5, datetime(2022, 12, 4, 22, 4, 9, 500000, tzinfo=UTC)),
        ("1670191449", datetime(2022, 12, 4, 22, 4, 9, tzinfo=UTC)),
        ("2022-12-04T17:04:09-05:00", datetime(2022, 12, 4, 22, 4, 9, tzinfo=UTC)),
        ("2022-12-04T22:04:09", datetime(2022, 12, 4, 22, 4, 9, tzinfo=UTC)),
    ],
)
def test_timestamps_become_aware_utc(value: object, expected: datetime) -> None:
    created = WorkoutListPage.model_validate({"data": [{"created_at": value}]}).data[0].created_at
    assert created == expected
    assert created is not None
    assert created.utcoffset() == timedelta(0)


@pytest.mark.parametrize("value", [True, "yesterday", 10**20])
def test_bad_timestamps_are_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="created_at"):
        WorkoutListPage.model_validate({"data": [{"created_at": value}]})


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"show_next": False, "page_count": 9}, False),  # show_next wins
        ({"page_count": 2}, True),
        ({"page_count": 1}, False),
        ({}, True),  # full page and no hints: try the next one
    ],
)
def test_has_next(fields: dict[str, object], expected: bool) -> None:
    page = WorkoutListPage.model_validate({"data": [{"id": "a"}, {"id": "b"}], **fields})
    assert page.has_next(0, 2) is expected
    assert WorkoutListPage.model_validate({"data": [], "show_next": True}).has_next(0, 2) is False


# --- tokens and credentials -----------------------------------------------------------------


def test_token_response_expiry_is_in_seconds() -> None:
    body = {"access_token": "a", "refresh_token": "r", "expires_in": 172800, "scope": "openid"}
    tokens = TokenSet.from_token_response(body, now=NOW, client_id="web")
    assert tokens.expires_at == NOW + timedelta(days=2)  # not 172800 hours
    assert tokens.client_id == "web"
    assert not tokens.expires_within(300, NOW + timedelta(days=2, seconds=-301))
    assert tokens.expires_within(300, NOW + timedelta(days=2, seconds=-299))


def test_token_response_without_refresh_token_keeps_the_old_one() -> None:
    body = {"access_token": "a", "expires_in": 60}
    tokens = TokenSet.from_token_response(
        body, now=NOW, client_id="web", previous_refresh_token="old"
    )
    assert tokens.refresh_token == "old"


def test_token_response_expiry_falls_back_to_the_jwt() -> None:
    exp = int((NOW + timedelta(hours=1)).timestamp())
    tokens = TokenSet.from_token_response(
        {"access_token": jwt({"exp": exp})}, now=NOW, client_id="w"
    )
    assert tokens.expires_at == NOW + timedelta(hours=1)


def test_token_response_without_access_token() -> None:
    with pytest.raises(ValueError, match="access_token"):
        TokenSet.from_token_response({"refresh_token": "r"}, now=NOW, client_id="w")


def test_supplied_tokens_read_the_jwt_expiry() -> None:
    exp = int((NOW + timedelta(hours=47)).timestamp())
    tokens = TokenSet.supplied(access_token=jwt({"exp": exp, "sub": "x"}))
    assert tokens.expires_at == NOW + timedelta(hours=47)
    assert TokenSet.supplied(refresh_token="r").expires_at is None
    with pytest.raises(InvalidInput, match="access token, a refresh token"):
        TokenSet.supplied()


@pytest.mark.parametrize(
    "token", [None, "", "opaque", "a.b.c", "a.bm90IGpzb24.c", jwt({"exp": "x"})]
)
def test_jwt_expiry_of_non_jwts_is_unknown(token: str | None) -> None:
    assert jwt_expiry(token) is None


def test_tokens_and_passwords_stay_out_of_repr() -> None:
    tokens = TokenSet(access_token="SECRET-A", refresh_token="SECRET-R")
    creds = Credentials(username="me", password="SECRET-P", method=LoginMethod.PKCE)
    assert "SECRET" not in repr(tokens) + str(tokens) + repr(creds)
    # ...but they are stored in full for the caller to persist.
    assert TokenSet.model_validate(tokens.model_dump(mode="json")) == tokens


def test_credentials_validation() -> None:
    assert Credentials(username="u", password="p", method="password").method is LoginMethod.PASSWORD  # type: ignore[arg-type]
    assert not Credentials(username="u", password="p").can_login
    with pytest.raises(InvalidInput, match="needs a username and password"):
        Credentials(username="u", method=LoginMethod.PKCE)
    with pytest.raises(InvalidInput, match="unknown Peloton login method 'oauth'"):
        Credentials(username="u", password="p", method="oauth")  # type: ignore[arg-type]


# --- config ---------------------------------------------------------------------------------


def test_config_defaults_are_pelotons_and_follow_settings() -> None:
    default = PelotonConfig()
    assert default.auth_url == "https://auth.onepeloton.com"
    assert default.web_client_id == "WVoJxVDdPoFx4RNewvvg6ch2mZ7bwnsM"
    assert default.redirect_uri == "https://members.onepeloton.com/callback"
    settings = Settings(peloton_api_url="http://localhost:9000/", peloton_concurrency=9)
    config = PelotonConfig.from_settings(settings, max_attempts=2)
    assert config.api_url == "http://localhost:9000"  # trailing slash dropped
    assert (config.concurrency, config.max_attempts) == (9, 2)


@pytest.mark.parametrize(
    "bad", [{"concurrency": 0}, {"timeout_s": 0}, {"max_attempts": 0}, {"every_n": 61}]
)
def test_config_validation(bad: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        PelotonConfig(**bad)  # type: ignore[arg-type]


# --- parsers ----------------------------------------------------------------------------------


def test_parse_hidden_form() -> None:
    html = """<html><body>
      <form method="post" name="hiddenform" action="https://auth.test/login/callback">
        <input type="hidden" name="wa" value="wsignin1.0">
        <input type="hidden" name="wresult" value="eyJ&amp;x">
        <input type="hidden" name="wctx" value='{"strategy":"auth0"}'>
        <input type="hidden" name="empty">
        <noscript><input type="submit" value="Submit"></noscript>
      </form>
      <form action="/other"><input name="not" value="this"></form>
    </body></html>"""
    action, fields = parse_hidden_form(html) or ("", {})
    assert action == "https://auth.test/login/callback"
    assert fields == {
        "wa": "wsignin1.0",
        "wresult": "eyJ&x",
        "wctx": '{"strategy":"auth0"}',
        "empty": "",
    }
    assert parse_hidden_form("<p>no form</p>") is None
    assert parse_hidden_form('<form><input name="a" value="b"></form>') is None  # no action


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("120", 120.0),
        (" 2.5 ", 2.5),
        ("-3", 0.0),
        (format_datetime(NOW + timedelta(seconds=45), usegmt=True), 45.0),
        (format_datetime(NOW - timedelta(seconds=45), usegmt=True), 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize(
    ("status", "body", "error", "code"),
    [
        (
            403,
            {"error": "invalid_grant", "error_description": "Wrong"},
            NeedsReauthentication,
            "invalid_grant",
        ),
        (400, {"error": "invalid_request"}, NeedsReauthentication, "invalid_request"),
        (401, {"error": "access_denied"}, NeedsReauthentication, "access_denied"),
        (401, {"code": "invalid_user_password"}, NeedsReauthentication, "invalid_user_password"),
        (401, b"", NeedsReauthentication, None),
        (429, {"error": "too_many_attempts"}, NeedsReauthentication, "too_many_attempts"),
        (429, {"error": "rate"}, RateLimited, None),
        (403, b"error code: 1015", RateLimited, None),
        # A 403 without an OAuth error code and without a mark of throttling: not throttling.
        (403, b"<html>Forbidden</html>", UnexpectedResponse, None),
        (403, b"", UnexpectedResponse, None),
        (
            403,
            {"message": "Access forbidden. Endpoint no longer accepting requests."},
            PelotonForbidden,
            None,
        ),
        (503, b"", TransientError, None),
        (418, b"", UnexpectedResponse, None),
    ],
)
def test_auth_error_mapping(
    status: int, body: dict[str, str] | bytes, error: type[Exception], code: str | None
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    mapped = auth_error(httpx.Response(status, content=content), "token refresh", NOW)
    assert type(mapped) is error
    assert isinstance(mapped, ExternalServiceError)
    if isinstance(mapped, NeedsReauthentication):
        assert mapped.error_code == code
    assert "token refresh" in str(mapped)


CLOUDFLARE = {"server": "cloudflare", "cf-ray": "8f00000000000000-EWR"}
PELOTON_403 = {"status": 403, "error_code": 3030, "message": "You do not have permission"}
CLOUDFLARE_1015 = {
    "status": 403,
    "title": "Error 1015: You are being rate limited",
    "error_code": 1015,
    "error_name": "rate_limited",
    "retryable": True,
    "retry_after": 30,
    "ray_id": "8f00000000000000",
}
CLOUDFLARE_1020 = {
    "status": 403,
    "title": "Error 1020: Access denied",
    "error_code": 1020,
    "error_name": "access_denied",
    "retryable": False,
    "ray_id": "8f00000000000000",
}


@pytest.mark.parametrize(
    ("status", "body", "headers", "error", "retry_after", "says"),
    [
        # Throttling, by its marks.
        (403, b"error code: 1015", CLOUDFLARE, RateLimited, None, "Cloudflare (error 1015)"),
        (429, b"error code: 1015", {}, RateLimited, None, "Cloudflare (error 1015)"),
        (403, CLOUDFLARE_1015, CLOUDFLARE, RateLimited, 30.0, "Cloudflare (error 1015)"),
        (403, b"<html>Just a moment...</html>", CLOUDFLARE, RateLimited, None, "Cloudflare"),
        (403, b"", {"cf-ray": "8f00-EWR"}, RateLimited, None, "Cloudflare (HTTP 403)"),
        (403, b"", {"retry-after": "120"}, RateLimited, 120.0, "HTTP 403"),
        (429, PELOTON_403, {"retry-after": "5"}, RateLimited, 5.0, "HTTP 429"),
        # Peloton's own refusal: through Cloudflare or not, its JSON says it is one.
        (403, PELOTON_403, CLOUDFLARE, PelotonForbidden, None, "You do not have permission"),
        (403, PELOTON_403, {}, PelotonForbidden, None, "HTTP 403"),
        # A Cloudflare block is a refusal too (its page, or its JSON), not throttling.
        (403, CLOUDFLARE_1020, CLOUDFLARE, PelotonForbidden, None, "error 1020"),
        (403, b"<p>error code: 1020</p>", CLOUDFLARE, PelotonForbidden, None, "error 1020"),
        # No marks at all: an answer we cannot read.
        (403, b"", {}, UnexpectedResponse, None, "empty body"),
        (403, b'{"status": 403, "mess', {}, UnexpectedResponse, None, "could not read"),
        (403, b"\xff\xfe\x00garbage", {"server": "nginx"}, UnexpectedResponse, None, "read"),
        (403, b"[403]", {}, UnexpectedResponse, None, "could not read"),
    ],
)
def test_api_403_mapping(
    status: int,
    body: dict[str, object] | bytes,
    headers: dict[str, str],
    error: type[Exception],
    retry_after: float | None,
    says: str,
) -> None:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.Response(status, content=content, headers=headers)
    mapped = api_error(response, "GET /api/me", NOW)
    assert type(mapped) is error, mapped
    assert says in str(mapped) and "GET /api/me" in str(mapped)
    if isinstance(mapped, RateLimited):
        assert mapped.retry_after == retry_after
    if isinstance(mapped, PelotonForbidden):  # whose refusal it was
        assert mapped.cloudflare_code == (1020 if "1020" in says else None)
    # Whoever maps Auth0's answers reads the same marks (Auth0 has no OAuth code here).
    assert type(auth_error(response, "token refresh", NOW)) is error
