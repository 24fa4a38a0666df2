"""The ``rechash`` command line: a thin typer app over the public API.

Each area registers its commands in its own module (``data``, ``model``, ...). Errors
that a user can cause (:class:`rechash.errors.RechashError`) print one line and exit 2.
"""
from __future__ import annotations

import sys

import typer

from rechash.errors import RechashError

app = typer.Typer(
    name="rechash",
    help="Learned binary codes for cheap recommendation candidate generation.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from rechash.cli import data  # noqa: F401  (each module adds its commands to `app`)

    for name in ("model", "retrieval", "compare", "demo"):
        try:
            __import__(f"rechash.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"rechash.cli.{name}":
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script."""
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except RechashError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return 2
        if isinstance(exc, click.exceptions.Abort):
            return 1
        raise
    return 0
