"""The `vidsynth` command line: thin click commands over the public functions."""

from __future__ import annotations

import json
import logging
from dataclasses import fields
from pathlib import Path
from typing import Any

import click

from vidsynth.errors import VidsynthError
from vidsynth.model.config import field_kinds
from vidsynth.runtime.request import GenerateRequest
from vidsynth.serve.options import LiveLimits, ServeLimits, ServeOptions
from vidsynth.signals import EXIT_STATUS, Terminated, sigterm_as_interrupt
from vidsynth.train.options import TrainCommand, command_line, config_from_options, typed_settings

logger = logging.getLogger(__name__)


class _Group(click.Group):
    """Turns any VidsynthError into one `Error: ...` line and exit status 1; SIGTERM cleans up
    like Ctrl-C and exits 143."""

    def invoke(self, ctx: click.Context):
        try:
            with sigterm_as_interrupt():
                return super().invoke(ctx)
        except VidsynthError as exc:
            raise click.ClickException(str(exc)) from None
        except Terminated:
            click.echo("Error: terminated (SIGTERM); partial output was removed", err=True)
            ctx.exit(EXIT_STATUS)


class _StderrHandler(logging.Handler):
    """Writes the message alone, warnings and errors saying which they are ("warning: ..."), to
    the stderr of the moment (click's test runner swaps it per invocation)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            prefix = f"{record.levelname.lower()}: " if record.levelno >= logging.WARNING else ""
            click.echo(prefix + self.format(record), err=True)
        except Exception:
            self.handleError(record)


@click.group(cls=_Group)
@click.version_option(package_name="vidsynth")
@click.option("-v", "--verbose", is_flag=True, help="Also print debug messages.")
@click.option("-q", "--quiet", is_flag=True, help="Print only warnings and errors (results still print).")
def cli(verbose: bool, quiet: bool) -> None:
    """Generate, export and serve MoCoGAN videos."""
    if verbose and quiet:
        raise click.UsageError("-v/--verbose and -q/--quiet contradict each other: pass one")
    package = logging.getLogger("vidsynth")  # one plain stderr handler on vidsynth's loggers
    if not any(isinstance(handler, _StderrHandler) for handler in package.handlers):
        package.addHandler(_StderrHandler())
    package.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)


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
    click.echo(
        f"imported {c.cell.upper()} ({c.motion_mode}) {c.image_size}x{c.image_size} generator -> {out}"
    )


@cli.command("info")
@click.argument("weights", default="default")
@click.option(
    "--hardware",
    is_flag=True,
    help="Print what this machine offers (CPU flags, runtimes, GPU) and the backends auto picks.",
)
def info_command(weights: str, hardware: bool) -> None:
    """Print a model's config and parameter count (WEIGHTS: default, demo or a directory)."""
    if hardware:
        from vidsynth.artifacts.contract import FILES
        from vidsynth.runtime.hardware import auto_backend, probe_hardware

        found = probe_hardware()
        picks = {}
        for source, formats in (("weights", None), ("artifacts", frozenset(FILES))):
            try:
                picks[source] = dict(zip(("backend", "why"), auto_backend(formats, "auto", found)))
            except VidsynthError as exc:
                picks[source] = {"backend": None, "why": str(exc)}
        click.echo(json.dumps({**found.describe(), "auto_backend": picks}, indent=2))
        return
    from vidsynth.model.generator import parameter_count
    from vidsynth.weights import load_model

    model = load_model(weights)
    report = {
        "config": model.config.to_dict(),
        **({"categories": model.config.category_labels()} if model.config.n_categories else {}),
        "parameters": parameter_count(model.config),
        "provenance": getattr(model, "provenance", {}),
    }
    click.echo(json.dumps(report, indent=2))


@cli.command("export")
@click.option("--weights", default="default", show_default=True, help="default, demo or a weights directory.")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Export directory to write.")
@click.option(
    "--formats",
    default="torchscript,onnx",
    show_default=True,
    help="Comma-separated: torchscript, onnx, pt2 (AOTInductor, needs g++; compiles for minutes).",
)
@click.option("--opset", type=int, default=None, help="ONNX opset (13-20; default 17).")
@click.option(
    "--dtype", default="fp32", show_default=True, help="Image generator precision: fp32, fp16 or bf16."
)
@click.option(
    "--onnx-exporter",
    help="torchscript or dynamo (torch.export-based). Default: torchscript where this torch has it.",
)
@click.option("--force", is_flag=True, help="Replace an existing output directory.")
@click.option(
    "--no-optimize",
    is_flag=True,
    help="ONNX graphs of the literal model, without the inference rewrites "
    "(folded batch norms, fused recurrence).",
)
def export_command(weights: str, out: str, formats: str, no_optimize: bool, **options: Any) -> None:
    """Write TorchScript, ONNX (and .pt2) artifacts plus manifest.json, validated against eager PyTorch."""
    from vidsynth.export import export_artifacts

    requested = tuple(name.strip() for name in formats.split(",") if name.strip())
    manifest = export_artifacts(weights, out, requested, optimize=not no_optimize, **options)
    validation = manifest["validation"]
    click.echo(f"exported {', '.join(manifest['files'])} ({options['dtype']}) -> {out}")
    if manifest["rewrites"]:
        click.echo(f"ONNX graph rewrites: {', '.join(manifest['rewrites'])}")
    worst = ", ".join(f"{name} {error:.2g}" for name, error in validation["max_abs"].items())
    click.echo(f"max abs error vs eager (tolerance {validation['tolerance']['max_abs']:g}): {worst}")
    if "psnr_db_vs_fp32" in validation:
        psnr = ", ".join(f"{name} {value} dB" for name, value in validation["psnr_db_vs_fp32"].items())
        click.echo(f"PSNR vs fp32 (minimum {validation['min_psnr_db']:g} dB): {psnr}")


