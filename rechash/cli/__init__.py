"""The ``rechash`` command line: a thin typer app over the public API.

Each area registers its commands in its own module (``data``, ``model``, ...). Every error
a user can cause prints ONE line on stderr, ``error: ...``, and exits with status 2,
without a traceback: errors raised on purpose (:class:`rechash.errors.RechashError`) and
usage errors (an unknown option or command, a missing or malformed value: ``error:
rechash fit: --bits: 'abc' is not a valid integer``). Bare ``rechash``, or a command group
without its subcommand, is a usage error too (``missing command``; ``--help`` lists them).
``rechash --version`` prints ``rechash <version>``.

``-v``/``--verbose`` (INFO; ``-vv`` DEBUG) and ``-q``/``--quiet`` (errors only, no status lines
or progress bars) set the log level of every command (:mod:`rechash.cli.common` holds the
conventions every command shares: column options, ``--threads``, logging).

Importing this package and its command modules loads no torch, numba or pandas: commands
import what they compute with when they run, so ``rechash --help`` is fast.

typer (>= 0.29) vendors click: its usage errors derive from :class:`typer.TyperException`
and carry ``ctx``, ``param`` or ``option_name``; click itself is not a dependency.
"""

from __future__ import annotations

import sys

import typer

from rechash.cli.app import app  # noqa: E402  (the app the command modules register on)
from rechash.errors import RechashError


def _register() -> None:
    for name in ("data", "model", "retrieval", "compare", "demo"):
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
    from rechash.cli.common import escape_help, logging_scope, plain_values

    _register()
    command = typer.main.get_command(app)
    escape_help(command)
    try:
        with logging_scope():  # -v / -q apply to this run only
            command(args=argv, prog_name="rechash", standalone_mode=False)
    except RechashError as exc:
        print(f"error: {plain_values(' '.join(str(exc).split()))}", file=sys.stderr)
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
