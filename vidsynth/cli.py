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


@cli.command("export")
@click.option("--weights", default="default", show_default=True, help="default, demo or a weights directory.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Export directory to write.")
@click.option("--formats", default="torchscript,onnx", show_default=True, help="Comma-separated: torchscript, onnx, pt2 (AOTInductor, needs g++; compiles for minutes).")
@click.option("--opset", type=int, default=None, help="ONNX opset (13-20; default 17).")
@click.option("--dtype", default="fp32", show_default=True, help="Image generator precision: fp32, fp16 or bf16.")
@click.option("--onnx-exporter", default=None, help="torchscript or dynamo (torch.export-based). Default: torchscript where this torch has it.")
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
def export_command(weights: str, out: str, formats: str, opset: int | None, dtype: str, onnx_exporter: str | None, force: bool) -> None:
    """Write TorchScript, ONNX (and .pt2) artifacts plus manifest.json, validated against eager PyTorch."""
    from vidsynth.export import export_weights

    requested = tuple(name.strip() for name in formats.split(",") if name.strip())
    manifest = export_weights(weights, out, requested, opset=opset, dtype=dtype, force=force, onnx_exporter=onnx_exporter)
    validation = manifest["validation"]
    click.echo(f"exported {', '.join(manifest['files'])} ({dtype}) -> {out}")
    worst = ", ".join(f"{name} {error:.2g}" for name, error in validation["max_abs"].items())
    click.echo(f"max abs error vs eager (tolerance {validation['tolerance']['max_abs']:g}): {worst}")
    if "psnr_db_vs_fp32" in validation:
        psnr = ", ".join(f"{name} {value} dB" for name, value in validation["psnr_db_vs_fp32"].items())
        click.echo(f"PSNR vs fp32 (minimum {validation['min_psnr_db']:g} dB): {psnr}")


@cli.command("train")
@click.option("--data", type=click.Path(file_okay=False), help="Folder of clips (videos or image strips), one class per subfolder.")
@click.option("--out", "run_dir", required=True, type=click.Path(file_okay=False), help="Run directory: checkpoint/, weights/, samples/.")
@click.option("--image-size", default=64, show_default=True, type=int, help="Frame size (64 or 96).")
@click.option("--cell", default="gru", show_default=True, help="Motion cell: gru or lstm.")
@click.option("--motion-mode", default="feedback", show_default=True, help="same-input or feedback.")
@click.option("--ngf", default=32, show_default=True, type=int, help="Generator width.")
@click.option("--ndf", default=32, show_default=True, type=int, help="Critic width.")
@click.option("--steps", type=int, help="Total generator updates (with --resume: the new total) [default: 10000; 3 with --dry-run].")
@click.option("--batch", default=16, show_default=True, type=int, help="Videos per batch.")
@click.option("--clip-frames", default=16, show_default=True, type=int, help="Frames per training clip.")
@click.option("--frame-step", default=2, show_default=True, type=int, help="Use every n-th frame of the real clips.")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--bf16", is_flag=True, help="bfloat16 autocast.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=0, show_default=True, type=int, help="torch CPU threads (0: torch's default).")
@click.option("--checkpoint-every", default=250, show_default=True, type=int, help="Steps between checkpoints.")
@click.option("--sample-every", default=500, show_default=True, type=int, help="Steps between sample sheets.")
@click.option("--max-minutes", type=float, help="Checkpoint and stop after this much wall time.")
@click.option("--resume", is_flag=True, help="Continue the run in --out from its checkpoint (its stored settings).")
@click.option("--dry-run", is_flag=True, help="A few steps on synthetic data (no --data needed).")
@click.option("--per-step-motion-norm", is_flag=True,
              help="Normalise motion codes with per-step batch statistics in training (deployment cannot).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_command(data, run_dir, image_size, cell, motion_mode, ngf, ndf, steps, batch, clip_frames, frame_step,
                  device, bf16, seed, threads, checkpoint_every, sample_every, max_minutes, resume, dry_run,
                  per_step_motion_norm, quiet) -> None:
    """Train a MoCoGAN generator; its latest weights land in OUT/weights."""
    from vidsynth.train.config import TrainConfig
    from vidsynth.train.loop import summary_line, train

    if steps is None:
        steps = 3 if dry_run else 10000
    config = TrainConfig(
        data=data, image_size=image_size, cell=cell, motion_mode=motion_mode, ngf=ngf, ndf=ndf, steps=steps,
        batch=batch, clip_frames=clip_frames, frame_step=frame_step, device=device, bf16=bf16, seed=seed,
        threads=threads, checkpoint_every=checkpoint_every, sample_every=sample_every, dry_run=dry_run,
        freeze_motion_norm=not per_step_motion_norm,
    )
    command = config.command_line(run_dir, max_minutes, resume)
    record = train(config, run_dir, resume=resume, max_minutes=max_minutes, command=command, progress=not quiet)
    click.echo(summary_line(record))
    click.echo(f"weights: {Path(run_dir) / 'weights'}")


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


@cli.command("bench")
@click.option("--quick", is_flag=True, help="Small shapes and few repeats: a smoke run in under a minute.")
@click.option("--out", default="bench/results", show_default=True, type=click.Path(file_okay=False), help="Directory for results.json, results.md and latency.png.")
@click.option("--weights", default="demo", show_default=True, help="default, demo or a weights directory.")
@click.option("--backend", "backends", multiple=True, help="Backend to time (repeatable): reference, eager, torchscript, onnxruntime, torch.compile, optimized, pt2. Default: all (--quick: all but torch.compile and pt2).")
@click.option("--precision", "precisions", multiple=True, help="Precision (repeatable): fp32, bf16, fp16; default all three (--quick: fp32, bf16). On CPU, fp16 runs where exported (onnxruntime).")
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option("--threads", default=2, show_default=True, type=int, help="Intra-op threads for torch and onnxruntime alike.")
@click.option("--batch", "batches", multiple=True, type=int, help="Batch size (repeatable); default 1, 8, 32.")
@click.option("--frames", "frames", multiple=True, type=int, help="Frames per video (repeatable); default 16, 64, 256.")
@click.option("--pause-pid-file", type=click.Path(dir_okay=False), help="Pause (SIGSTOP) the process whose PID this file holds while measuring; it is always continued afterwards.")
@click.option("--wait-quiet", "wait_quiet_s", default=0.0, show_default=True, type=float, help="Wait up to this many seconds for other processes to go (nearly) idle before measuring.")
def bench_command(quick, out, weights, backends, precisions, device, threads, batches, frames, pause_pid_file, wait_quiet_s) -> None:
    """Time every backend against the reference code and the machine's matmul peak."""
    try:
        from bench.run import run_benchmark
    except ImportError as exc:
        raise click.ClickException(f"the benchmark code is not importable ({exc}); run from a source checkout: pip install -e '.[bench]'") from None

    run_benchmark(
        weights=weights, out=out, quick=quick, backends=backends or None, precisions=precisions or None, device=device,
        threads=threads, batches=batches or None, frames=frames or None, pause_pid_file=pause_pid_file,
        wait_quiet_s=wait_quiet_s, log=click.echo,
    )


def main() -> None:
    cli(prog_name="vidsynth")