@cli.command("train", cls=TrainCommand)
def train_command(
    run_dir: str, max_minutes: float | None, resume: bool, quiet: bool, **settings: Any
) -> None:
    """Train a MoCoGAN generator; its latest weights land in OUT/weights."""
    from vidsynth.train.loop import resumed_config, summary_line, train

    ctx = click.get_current_context()
    if resume:  # the stored settings, changed only where an option was typed
        config = resumed_config(run_dir, typed_settings(ctx, settings))
    else:
        config = config_from_options(settings)
    record = train(
        config, run_dir, resume=resume, max_minutes=max_minutes, command=command_line(ctx), progress=not quiet
    )
    click.echo(summary_line(record))
    click.echo(f"weights: {Path(run_dir) / 'weights'}")
    if record.get("signal"):  # checkpointed, then stopped as the signal asked: say so in the status
        ctx.exit(128 + record["signal"])


class _CategoryOption(click.Option):
    """`--category`, whose help also names the default weights' categories (read when shown)."""

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        from vidsynth.model.config import ModelConfig
        from vidsynth.weights import DEFAULT_WEIGHTS_DIR

        record = super().get_help_record(ctx)
        try:
            stored = json.loads((DEFAULT_WEIGHTS_DIR / "config.json").read_text())
            names = ModelConfig.from_dict(stored["model"]).category_names
        except (OSError, ValueError, KeyError, TypeError, VidsynthError):
            names = ()  # help text must not fail; loading the weights says what is wrong
        if record is None or not names:
            return record
        listed = ", ".join(f"{k} = {name}" for k, name in enumerate(names))
        return record[0], f"{record[1]} (default weights: {listed})"


def _field_option(source: type, field: str, help: str, option: str | None = None, **extra: Any):
    """A click option (`--FIELD`, or `--OPTION`) for dataclass `source`'s `field`: its type
    (less None) and its default."""
    kind = field_kinds(source)[field][0]
    default = next(spec.default for spec in fields(source) if spec.name == field)
    return click.option(
        "--" + (option or field).replace("_", "-"), field, type=kind, default=default,
        show_default=default is not None, help=help, **extra,
    )  # fmt: skip


def _request_options(*names: str):
    """One click option per GenerateRequest field that has command-line help (only `names`,
    when given): the request declares each option (default, help, metavar) once."""

    def decorate(command):
        for spec in reversed(fields(GenerateRequest)):
            if "help" in spec.metadata and (not names or spec.name in names):
                command = _field_option(
                    GenerateRequest, spec.name, spec.metadata["help"],
                    metavar=spec.metadata["metavar"],
                    cls=_CategoryOption if spec.name == "category" else click.Option,
                )(command)  # fmt: skip
        return command

    return decorate


_MODEL_OPTIONS = ("weights", "artifacts", "backend", "device")  # what serve and batch share with generate


def _model_request(values: dict[str, Any]):
    """The GenerateRequest of the model options among a command's `values` (removed from them)."""
    return GenerateRequest(**{name: values.pop(name) for name in _MODEL_OPTIONS})


@cli.command("generate")
@_request_options()
def generate_command(**values) -> None:
    """Make videos (video_000.mp4, ... or one sheet.png) from weights or export artifacts.

    With no options: the default weights, a few short mp4 videos in ./videos.
    `--out - --num-videos 1` streams one video to stdout (pipe it into ffplay -)."""
    from vidsynth.export import export_weights
    from vidsynth.runtime.generate import generate_videos

    result = generate_videos(GenerateRequest(**values, progress=True), exporter=export_weights)
    made = f"{len(result.paths)} file(s)" if result.paths else "one video to stdout"
    ending = ":" if result.paths else ""
    logger.info("%s from %s (%s) on %s%s", made, result.backend, result.detail, result.device, ending)
    for path in result.paths:
        click.echo(str(path))


