"""One workout's file has one name and one mode everywhere: ``pelosync convert``, the API's
download and signed link, the folder export (default template) and the webhook payload."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from service.app import create_app
from service.deliveries.models import DeliveryState
from service.destinations.models import Destination
from service.files.signing import signed_path
from tests.deliveries.conftest import Engine
from tests.destinations.receiver import Answer


def convert_all(bundle: Path, out: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-c", "from service.cli import main; main()", "convert", str(bundle)]
        + ["--format", "all", "-o", str(out)],
        capture_output=True,
        timeout=60,
        check=False,
        env={**os.environ, "PELOSYNC_LOG_LEVEL": "WARNING"},
    )


async def test_one_name_and_one_mode_everywhere(engine: Engine, secret: str) -> None:
    receiver = await engine.receiver(secret, Answer(status=204))
    await engine.webhook(receiver.url(), secret, formats=("fit", "tcx"))
    root = engine.runtime.settings.data_dir / "export"
    folder = await engine.add(  # the default template
        Destination(name="folder", kind="directory", config={"root": str(root)}, formats=["fit"])
    )
    await engine.link_and_poll()
    await engine.run()
    deliveries = await engine.deliveries()
    assert {d.state for d in deliveries} == {DeliveryState.SUCCEEDED}
    workouts = await engine.workouts()
    sent = {
        (r.payload["data"]["workout"]["id"], f["format"]): f["filename"]
        for r in receiver.requests
        for f in r.payload["data"]["files"]
    }
    assert len(sent) == 2 * len(workouts)

    app = create_app(
        engine.runtime.settings, runtime=engine.runtime, migrate=False, scheduler=False
    )
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        for workout in workouts.values():
            bundle = engine.runtime.settings.data_dir / f"{workout.id}.json"
            await asyncio.to_thread(bundle.write_text, json.dumps(workout.bundle()))
            out = engine.runtime.settings.data_dir / f"convert-{workout.id}"
            result = await asyncio.to_thread(convert_all, bundle, out)
            assert result.returncode == 0, result.stderr
            converted = {p.suffix.lstrip("."): p for p in out.iterdir()}
            for fmt in ("fit", "tcx"):
                name = sent[(workout.id, fmt)]
                assert converted[fmt].name == name  # pelosync convert
                assert converted[fmt].stat().st_mode & 0o777 == 0o644
                # The signed link (the API's download serves through the same function:
                # tests/api/test_end_to_end.py compares it with the webhook's name).
                response = await client.get(signed_path(engine.runtime, workout.id, fmt)[0])
                assert response.status_code == 200, response.text
                disposition = response.headers["content-disposition"]
                assert disposition == f'attachment; filename="{name}"'
            exported = next(
                Path(d.external_id or "")
                for d in deliveries
                if d.destination_id == folder.id and d.workout_id == workout.id
            )
            assert exported.name == sent[(workout.id, "fit")]  # the folder export
            assert exported.stat().st_mode & 0o777 == 0o644
