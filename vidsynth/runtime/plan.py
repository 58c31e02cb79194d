"""How much memory a request needs, and how to split it so that it fits. Long videos always
stream: each model call makes at most `chunk_frames` frames per video, so compute memory does not
grow with --frames. What can still grow is what the writer holds: a gif is written when a video
is complete, the png sheet when all videos are. A request whose estimate exceeds half the
available memory is refused with the estimate. Torch-free."""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass

from vidsynth.errors import InputError
from vidsynth.model.config import ModelConfig, image_layers

MEMORY_FRACTION = 0.5  # plan against half of what is free: the OS and other work need room
MAX_BATCH_FRAMES = 256  # frames per model call when many short videos are made together
MAX_OPEN_WRITERS = 8  # mp4 encoders (ffmpeg processes) open at once while streaming
_FLOAT = 4


def available_memory() -> int:
    """Bytes of host memory available to new work (MemAvailable on Linux)."""
    with suppress(OSError), open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30  # unknown platform: assume a modest machine


def frame_compute_bytes(config: ModelConfig) -> int:
    """Rough peak bytes per frame in one model call: the largest activation in and out of a
    layer, plus the output frame as float32 (model output, host copy, quantising)."""
    outputs = [layer.out_channels * layer.out_side**2 for layer in image_layers(config)]
    return _FLOAT * (3 * max(outputs[:-1]) + 3 * outputs[-1])


@dataclass(frozen=True)
class Plan:
    group_size: int  # videos made together (one batch)
    chunk_frames: int  # frames per video per model call
    streaming: bool  # more than one call per video, state carried between them
    estimate_bytes: int  # peak estimate for the whole run


def format_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def plan_generation(
    config: ModelConfig,
    n_videos: int,
    n_frames: int,
    fmt: str,
    chunk_frames: int,
    host_available: int | None = None,
    device_available: int | None = None,
) -> Plan:
    host_available = available_memory() if host_available is None else host_available
    compute_available = host_available if device_available is None else device_available
    chunk = min(chunk_frames, n_frames)
    streaming = n_frames > chunk
    per_frame = frame_compute_bytes(config)
    pixels = 3 * config.image_size**2  # one written frame as uint8 RGB

    group = max(1, min(n_videos, MAX_BATCH_FRAMES // chunk))
    if streaming and fmt == "mp4":
        group = min(group, MAX_OPEN_WRITERS)
    while group > 1 and group * chunk * per_frame > MEMORY_FRACTION * compute_available:
        group //= 2
    compute = group * chunk * per_frame
    # png: the whole sheet; gif: each video's frames, and the palette images the encoder makes of them
    held = {"png": n_videos * n_frames * pixels, "gif": 2 * group * n_frames * pixels}.get(fmt, 0)
    # The noise codes of the whole run, drawn before the first call, and their labels.
    codes = n_videos * (_FLOAT * (config.d_content + config.d_motion) + (8 if config.n_categories else 0))
    estimate = (compute + held if device_available is None else max(compute, held)) + codes

    too_big = []
    if compute > MEMORY_FRACTION * compute_available:
        where = "GPU" if device_available is not None else "host"
        too_big.append(
            f"{format_bytes(compute)} of {where} memory per call, {format_bytes(compute_available)} free"
        )
    if codes + held + (0 if device_available is not None else compute) > MEMORY_FRACTION * host_available:
        kept = []
        if held:
            what = "the contact sheet" if fmt == "png" else "each gif until it is complete"
            kept.append(f"{format_bytes(held)} of host memory for {what}")
        if codes >= held:
            kept.append(f"{format_bytes(codes)} of host memory for the noise codes of {n_videos} video(s)")
        too_big.append(f"{' and '.join(kept)}, {format_bytes(host_available)} available")
    if too_big:
        advice = "use fewer videos or frames, or a smaller --chunk-frames"
        if fmt != "mp4" and held:
            advice += ", or --format mp4, which streams"
        raise InputError(
            f"{n_videos} video(s) of {n_frames} frames as {fmt} need an estimated "
            f"{'; '.join(too_big)} (planning uses at most {MEMORY_FRACTION:.0%}); {advice}"
        )
    return Plan(group, chunk, streaming, estimate)