@cli.command("bench")
@click.option(
    "--quick", is_flag=True, help="Small shapes and few repeats: a smoke run of minutes, not the full matrix."
)
@click.option(
    "--out",
    default="bench-results",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Directory for results.json, results.md and latency.png.",
)
@click.option("--force", is_flag=True, help="Replace results already in --out.")
@click.option("--weights", default="demo", show_default=True, help="default, demo or a weights directory.")
@click.option(
    "--backend",
    "backends",
    multiple=True,
    help=(
        "Backend to time (repeatable): reference, eager, torchscript, onnxruntime, onnxruntime-literal, "
        "openvino, openvino-literal, torch.compile, optimized, pt2 (-literal: the --no-optimize ONNX "
        "graphs). Default: all (--quick: all but torch.compile, pt2 and the -literal rows)."
    ),
)
@click.option(
    "--precision",
    "precisions",
    multiple=True,
    help=(
        "Precision (repeatable): fp32, bf16, fp16; default all three (--quick: fp32, bf16). "
        "On CPU, fp16 runs where exported (onnxruntime)."
    ),
)
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda.")
@click.option(
    "--threads", default=2, show_default=True, help="Intra-op threads for torch and onnxruntime alike."
)
@click.option(
    "--batch", "batches", multiple=True, type=int, help="Batch size (repeatable); default 1, 8, 32."
)
@click.option("--frames", multiple=True, type=int, help="Frames per video (repeatable); default 16, 64, 256.")
def bench_command(**options) -> None:
    """Time every backend against the reference code and the machine's matmul peak."""
    from vidsynth.bench.run import run_benchmark

    run_benchmark(**options)  # an option not given (an empty tuple) runs its default values


@cli.command("serve")
@_request_options(*_MODEL_OPTIONS)
@click.option("--address", metavar="HOST:PORT", help="Join this Ray cluster instead of starting a local Ray.")
@click.option(
    "--replicas",
    type=click.IntRange(min=1),
    help="Model replicas (spread over the cluster) [default: as many as fit: CPUs / --cpus-per-replica].",
)
@click.option(
    "--cpus-per-replica", default=1.0, show_default=True, help="CPUs (and intra-op threads) per replica."
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@_field_option(ServeLimits, "max_videos", "Most num_videos per request.")
@_field_option(ServeLimits, "max_total_frames", "Most frames x num_videos per request.")
@_field_option(ServeLimits, "max_batch", "Requests grouped into one model call.")
@_field_option(ServeLimits, "max_queued", "Requests waiting for a replica before 503.")
@_field_option(ServeLimits, "timeout_s", "Seconds before a request gets 504.", option="timeout")
@_field_option(LiveLimits, "max_streams", "Live streams at once before 503.")
@_field_option(
    LiveLimits,
    "max_frames",
    "Most frames per live stream (an endless one ends there) [default: no cap].",
    option="stream_max_frames",
)
@_field_option(
    LiveLimits,
    "lead_s",
    "Seconds of video a live stream may run ahead of real time, beyond one chunk.",
    option="stream_lead",
)
def serve_command(
    address, host, port, replicas, cpus_per_replica, max_streams, max_frames, lead_s, **values
) -> None:
    """Serve videos over HTTP (Ray Serve): POST /v1/videos, POST /v1/streams (live), a web page at /."""
    from vidsynth.serve.server import run_server

    model = _model_request(values)
    live = LiveLimits(max_streams=max_streams, max_frames=max_frames, lead_s=lead_s)
    limits = ServeLimits(max_ongoing=values["max_batch"], **values)
    options = ServeOptions(
        model=model, replicas=replicas, cpus_per_replica=cpus_per_replica, limits=limits, live=live
    )
    run_server(options, address, host, port)


@cli.command("batch")
@click.option(
    "--out", required=True, type=click.Path(file_okay=False), help="Directory of the videos and index.jsonl."
)
@click.option("--count", required=True, type=int, help="Videos in the dataset (video i uses seed + i).")
@_request_options(*_MODEL_OPTIONS)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of video 0.")
@click.option("--frames", default=16, show_default=True, type=int, help="Frames per video.")
@click.option("--fps", default=8.0, show_default=True, type=float, help="Frames per second written into mp4.")
@click.option(
    "--format", default="mp4", show_default=True, help="mp4, or npy: (frames, H, W, 3) uint8 arrays."
)
@click.option(
    "--category",
    cls=_CategoryOption,
    type=int,
    help="Conditional models: every video's category [default: drawn per video].",
)
@click.option("--videos-per-call", default=8, show_default=True, type=int, help="Videos per model call.")
@click.option("--workers", type=int, help="Actors [default: as many as fit, a CPU per node left free].")
@click.option("--cpus-per-worker", default=1.0, show_default=True)
@click.option("--address", metavar="HOST:PORT", help="Run on this Ray cluster instead of a local Ray.")
@click.option(
    "--force", is_flag=True, help="Start over: remove the videos, index and job.json an earlier job wrote."
)
def batch_command(address, force, **values) -> None:
    """Make a dataset of COUNT videos with Ray Data (resumable: a rerun with the same parameters
    skips the finished videos)."""
    from vidsynth.batch.job import INDEX_NAME, BatchJob, run_batch

    job = BatchJob(model=_model_request(values), **values)
    done = run_batch(job, address, force=force)
    click.echo(f"{len(done)} videos in {job.out}, listed in {Path(job.out) / INDEX_NAME}")


def main() -> None:
    cli(prog_name="vidsynth")
