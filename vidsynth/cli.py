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


def _generate_options(command):
    """Adds the options of vidsynth.runtime.options.GENERATE_OPTIONS (shared with the
    torch-free `python -m vidsynth.runtime.ort`)."""
    from vidsynth.runtime.options import GENERATE_OPTIONS

    for option in reversed(GENERATE_OPTIONS):
        command = click.option(
            option.flag, option.dest, type=option.type, default=option.default, metavar=option.metavar,
            help=option.help, show_default=option.default is not None,
        )(command)
    return command


@cli.command("generate")
@_generate_options
def generate_command(**values) -> None:
    """Make videos (video_000.mp4, ... or one sheet.png) from weights or export artifacts.

    With no options: the default weights, a few short mp4 videos in ./videos."""
    from vidsynth.runtime.generate import generate_videos
    from vidsynth.runtime.request import GenerateRequest

    result = generate_videos(GenerateRequest(**values, progress=True), notify=lambda m: click.echo(m, err=True))
    click.echo(f"{len(result.paths)} file(s) from {result.backend} ({result.detail}) on {result.device}:", err=True)
    for path in result.paths:
        click.echo(str(path))


def main() -> None:
    cli(prog_name="vidsynth")
