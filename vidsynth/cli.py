"""The `vidsynth` command line: thin click commands over the public functions."""
from __future__ import annotations

import json
from pathlib import Path

import click

from vidsynth.errors import VidsynthError


class _Group(click.Group):
    """Turns any VidsynthError into one `Error: ...` line and exit status 1."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except VidsynthError as exc:
            raise click.ClickException(str(exc)) from None


@click.group(cls=_Group)
@click.version_option(package_name="vidsynth")
def cli() -> None:
    """Generate, export and serve MoCoGAN videos."""


@cli.command("import")
@click.argument("generator", type=click.Path(dir_okay=False))
@click.argument("motion", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Weights directory to write.")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
def import_command(generator: str, motion: str, out: str, force: bool) -> None:
    """Convert a legacy Generator_I + LSTM/GRU checkpoint pair into vidsynth weights."""
    from vidsynth.weights.format import save_weights
    from vidsynth.weights.legacy import import_legacy

    model = import_legacy(generator, motion)
    provenance = {"source": "legacy import", "generator": Path(generator).name, "motion": Path(motion).name}
    save_weights(model, out, provenance, force=force)
    c = model.config
    click.echo(f"imported {c.cell.upper()} ({c.motion_mode}) {c.image_size}x{c.image_size} generator -> {out}")


@cli.command("info")
@click.argument("weights", default="default")
def info_command(weights: str) -> None:
    """Print a model's config and parameter count (WEIGHTS: default, demo or a directory)."""
    from vidsynth.weights import load_model
    from vidsynth.weights.format import parameter_count

    model = load_model(weights)
    report = {
        "config": model.config.to_dict(),
        "parameters": parameter_count(model),
        "provenance": getattr(model, "provenance", {}),
    }
    click.echo(json.dumps(report, indent=2))


def main() -> None:
    cli(prog_name="vidsynth")
