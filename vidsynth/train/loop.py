"""The MoCoGAN training loop.

Each step: draw real clips and frames, generate B videos (content fixed per video, motion from
the recurrence, a random action category each), update the image critic on single frames and
the video critic on clips, then update the generator against both. Losses are the
non-saturating GAN losses on logits, with one-sided label smoothing and instance noise; with
categories both critics also classify real samples and the generator is rewarded when its
videos are classified as the category it was asked for (MoCoGAN's categorical critic).

All randomness comes from two seeded torch.Generators: one on the CPU for every draw that picks
data or codes, and one on the training device for the critics' instance noise (on a GPU, drawing
tens of MB of noise per step on the CPU would be the bottleneck). Their states, the networks and
the Adam moments are checkpointed, so a resumed run reproduces an uninterrupted one exactly.

With --bf16 autocast covers the image generator and the critics; the motion recurrence runs in
float32, as every exported artifact runs it. `train()` puts back the process-wide torch settings
it changes (thread count, cudnn autotuning) when it returns.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from vidsynth.errors import InputError, RuntimeBackendError, VidsynthError
from vidsynth.model.config import MAX_CATEGORY_NAME, is_category_name
from vidsynth.model.generator import VideoGenerator, build_model, seeded_init
from vidsynth.runtime.backend import choose_device
from vidsynth.runtime.hardware import probe_hardware, threads_problem
from vidsynth.runtime.output import check_output_dir, locked_directory
from vidsynth.signals import stop_requested
from vidsynth.train.checkpoint import (
    CHECKPOINT_DIR,
    LossLog,
    load_checkpoint,
    read_checkpoint_record,
    save_checkpoint,
)
from vidsynth.train.config import FIXED_ON_RESUME, TrainConfig
from vidsynth.train.data import ClipDataset, load_folder, synthetic_dataset
from vidsynth.train.discriminators import ImageDiscriminator, VideoDiscriminator
from vidsynth.train.memory import check_fits
from vidsynth.train.options import path_name, public_command, public_train_config
from vidsynth.train.sampler import ClipSampler
from vidsynth.train.sheets import render_videos, sheet, write_png

LOSS_NAMES = ("d_image", "d_video", "g_image", "g_video", "g_category")
BAR_LABELS = dict(zip(LOSS_NAMES, ("dI", "dV", "gI", "gV", "gC")))  # the progress bar's names
BAR_STYLE = {"dynamic_ncols": True, "mininterval": 2.0}  # as wide as the terminal, redrawn every 2 s at most
WEIGHTS_DIR = "weights"
SAMPLES_DIR = "samples"
SAMPLE_SEED = 1234  # fixed noise for the sample sheets, so sheets compare across steps
NOISE_SEED_OFFSET = 2  # the instance-noise generator is seeded with seed + this
# How many times as long a --bf16 training step takes as an fp32 one where bf16 is emulated,
# by the CPU's widest vector unit (measured with oneDNN capped below the bf16 instructions).
TRAIN_EMULATED_BF16_SLOWDOWN = {"avx512f": (2.0, "AVX-512"), "avx2": (16.0, "AVX2")}

logger = logging.getLogger(__name__)


@dataclass
class Trainer:
    """The networks, optimizers and random streams of one run, by the names checkpoints use."""

    config: TrainConfig
    networks: dict[str, torch.nn.Module]  # generator, image_critic, video_critic
    optimizers: dict[str, torch.optim.Optimizer]  # one Adam per network, by the same name
    generators: dict[str, torch.Generator]  # run (CPU: data and codes), noise (on `device`)
    device: torch.device

    @property
    def generator(self) -> VideoGenerator:
        return self.networks["generator"]


def resolve_device(name: str) -> torch.device:
    """The run's device, chosen as the runtime chooses (`auto`: CUDA when torch sees a GPU)."""
    return torch.device(choose_device(name, torch.cuda.is_available(), "torch sees no CUDA GPU").name)


