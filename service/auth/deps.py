"""Who is calling: the API key dependency every ``/v1`` router declares.

``Authorized`` checks the key and its role against the request: any active key may read (GET,
HEAD); only admin keys may change anything. ``AdminOnly`` also refuses read-only keys on reads
(managing keys).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth.models import ApiKey
from service.auth.service import authenticate, authorize
from service.deps import RuntimeDep, SessionDep

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key: `pelosync apikey create --name NAME [--read-only]`.",
)


async def current_key(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKey:
    key = await authenticate(
        session, credentials.credentials if credentials else None, runtime.clock()
    )
    authorize(key, write=request.method not in READ_METHODS)
    request.state.api_key_id = key.id
    return key


async def admin_key(key: Annotated[ApiKey, Depends(current_key)]) -> ApiKey:
    authorize(key, write=True)
    return key


Authorized = Annotated[ApiKey, Depends(current_key)]
AdminOnly = Annotated[ApiKey, Depends(admin_key)]
