"""The ``pelosync`` command line (Typer).

Only the command being run is imported (the service's full import graph takes seconds on a
small machine). Every command turns a :class:`PelosyncError` into one line on stderr and exit
code 2; nothing is half-written (files are written to a temporary name and renamed into place).
"""

from __future__ import annotations

import importlib
import sys

import typer

from service import __version__
from service.errors import PelosyncError

app = typer.Typer(
    name="pelosync",
    help="Sync Peloton workouts to webhooks, files and fitness services.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# name -> (module, attribute, is a group of sub-commands)
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "serve": ("service.commands.serve", "serve", False),
    "sync": ("service.commands.serve", "sync", False),
    "convert": ("service.commands.convert", "convert", False),
    "sandbox": ("service.peloton.sandbox.cli", "sandbox", False),
    "account": ("service.commands.accounts", "app", True),
    "db": ("service.commands.db", "app", True),
    "secrets": ("service.commands.secrets", "app", True),
    "apikey": ("service.commands.apikeys", "app", True),
}


@app.callback()
def root() -> None:
    """Sync Peloton workouts to webhooks, files and fitness services."""


@app.command()
def version() -> None:
    """Print pelosync's version."""
    typer.echo(__version__)


def _register(names: list[str]) -> None:
    for name in names:
        module_name, attribute, group = COMMANDS[name]
        target = getattr(importlib.import_module(module_name), attribute)
        if group:
            app.add_typer(target, name=name)
        else:
            app.command(name)(target)


def build(argv: list[str]) -> typer.Typer:
    """The app with the command named in ``argv`` registered (all of them for help)."""
    wanted = next((a for a in argv if not a.startswith("-")), None)
    if wanted == "version":
        return app
    _register([wanted] if wanted in COMMANDS else list(COMMANDS))
    return app


def main() -> None:
    """Console entry point: Typer handles usage errors; ours become one clean line."""
    try:
        build(sys.argv[1:])()
    except PelosyncError as exc:
        typer.echo(f"pelosync: error: {exc.message}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("pelosync: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        typer.echo(f"pelosync: error: {exc.strerror or exc}{where}", err=True)
        sys.exit(2)
    except Exception as exc:
        if not _is_database_error(exc):
            raise
        cause = getattr(exc, "orig", None) or exc
        typer.echo(f"pelosync: error: database: {str(cause).splitlines()[0]}", err=True)
        sys.exit(1)


def _is_database_error(exc: Exception) -> bool:
    from sqlalchemy.exc import SQLAlchemyError  # only loaded when something went wrong

    return isinstance(exc, SQLAlchemyError)
