"""``pelosync sandbox``: print the sandbox's users and tokens, then serve it in the foreground.

The lead's CLI registers :func:`sandbox` as a command; it also runs standalone:
``python -m service.peloton.sandbox.cli --users 3``.
"""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer

from service.errors import PelosyncError
from service.peloton.sandbox.server import ForegroundServer, base_url, bind, uvicorn_config
from service.peloton.sandbox.state import SandboxConfig, SandboxState


def describe(state: SandboxState, url: str) -> dict[str, object]:
    """What the CLI prints: the base URL, the settings to use, every user and token."""
    return {
        "base_url": url,
        "seed": state.config.seed,
        "env": {"PELOSYNC_PELOTON_API_URL": url, "PELOSYNC_PELOTON_AUTH_URL": url},
        "admin": f"{url}/_sandbox/",
        "users": [state.describe_user(a) for a in state.accounts.values()],
    }


def _print_text(info: dict[str, object]) -> None:
    typer.echo(f"Peloton sandbox at {info['base_url']} (seed {info['seed']})")
    env = info["env"]
    assert isinstance(env, dict)
    for key, value in env.items():
        typer.echo(f"  {key}={value}")
    typer.echo(f"  admin API: {info['admin']}  (docs: {info['base_url']}/_sandbox/docs)")
    users = info["users"]
    assert isinstance(users, list)
    for user in users:
        typer.echo(
            f"user {user['username']}  password {user['password']}  user_id {user['user_id']}"
            f"  units {user['units']}  timezone {user['timezone']}  workouts {user['workouts']}"
        )
        for token in user["refresh_tokens"]:
            typer.echo(f"  refresh_token {token['token']}  (client {token['client_id']})")


def sandbox(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port (0: any free port).", min=0, max=65535)] = 8787,
    users: Annotated[int, typer.Option(help="Users to generate.", min=0)] = 2,
    workouts: Annotated[int, typer.Option(help="Workouts per user.", min=0)] = 20,
    seed: Annotated[int, typer.Option(help="Seed: same seed, same data.")] = 1,
    anchor: Annotated[
        int | None,
        typer.Option(
            help="Unix time the generated histories end at (default: now, so the newest "
            "workouts fall within pelosync's default backfill).",
            min=0,
        ),
    ] = None,
    latency_ms: Annotated[float, typer.Option(help="Delay added to every request.", min=0)] = 0,
    expires_in: Annotated[int, typer.Option(help="Access-token lifetime, s.", min=1)] = 172_800,
    in_progress: Annotated[
        bool, typer.Option(help="Make each user's newest workout an in-progress one.")
    ] = False,
    password: Annotated[
        str | None, typer.Option(help="One password for every user (default: one each).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the users as JSON.")] = False,
    serve: Annotated[bool, typer.Option(help="Serve after printing (--no-serve: exit).")] = True,
) -> None:
    """Run a Peloton-compatible sandbox server with generated users and workouts."""
    try:
        config = SandboxConfig(
            seed=seed,
            anchor=int(time.time()) if anchor is None else anchor,
            users=users,
            workouts=workouts,
            latency_ms=latency_ms,
            expires_in=expires_in,
            in_progress=in_progress,
            password=password,
        )
        state = SandboxState(config)
    except PelosyncError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    try:
        sock = bind(host, port)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        raise typer.Exit(2) from None
    info = describe(state, base_url(sock))
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        _print_text(info)
    if not serve:
        sock.close()
        return
    ForegroundServer(uvicorn_config(state, foreground=True)).run(sockets=[sock])


def main() -> None:
    typer.run(sandbox)


if __name__ == "__main__":
    main()
