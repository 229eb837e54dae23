"""Who is calling: the API key dependency every ``/v1`` router declares.

``Authorized`` checks the key and its role against the request: any active key may read (GET,
HEAD); only admin keys may change anything. ``AdminOnly`` also refuses read-only keys on reads
(managing keys).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth.service import Caller, Unauthenticated, authorize, keys_checked
from service.deps import RuntimeDep
from service.throttle import client_address

READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key: `pelosync apikey create --name NAME [--read-only]`.",
)


async def current_key(
    request: Request,
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    # Not in the request's session: checked keys are remembered briefly (see
    # ``service.auth.service``), and a lookup or a last-used write is a statement of its own.
    presented = credentials.credentials if credentials else None
    client = client_address(request)
    # No key at all is no guess: only wrong keys count (service.throttle).
    if presented and not keys_checked.vouches_for(presented, runtime.clock()):
        runtime.auth_failures.check(client)
    try:
        key = await keys_checked.verify(runtime.sessions, presented, runtime.clock())
    except Unauthenticated:
        if presented:
            runtime.auth_failures.failed(client)
        raise
    authorize(key, write=request.method not in READ_METHODS)
    request.state.api_key_id = key.id
    return key


async def admin_key(key: Annotated[Caller, Depends(current_key)]) -> Caller:
    authorize(key, write=True)
    return key


Authorized = Annotated[Caller, Depends(current_key)]
AdminOnly = Annotated[Caller, Depends(admin_key)]
