"""``pelosync secrets``: make a key, re-encrypt stored secrets after a key rotation."""

from __future__ import annotations

import typer
from sqlalchemy import select

from service.accounts.models import Account
from service.commands.common import run, setup
from service.crypto import generate_key
from service.destinations.models import Destination
from service.migrate import check_current
from service.runtime import open_runtime

app = typer.Typer(help="Encryption keys for secrets at rest.", no_args_is_help=True)


@app.command("generate-key")
def generate_key_command() -> None:
    """Print a new key for PELOSYNC_SECRET_KEY."""
    typer.echo(generate_key())


@app.command("rotate")
def rotate() -> None:
    """Re-encrypt every stored secret with the first key of PELOSYNC_SECRET_KEY.

    Rotation: put the new key first (PELOSYNC_SECRET_KEY=NEW,OLD), run this, then drop the old key.
    """
    settings = setup("ERROR")

    async def go() -> int:
        count = 0
        async with open_runtime(settings) as rt:
            await check_current(rt.engine)
            box = rt.secrets
            async with rt.sessions() as session, session.begin():
                for account in (await session.execute(select(Account))).scalars():
                    if account.tokens_encrypted:
                        account.tokens_encrypted = box.rotate(account.tokens_encrypted)
                        count += 1
                    if account.credentials_encrypted:
                        account.credentials_encrypted = box.rotate(account.credentials_encrypted)
                        count += 1
                for destination in (await session.execute(select(Destination))).scalars():
                    if destination.secrets_encrypted:
                        destination.secrets_encrypted = box.rotate(destination.secrets_encrypted)
                        count += 1
        return count

    typer.echo(f"re-encrypted {run(go())} secrets with the newest key")
