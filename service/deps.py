"""Dependencies shared by every router, as ``Annotated`` aliases.

The database session is the request's one unit of work: services only ``flush``; the session
commits here once the handler has returned (before the response is sent, so a failed commit is
an error response, not a lost write) and rolls back on any exception. Handlers that only read
take ``ReadConnectionDep`` instead: no transaction and no session at all.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from service.config import Settings
from service.db import read_connection
from service.runtime import Runtime


# Dependencies are ``async def`` even when they do not await: FastAPI runs a plain ``def``
# dependency in its thread pool, a thread hand-off on every request.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_settings(runtime: RuntimeDep) -> Settings:
    return runtime.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    async with runtime.sessions() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        else:
            await session.commit()


# scope="function": the commit runs before the response is sent.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_read_connection(runtime: RuntimeDep) -> AsyncIterator[AsyncConnection]:
    async with read_connection(runtime.engine) as connection:
        yield connection


# For handlers that only read (the lists): a bare connection without a transaction, so no
# BEGIN and COMMIT round trips on PostgreSQL and no ORM session to set up (see
# ``read_connection``). A handler that writes takes ``SessionDep``.
ReadConnectionDep = Annotated[AsyncConnection, Depends(get_read_connection, scope="function")]