def build_trainer(config: TrainConfig, n_categories: int, category_names: Sequence[str] = ()) -> Trainer:
    device = resolve_device(config.device)
    model_config = config.model_config(n_categories, category_names)
    networks: dict[str, torch.nn.Module] = {"generator": build_model(model_config, seed=config.seed)}
    critic_args = (model_config.nc, config.ndf, config.image_size, n_categories)
    with seeded_init(config.seed + 1):
        networks["image_critic"] = ImageDiscriminator(*critic_args)
        networks["video_critic"] = VideoDiscriminator(*critic_args)
    for network in networks.values():
        network.to(device).train()
    optimizers = {
        name: torch.optim.Adam(network.parameters(), lr=config.lr, betas=(config.beta1, config.beta2))
        for name, network in networks.items()
    }
    generators = {
        "run": torch.Generator().manual_seed(config.seed),
        "noise": torch.Generator(device=device).manual_seed(config.seed + NOISE_SEED_OFFSET),
    }
    return Trainer(config, networks, optimizers, generators, device)


def _autocast(config: TrainConfig, device: torch.device) -> torch.autocast:
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=config.bf16)


def _bce(logits: Tensor, target: float) -> Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def _noisy(x: Tensor, sigma: float, rng: torch.Generator) -> Tensor:
    if sigma <= 0:
        return x
    return x + sigma * torch.randn(x.shape, generator=rng, device=x.device, dtype=x.dtype)


def _update(optimizers: Sequence[torch.optim.Optimizer], loss: Tensor) -> None:
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for optimizer in optimizers:
        optimizer.step()


def train_step(t: Trainer, sampler: ClipSampler) -> dict[str, float]:
    """One critic update and one generator update; returns the step's losses."""
    c, dev, rng, noise = t.config, t.device, t.generators["run"], t.generators["noise"]
    g, image_critic, video_critic = t.generator, t.networks["image_critic"], t.networks["video_critic"]
    n_cat = g.config.n_categories
    real_video, real_video_labels = (x.to(dev) for x in sampler.videos(c.batch, rng))
    real_image, real_image_labels = (x.to(dev) for x in sampler.images(c.batch, rng))
    z_content = torch.randn(c.batch, c.d_content, generator=rng).to(dev)
    z_motion = torch.randn(c.batch, c.d_motion, generator=rng).to(dev)
    fake_labels = torch.randint(max(n_cat, 1), (c.batch,), generator=rng).to(dev)
    frame_pick = torch.randint(c.clip_frames, (c.batch,), generator=rng).to(dev)
    category = fake_labels if n_cat > 0 else None
    rows = torch.arange(c.batch, device=dev)
    sigma, w = c.instance_noise, c.category_weight

    for network in t.networks.values():
        network.train()
    g.motion.train(c.per_step_motion_norm)  # eval mode unless asked: normalised as deployed
    codes, _ = g.motion.rollout(g.initial_state(z_motion), c.clip_frames)  # float32 always
    with _autocast(c, dev):
        fake_video = g.render(codes, z_content, category)
    fake_image = fake_video[rows, frame_pick]  # one frame of each generated video

    def critic_loss(critic: torch.nn.Module, real: Tensor, labels: Tensor, fake: Tensor) -> Tensor:
        with _autocast(c, dev):
            real_logits, real_classes = critic(_noisy(real, sigma, noise))
            fake_logits, _ = critic(_noisy(fake.detach(), sigma, noise))
        loss = _bce(real_logits, c.real_label) + _bce(fake_logits, 0.0)
        return loss + w * F.cross_entropy(real_classes.float(), labels) if n_cat > 0 else loss

    d_image = critic_loss(image_critic, real_image, real_image_labels, fake_image)
    d_video = critic_loss(video_critic, real_video, real_video_labels, fake_video)
    _update((t.optimizers["image_critic"], t.optimizers["video_critic"]), d_image + d_video)

    with _autocast(c, dev):
        gen_i, gen_i_cls = image_critic(_noisy(fake_image, sigma, noise))
        gen_v, gen_v_cls = video_critic(_noisy(fake_video, sigma, noise))
    g_image, g_video = _bce(gen_i, 1.0), _bce(gen_v, 1.0)
    g_category = torch.zeros((), device=dev)
    if n_cat > 0:
        g_category = sum(F.cross_entropy(classes.float(), fake_labels) for classes in (gen_v_cls, gen_i_cls))
    _update((t.optimizers["generator"],), g_image + g_video + w * g_category)
    values = (d_image, d_video, g_image, g_video, g_category)
    return {name: float(v.detach()) for name, v in zip(LOSS_NAMES, values)}


