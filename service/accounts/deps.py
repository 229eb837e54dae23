"""The accounts domain's request dependency: the process's poll engine (``app.state.poll_job``).

Kept out of :mod:`service.deps` so that routers which never trigger a poll do not depend on
the poll engine (docs/architecture.md, "Layers").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.accounts.jobs import PollJob


async def get_poll_job(request: Request) -> PollJob:
    job: PollJob = request.app.state.poll_job
    return job


PollJobDep = Annotated[PollJob, Depends(get_poll_job)]
