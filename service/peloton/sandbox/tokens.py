"""In-memory Auth0 look-alike: access/refresh tokens, login transactions, authorization codes.

Refresh tokens rotate: every successful refresh invalidates the token it used (as Auth0 does
with rotation on), so a client that forgets to store the new one fails its next refresh with
``invalid_grant``. Access tokens look like JWTs (a client may read ``exp``) but are opaque to
the sandbox: it only looks them up.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from service.errors import PelosyncError


class OAuthError(PelosyncError):
    """An Auth0-style error answer: ``{"error": ..., "error_description": ...}``."""

    def __init__(self, status_code: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status_code = status_code
        self.error = error
        self.description = description

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_like(claims: dict[str, Any]) -> str:
    """A JWT-shaped string (RS256 header, real claims, random signature)."""
    header = {"alg": "RS256", "typ": "JWT", "kid": "sandbox"}
    parts = (json.dumps(header).encode(), json.dumps(claims).encode(), secrets.token_bytes(32))
    return ".".join(_b64(p) for p in parts)


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier``."""
    return _b64(hashlib.sha256(verifier.encode("ascii")).digest())


@dataclass(slots=True)
class AccessGrant:
    user_id: str
    client_id: str
    scope: str
    expires_at: float


@dataclass(slots=True)
class RefreshGrant:
    user_id: str
    client_id: str
    scope: str


@dataclass(slots=True)
class LoginTransaction:
    """One ``/authorize`` request on its way through the login page to a code."""

    client_id: str
    redirect_uri: str
    scope: str
    audience: str
    client_state: str
    nonce: str | None
    code_challenge: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    state: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    user_id: str | None = None
    wresult: str | None = None


@dataclass(slots=True)
class CodeGrant:
    transaction: LoginTransaction
    user_id: str
    expires_at: float


class TokenStore:
    """All tokens the sandbox has issued. ``clock`` returns epoch seconds."""

    def __init__(self, clock: Callable[[], float], *, expires_in: int, audience: str) -> None:
        self.clock = clock
        self.expires_in = expires_in
        self.audience = audience
        self.access: dict[str, AccessGrant] = {}
        self.refresh: dict[str, RefreshGrant] = {}
        self.transactions: dict[str, LoginTransaction] = {}
        self.codes: dict[str, CodeGrant] = {}

    # --- issuing -------------------------------------------------------------------------

    def add_refresh_token(self, token: str, user_id: str, client_id: str, scope: str) -> None:
        self.refresh[token] = RefreshGrant(user_id, client_id, scope)

    def issue(
        self, user_id: str, client_id: str, scope: str, *, issuer: str, nonce: str | None = None
    ) -> dict[str, Any]:
        """A token answer; a refresh token only if ``offline_access`` was asked for."""
        now = int(self.clock())
        expires_at = now + self.expires_in
        access = jwt_like(
            {
                "iss": issuer,
                "sub": f"auth0|{user_id}",
                "aud": [self.audience, f"{issuer}userinfo"],
                "iat": now,
                "exp": expires_at,
                "scope": scope,
                "azp": client_id,
                "http://onepeloton.com/user_id": user_id,
                "jti": secrets.token_hex(8),
            }
        )
        self.access[access] = AccessGrant(user_id, client_id, scope, float(expires_at))
        id_claims: dict[str, Any] = {
            "iss": issuer,
            "sub": f"auth0|{user_id}",
            "aud": client_id,
            "iat": now,
            "exp": now + 36000,
        }
        if nonce:
            id_claims["nonce"] = nonce
        answer: dict[str, Any] = {
            "access_token": access,
            "id_token": jwt_like(id_claims),
            "scope": scope,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
        }
        if "offline_access" in scope.split():
            refresh = f"v1.M{secrets.token_urlsafe(48)}"
            self.add_refresh_token(refresh, user_id, client_id, scope)
            answer["refresh_token"] = refresh
        return answer

    def use_refresh_token(self, token: str, client_id: str, *, issuer: str) -> dict[str, Any]:
        """Rotate: the old token dies, a new pair is issued. Raises :class:`OAuthError`."""
        grant = self.refresh.get(token)
        if grant is None or grant.client_id != client_id:
            raise OAuthError(403, "invalid_grant", "Unknown or invalid refresh token.")
        del self.refresh[token]
        return self.issue(grant.user_id, client_id, grant.scope, issuer=issuer)

    # --- checking ------------------------------------------------------------------------

    def user_for(self, access_token: str) -> tuple[str | None, bool]:
        """``(user_id, expired)`` for an access token; ``(None, False)`` if unknown."""
        grant = self.access.get(access_token)
        if grant is None:
            return None, False
        return grant.user_id, grant.expires_at <= self.clock()

    # --- admin ---------------------------------------------------------------------------

    def expire_all(self) -> int:
        """Make every access token expired now (refresh tokens keep working)."""
        now = self.clock()
        for grant in self.access.values():
            grant.expires_at = min(grant.expires_at, now)
        return len(self.access)

    def revoke_user(self, user_id: str) -> int:
        """Drop every token of ``user_id`` (its refresh tokens then fail with invalid_grant)."""
        before = len(self.access) + len(self.refresh)
        self.access = {k: v for k, v in self.access.items() if v.user_id != user_id}
        self.refresh = {k: v for k, v in self.refresh.items() if v.user_id != user_id}
        return before - len(self.access) - len(self.refresh)

    def tokens_of(self, user_id: str) -> dict[str, list[dict[str, Any]]]:
        now = self.clock()
        return {
            "refresh_tokens": [
                {"token": token, "client_id": g.client_id, "scope": g.scope}
                for token, g in self.refresh.items()
                if g.user_id == user_id
            ],
            "access_tokens": [
                {"token": token, "expires_at": int(g.expires_at), "expired": g.expires_at <= now}
                for token, g in self.access.items()
                if g.user_id == user_id
            ],
        }