def _hardware(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)}, {torch.get_num_threads()} torch CPU threads"
    return f"{probe_hardware().cpu_model}, {torch.get_num_threads()} torch threads"


def _checkpoint(t: Trainer, run_dir: Path, record: dict[str, Any]) -> None:
    """The checkpoint, and the generator's weights with their provenance."""
    from vidsynth.weights.format import save_weights

    save_checkpoint(run_dir, t.networks, t.optimizers, t.generators, record)
    provenance = {
        "source": "vidsynth train",
        "training_data": {**record["data"], "folder": path_name(record["data"]["folder"])},
        "steps": record["step"],
        "train_wall_time_s": round(record["elapsed_s"], 1),
        "hardware": record["hardware"],
        "command": [public_command(command) for command in record["command"]],
        "train_config": public_train_config(t.config.to_dict()),
    }
    save_weights(t.generator, run_dir / WEIGHTS_DIR, provenance, force=True)


def _category_names(data: ClipDataset) -> tuple[str, ...]:
    """The class folder names name the categories, unless one cannot label a category."""
    unusable = [name for name in data.classes if not is_category_name(name)]
    if unusable:
        logger.warning(
            "class folders %s cannot name categories (printable, at most %d characters): "
            "the categories are known by number only",
            ", ".join(repr(name) for name in unusable),
            MAX_CATEGORY_NAME,
        )
        return ()
    return tuple(data.classes)


@contextlib.contextmanager
def _torch_settings(config: TrainConfig) -> Iterator[None]:
    """The run's torch thread count and, on CUDA, cudnn autotuning (fixed shapes: the fastest
    convolutions are picked once), both put back on exit."""
    threads, benchmark = torch.get_num_threads(), torch.backends.cudnn.benchmark
    try:
        if config.threads > 0:
            torch.set_num_threads(config.threads)
        if resolve_device(config.device).type == "cuda":
            torch.backends.cudnn.benchmark = True
        yield
    finally:
        torch.set_num_threads(threads)
        torch.backends.cudnn.benchmark = benchmark


