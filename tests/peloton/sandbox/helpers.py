"""Small helpers shared by the sandbox tests."""

from __future__ import annotations

from typing import Any

import httpx

from service.peloton.sandbox import SandboxState


def first_refresh_token(users: list[dict[str, Any]], index: int = 0) -> str:
    token = users[index]["refresh_tokens"][0]["token"]
    assert isinstance(token, str)
    return token


async def login(http: httpx.AsyncClient, state: SandboxState, index: int = 0) -> dict[str, str]:
    """Bearer headers for user ``index``, obtained like a client would: from its refresh token."""
    users = (await http.get("/_sandbox/users")).json()
    answer = await http.post(
        "/oauth/token",
        json={
            "grant_type": "refresh_token",
            "client_id": state.config.web_client_id,
            "refresh_token": first_refresh_token(users, index),
        },
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def user_id(state: SandboxState, index: int = 0) -> str:
    return list(state.accounts)[index]
