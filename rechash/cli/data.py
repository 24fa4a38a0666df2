"""``rechash data ...``: inspect and split interaction logs."""
from __future__ import annotations

from pathlib import Path

import typer

from rechash.cli import app

data_app = typer.Typer(help="Inspect and split interaction logs.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("stats")
def stats(path: Path, format: str = typer.Option(None, "--format", help="File format (detected when omitted).")) -> None:
    """Users, items, interactions and density of an interaction file."""
    from rechash.data import load

    inter = load(path, format=format)
    typer.echo(f"users: {inter.n_users:,}\nitems: {inter.n_items:,}\ninteractions: {inter.nnz:,}")
