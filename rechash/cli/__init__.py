"""The ``rechash`` command line: a thin typer app over the public API.

Each area registers its commands in its own module (``data``, ``model``, ...). Every error
a user can cause prints ONE line on stderr, ``error: ...``, and exits with status 2,
without a traceback: errors raised on purpose (:class:`rechash.errors.RechashError`) and
usage errors (an unknown option or command, a missing or malformed value: ``error:
rechash fit: --bits: 'abc' is not a valid integer``). Bare ``rechash``, or a command group
without its subcommand, is a usage error too (``missing command``; ``--help`` lists them).
``rechash --version`` prints ``rechash <version>``.

typer (>= 0.29) vendors click: its usage errors derive from :class:`typer.TyperException`
and carry ``ctx``, ``param`` or ``option_name``; click itself is not a dependency.
"""
from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

import typer

from rechash.errors import RechashError

app = typer.Typer(
    name="rechash",
    help="Learned binary codes for cheap recommendation candidate generation.",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        try:
            typer.echo(f"rechash {version('rechash')}")
        except PackageNotFoundError:  # running from a source tree that is not installed
            from rechash import __version__

            typer.echo(f"rechash {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Learned binary codes for cheap recommendation candidate generation."""


def _register() -> None:
    from rechash.cli import data  # noqa: F401  (each module adds its commands to `app`)

    for name in ("model", "retrieval", "compare", "demo"):
        try:
            __import__(f"rechash.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"rechash.cli.{name}":
                raise


def _usage_message(exc: typer.TyperException) -> str:
    """One line naming the command and the option of a (vendored) click usage error."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "rechash"
    param = getattr(exc, "param", None)
    option = getattr(exc, "option_name", None)
    message = exc.message
    if param is not None:
        option = "/".join(param.opts) if param.param_type_name == "option" else str(param.name).upper()
        message = message or f"missing {param.param_type_name}"
    elif option is None and getattr(exc, "param_hint", None):
        option = str(exc.param_hint)
    possibilities = getattr(exc, "possibilities", None)
    if option is not None and message.startswith("No such option"):
        message = "no such option" + (f" (did you mean {', '.join(sorted(possibilities))}?)" if possibilities else "")
    text = " ".join(message.split()).rstrip(".")
    return f"{where}: {option}: {text}" if option else f"{where}: {text}"


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script: runs the app, returns the exit status
    (0 success, 2 any error a user can cause, 1 aborted)."""
    _register()
    try:
        app(args=argv, prog_name="rechash", standalone_mode=False)
    except RechashError as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        return 1
    except typer.TyperException as exc:  # usage errors of typer's vendored click
        print(f"error: {_usage_message(exc)}", file=sys.stderr)
        return 2
    return 0