def train(
    config: TrainConfig,
    run_dir: str | os.PathLike,
    resume: bool = False,
    max_minutes: float | None = None,
    command: str | None = None,
    progress: bool = True,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Trains (or, with `resume`, continues) a run in `run_dir`; returns the final record.

    With `resume`, `config` is the run's stored TrainConfig (resumed_config) with any changes:
    those of FIXED_ON_RESUME are refused, the others are logged. `max_minutes` stops the run
    (after a checkpoint) once that much wall time has passed in this call; `command` is kept in
    the run's provenance.
    """
    run_dir = Path(run_dir)
    if problem := threads_problem(config.threads):
        raise InputError(problem)
    if not resume:
        check_output_dir(run_dir)
    made = not run_dir.exists()
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with locked_directory(run_dir):  # one run at a time writes into a run directory
            _check_run_dir(run_dir, resume, config)
            with _torch_settings(config), _allocation_errors(config):
                return _run(config, run_dir, resume, max_minutes, command, progress, on_step)
    except BaseException:
        if made and run_dir.is_dir() and not any(run_dir.iterdir()):
            run_dir.rmdir()  # nothing was written: leave no empty run directory behind
        raise


def _check_run_dir(run_dir: Path, resume: bool, config: TrainConfig) -> None:
    if resume:
        _log_resumed_settings(run_dir, resumed_config(run_dir).to_dict(), config)
    elif (run_dir / CHECKPOINT_DIR).exists():
        raise InputError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )
    elif (run_dir / WEIGHTS_DIR).exists() and any((run_dir / WEIGHTS_DIR).iterdir()):
        raise InputError(
            f"{run_dir / WEIGHTS_DIR} already exists and is not from a run (no checkpoint); "
            "training would replace it: choose another --out"
        )


@contextlib.contextmanager
def _allocation_errors(config: TrainConfig) -> Iterator[None]:
    """A failed allocation (beyond what check_fits estimated) as one error naming the settings."""
    try:
        yield
    except (MemoryError, RuntimeError) as exc:  # torch.OutOfMemoryError is a RuntimeError
        text = str(exc)
        oom = isinstance(exc, (torch.OutOfMemoryError, MemoryError))
        if not (oom or "can't allocate memory" in text or "out of memory" in text):
            raise
        raise InputError(
            f"training ran out of memory at --batch {config.batch} --ngf {config.ngf} --ndf {config.ndf}: "
            "lower them; the last checkpoint is kept"
        ) from None


def resumed_config(run_dir: str | os.PathLike, changes: dict[str, Any] | None = None) -> TrainConfig:
    """The TrainConfig stored with the run in `run_dir`, with `changes` (the settings given
    anew, e.g. the options typed on the command line) applied."""
    settings = read_checkpoint_record(Path(run_dir)).get("train_config")
    if not isinstance(settings, dict):
        raise InputError(f"the checkpoint in {run_dir} has a damaged train_config: not an object")
    try:
        return TrainConfig.from_dict({**settings, **(changes or {})})
    except (AttributeError, KeyError, TypeError, ValueError, VidsynthError) as exc:
        if changes:  # the stored settings are sound: a change is what is wrong
            resumed_config(run_dir)
            raise
        raise InputError(f"the checkpoint in {run_dir} has a damaged train_config: {exc}") from None


def _log_resumed_settings(run_dir: Path, stored: dict[str, Any], config: TrainConfig) -> None:
    changed = {name: (stored[name], new) for name, new in config.to_dict().items() if stored[name] != new}
    fixed = [name for name in changed if name in FIXED_ON_RESUME]
    if fixed:
        raise InputError(
            f"a resumed run keeps its {', '.join(fixed)} ("
            + ", ".join(f"stored {name}={stored[name]!r}" for name in fixed)
            + "); drop those options, or start a new run with another --out"
        )
    said = ", ".join(f"{name} {old!r} -> {new!r}" for name, (old, new) in changed.items())
    logger.info(
        "resuming %s with its stored settings, %s", run_dir, f"changed: {said}" if said else "none changed"
    )


def _run(
    config: TrainConfig,
    run_dir: Path,
    resume: bool,
    max_minutes: float | None,
    command: str | None,
    progress: bool,
    on_step: Callable[[int, dict[str, float]], None] | None,
) -> dict[str, Any]:
    if config.dry_run:
        data = synthetic_dataset(n_categories=2, size=config.image_size, n_frames=max(24, config.span))
    else:
        data = load_folder(config.data)
    device = resolve_device(config.device)
    check_fits(config, data.n_categories, device)
    if config.bf16 and device.type == "cpu" and not probe_hardware().native_bf16:
        slowdown, unit = TRAIN_EMULATED_BF16_SLOWDOWN[probe_hardware().emulated_bf16_slowdown[1]]
        logger.warning(
            "--bf16 on a CPU without native bf16 (no amx_bf16/avx512_bf16 in its flags): bf16 is "
            "emulated, and training steps took %.1fx as long as fp32 on %s without them; "
            "drop --bf16 to train in fp32 here",
            slowdown,
            unit,
        )
    sampler = ClipSampler(data, config.image_size, config.clip_frames, config.frame_step).to(device)
    t = build_trainer(config, data.n_categories, _category_names(data))
    commands = [command] if command else []
    if resume:
        record, unseeded = load_checkpoint(run_dir, t.networks, t.optimizers, t.generators)
        for name in unseeded:  # the run moved to another device: a fresh stream, still seeded
            t.generators[name].manual_seed(config.seed + NOISE_SEED_OFFSET + record["step"])
        record["train_config"] = config.to_dict()
        record["command"] = record.get("command", []) + commands
    else:
        record = {
            "step": 0,
            "elapsed_s": 0.0,
            "train_config": config.to_dict(),
            "model_config": t.generator.config.to_dict(),
            "data": {
                "folder": "synthetic (dry run)" if config.dry_run else Path(config.data).resolve().name,
                "clips": len(data.clips),
                "frames": data.n_frames,
                "frame_size": data.frame_size,
                "classes": data.classes,
            },
            "command": commands,
        }
    log = LossLog(run_dir, resume_step=record["step"] if resume else None)
    record["hardware"] = _hardware(t.device)

    start_step = record["step"]
    started = time.monotonic()
    deadline = started + max_minutes * 60 if max_minutes else math.inf
    base_elapsed = record["elapsed_s"]
    step = start_step  # stays so when no step is left to take
    bar = tqdm(total=config.steps, initial=step, unit="step", disable=not progress, **BAR_STYLE)
    with stop_requested() as stop, contextlib.closing(log):
        for step in range(start_step + 1, config.steps + 1):
            tick = time.monotonic()
            losses = train_step(t, sampler)
            seconds = time.monotonic() - tick
            log.append(step, losses)
            if on_step is not None:
                on_step(step, losses)
            if bad := [name for name, value in losses.items() if not math.isfinite(value)]:
                raise RuntimeBackendError(f"training diverged at step {step}: non-finite {', '.join(bad)}")
            bar.update(1)
            shown = {label: f"{losses[name]:.3f}" for name, label in BAR_LABELS.items()}
            bar.set_postfix({**shown, "s/step": f"{seconds:.2f}"}, refresh=False)
            finished = step >= config.steps or time.monotonic() >= deadline or stop.is_set()
            record["step"] = step
            record["elapsed_s"] = base_elapsed + time.monotonic() - started
            if step % config.sample_every == 0 or finished:
                videos = render_videos(t.generator, 8, config.clip_frames, SAMPLE_SEED)
                write_png(sheet(videos), run_dir / SAMPLES_DIR / f"step_{step:06d}.png")
            if step % config.checkpoint_every == 0 or finished:
                _checkpoint(t, run_dir, record)
            if finished:
                break
    bar.close()
    record["stopped"] = "steps" if step >= config.steps else ("signal" if stop.is_set() else "time limit")
    if stop.is_set():
        record["signal"] = stop.signum
    record["steps_this_call"] = step - start_step
    record["wall_s_this_call"] = time.monotonic() - started
    return record


def summary_line(record: dict[str, Any]) -> str:
    rate = record["steps_this_call"] / max(record["wall_s_this_call"], 1e-9)
    return (
        f"step {record['step']} ({record['stopped']}); {record['steps_this_call']} steps in "
        f"{record['wall_s_this_call']:.0f} s ({rate:.2f} steps/s)"
    )


def export_run(run_dir: str | os.PathLike, out: str | os.PathLike, force: bool = False) -> Path:
    """Copies a run's latest generator (vidsynth weights format, with provenance) to `out`."""
    from vidsynth.weights.format import load_weights, save_weights

    model = load_weights(Path(run_dir) / WEIGHTS_DIR)
    return save_weights(model, out, model.provenance, force=force)
