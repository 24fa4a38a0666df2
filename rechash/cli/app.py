"""The typer app and its root options (``--version``, ``-v``, ``-q``); command modules
register on it, :mod:`rechash.cli` runs it."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="rechash",
    help="Learned binary codes for cheap recommendation candidate generation.",
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

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
    verbose: int = typer.Option(
        0,
        "--verbose",
        "-v",
        count=True,
        show_default=False,
        help="Log progress (INFO: teacher tuning, epochs); -vv: DEBUG.",
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Errors only: no status lines, no progress bars."),
) -> None:
    """Learned binary codes for cheap recommendation candidate generation."""
    from rechash.cli.common import configure_logging
    from rechash.errors import ConfigError

    if verbose and quiet:
        raise ConfigError("--verbose and --quiet exclude each other")
    configure_logging(verbose, quiet)
