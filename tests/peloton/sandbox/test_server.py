"""Serving: the in-process helper starts and stops cleanly; the CLI prints what to use."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx
import pytest
import typer
from typer.testing import CliRunner

from service.peloton.sandbox import SandboxConfig, SandboxState, run_sandbox
from service.peloton.sandbox.cli import sandbox
from tests.support.waiting import wait_until


async def test_run_sandbox_stops_cleanly_even_with_a_request_pending() -> None:
    state = SandboxState(SandboxConfig(users=1, workouts=1))
    tasks_before = asyncio.all_tasks()
    async with httpx.AsyncClient() as http:
        async with run_sandbox(state) as url:
            assert url.startswith("http://127.0.0.1:")
            await http.post(f"{url}/_sandbox/faults", json={"kind": "timeout", "delay_s": 600})
            pending = asyncio.create_task(http.get(f"{url}/api/me"))
            # Poll the sandbox until the request has reached it (it has no event for that).
            await wait_until(lambda: not state.faults.rules, "the request to reach it", 30, 0.01)
            # Leaving the block must not wait for the 600 s sleep: it wakes and answers.
        assert (await pending).status_code == 401
    assert asyncio.all_tasks() == tasks_before
    host, port = url.removeprefix("http://").split(":")
    with (
        pytest.raises(ConnectionRefusedError),
        socket.create_connection((host, int(port)), timeout=1),
    ):
        pass


async def test_two_sandboxes_side_by_side() -> None:
    first, second = SandboxState(SandboxConfig(seed=1)), SandboxState(SandboxConfig(seed=2))
    async with run_sandbox(first) as url_a, run_sandbox(second) as url_b:
        assert url_a != url_b
        async with httpx.AsyncClient() as http:
            users_a = (await http.get(f"{url_a}/_sandbox/users")).json()
            users_b = (await http.get(f"{url_b}/_sandbox/users")).json()
    assert users_a[0]["user_id"] != users_b[0]["user_id"]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(sandbox)
    return app


def test_cli_prints_users_passwords_and_refresh_tokens() -> None:
    result = CliRunner().invoke(
        _app(), ["--users", "3", "--workouts", "4", "--seed", "9", "--port", "0", "--no-serve"]
    )
    assert result.exit_code == 0, result.output
    state = SandboxState(SandboxConfig(seed=9, users=3, workouts=4))
    for account in state.accounts.values():
        line = next(
            x for x in result.output.splitlines() if x.startswith(f"user {account.user.username} ")
        )
        assert f"password {account.password}" in line
        assert "workouts 4" in line
        token = state.tokens.tokens_of(account.user.user_id)["refresh_tokens"][0]["token"]
        assert f"refresh_token {token}" in result.output
    assert "PELOSYNC_PELOTON_API_URL=http://127.0.0.1:" in result.output


def test_cli_json_output() -> None:
    result = CliRunner().invoke(
        _app(), ["--users", "1", "--port", "0", "--password", "hunter2", "--json", "--no-serve"]
    )
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert info["env"]["PELOSYNC_PELOTON_AUTH_URL"] == info["base_url"]
    assert info["users"][0]["password"] == "hunter2"
    assert info["users"][0]["workouts"] == 20


def test_cli_rejects_bad_arguments() -> None:
    negative = CliRunner().invoke(_app(), ["--users", "-1", "--no-serve"])
    assert negative.exit_code == 2
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = CliRunner().invoke(_app(), ["--port", str(port), "--no-serve"])
    assert taken.exit_code == 2
    assert "cannot listen" in taken.output
