"""``/v1/api-keys``: the keys that may call this API (admin keys only)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, status

from service.auth import service
from service.auth.deps import admin_key
from service.auth.models import Role
from service.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyOut
from service.deps import RuntimeDep, SessionDep
from service.openapi import errors
from service.schemas import IdPath

router = APIRouter(
    prefix="/v1/api-keys",
    tags=["api keys"],
    dependencies=[Depends(admin_key)],
    responses=errors(401, 403, 422),
)


@router.get("")
async def list_keys(session: SessionDep, include_revoked: bool = False) -> list[ApiKeyOut]:
    """Every key: name, role, first characters, when created and last used (never the key)."""
    return [
        ApiKeyOut.model_validate(k)
        for k in await service.list_keys(session, include_revoked=include_revoked)
    ]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_key(body: ApiKeyCreate, runtime: RuntimeDep, session: SessionDep) -> ApiKeyCreated:
    """Create a key. The answer holds the key itself, shown only this once."""
    row, key = await service.create_key(
        session, name=body.name, role=Role(body.role), now=runtime.clock()
    )
    return ApiKeyCreated(**ApiKeyOut.model_validate(row).model_dump(), key=key)


@router.delete("/{key_id}", responses=errors(404, 409))
async def revoke_key(key_id: IdPath, runtime: RuntimeDep, session: SessionDep) -> ApiKeyOut:
    """Revoke a key at once (409 for the last admin key: create another first)."""
    return ApiKeyOut.model_validate(await service.revoke(session, key_id, runtime.clock()))
