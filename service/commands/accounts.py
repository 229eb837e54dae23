"""``pelosync account``: link, list, pause, resume, update, delete Peloton accounts."""

from __future__ import annotations

from typing import Annotated

import typer

from service.accounts import linking
from service.accounts import service as accounts_service
from service.accounts.models import Account, AccountStatus, AuthMethod
from service.accounts.repository import AccountRepository
from service.commands.common import run, setup
from service.errors import InvalidInput, NotFound
from service.migrate import check_current
from service.runtime import open_runtime

app = typer.Typer(help="Linked Peloton accounts.", no_args_is_help=True)


@app.command("link")
def link(
    label: Annotated[str | None, typer.Option(help="A name for the account.")] = None,
    refresh_token: Annotated[
        str | None, typer.Option(envvar="PELOTON_REFRESH_TOKEN", help="Peloton refresh token.")
    ] = None,
    access_token: Annotated[
        str | None, typer.Option(envvar="PELOTON_ACCESS_TOKEN", help="Peloton access token.")
    ] = None,
    username: Annotated[str | None, typer.Option(help="Peloton username or email.")] = None,
    method: Annotated[
        AuthMethod, typer.Option(help="With a username: password grant or scripted web login.")
    ] = AuthMethod.PASSWORD,
) -> None:
    """Link an account with tokens (recommended) or a username and password."""
    settings = setup("ERROR")
    if not (refresh_token or access_token or username):
        raise InvalidInput(
            "give --refresh-token (recommended), --access-token, or --username (the password "
            "is then asked for)"
        )
    password: str | None = None
    if username and not (refresh_token or access_token):
        password = typer.prompt("Peloton password", hide_input=True)
    request = linking.LinkRequest(
        label=label,
        refresh_token=refresh_token,
        access_token=access_token,
        username=username,
        password=password,
        method=method if username else None,
    )

    async def go() -> tuple[int, str, str | None]:
        async with open_runtime(settings) as rt:
            await check_current(rt.engine)
            async with rt.sessions() as session, session.begin():
                account = await linking.link(rt, session, request)
                return account.id, account.peloton_user_id, account.peloton_username

    account_id, user_id, name = run(go())
    typer.echo(f"linked account {account_id}: Peloton user {name or user_id}")


# One row of `account list`: status is the link's health (active, needs_reauth, ...);
# polling says whether the account was paused.
_ACCOUNT_ROW = "{:>4}  {:24}  {:12}  {:7}  {:>8}  {:17}  {}"


def _next_poll(account: Account) -> str:
    """When the scheduler polls the account next; a paused or parked account waits for you."""
    if account.status == AccountStatus.NEEDS_REAUTH:  # resuming alone would not help
        return "after reauth"
    if account.paused:
        return "when resumed"
    return f"{account.next_poll_at:%Y-%m-%d %H:%M}Z"


@app.command("list")
def list_accounts() -> None:
    """List linked accounts with their status (never their secrets)."""
    settings = setup("ERROR")

    async def go() -> list[str]:
        async with open_runtime(settings) as rt:
            await check_current(rt.engine)
            async with rt.sessions() as session:
                repo = AccountRepository(session)
                rows = await repo.all()
                counts = await repo.workout_counts([a.id for a in rows])
        return [
            _ACCOUNT_ROW.format(
                a.id,
                a.label[:24],
                a.status,
                "paused" if a.paused else "polling",
                counts.get(a.id, 0),
                _next_poll(a),
                (a.last_error or "")[:60],
            ).rstrip()
            for a in rows
        ]

    lines = run(go())
    if not lines:
        typer.echo("no accounts linked yet: pelosync account link")
        return
    header = _ACCOUNT_ROW.format(
        "ID", "LABEL", "STATUS", "POLLING", "WORKOUTS", "NEXT POLL", "LAST ERROR"
    )
    typer.echo("\n".join([header.rstrip(), *lines]))


def _set_paused(account_id: int, paused: bool) -> None:
    settings = setup("ERROR")

    async def go() -> None:
        async with open_runtime(settings) as rt:
            await check_current(rt.engine)
            async with rt.sessions() as session, session.begin():
                account = await AccountRepository(session).get(account_id)
                if account is None:
                    raise NotFound(f"account {account_id} not found")
                account.paused = paused
                if not paused:
                    account.next_poll_at = rt.clock()

    run(go())
    typer.echo(f"account {account_id} {'paused' if paused else 'resumed'}")


@app.command("pause")
def pause(account_id: int) -> None:
    """Stop polling an account (its workouts and deliveries stay)."""
    _set_paused(account_id, True)


@app.command("resume")
def resume(account_id: int) -> None:
    """Resume polling an account now."""
    _set_paused(account_id, False)


@app.command("update")
def update(
    account_id: int,
    include_external: Annotated[
        bool | None,
        typer.Option(
            "--include-external/--exclude-external",
            help="Deliver (or not: the default) the workouts Peloton imported from other "
            "services such as Garmin; sending them back duplicates them there.",
        ),
    ] = None,
) -> None:
    """Change an account's settings."""
    settings = setup("ERROR")
    if include_external is None:
        raise InvalidInput("nothing to change: give --include-external or --exclude-external")

    async def go() -> None:
        async with open_runtime(settings) as rt:
            await check_current(rt.engine)
            async with rt.sessions() as session, session.begin():
                await accounts_service.update(
                    rt, session, account_id, {"include_external": include_external}
                )

    run(go())
    verb = "delivers" if include_external else "does not deliver"
    typer.echo(f"account {account_id} {verb} imported workouts fetched from now on")


@app.command("delete")
def delete(
    account_id: int,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete an account with its workouts, deliveries and sync history."""
    settings = setup("ERROR")

    async def describe() -> str:
        """What is about to go, named, or NotFound before anyone is asked."""
        async with open_runtime(settings) as rt:
            await check_current(rt.engine)
            async with rt.sessions() as session:
                repo = AccountRepository(session)
                account = await repo.get(account_id)
                if account is None:
                    raise NotFound(f"account {account_id} not found")
                workouts = (await repo.workout_counts([account_id])).get(account_id, 0)
        return f"account {account_id} ({account.label}) with its {workouts} workouts"

    if not yes and not typer.confirm(f"Delete {run(describe())} and their deliveries?"):
        raise InvalidInput("not deleted")

    async def go() -> None:
        async with open_runtime(settings) as rt:
            await check_current(rt.engine)
            async with rt.sessions() as session, session.begin():
                # What was delivered is remembered, so a re-link does not send it again.
                await accounts_service.delete(session, account_id)

    run(go())
    typer.echo(f"account {account_id} deleted")
