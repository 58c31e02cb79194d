"""What a user asks `vidsynth generate` for, checked in one place.

`GenerateRequest.validate()` collects every bad value and raises one InputError naming them
all, before any model is loaded or any file is written. Torch-free.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vidsynth.errors import InputError, choice_error
from vidsynth.noise import FIX_CHOICES
from vidsynth.runtime.devices import DEVICES

BACKENDS = ("eager", "optimized", "optimized-bf16", "torchscript", "onnxruntime")
WEIGHTS_ONLY_BACKENDS = ("eager", "optimized", "optimized-bf16")  # run weights, not artifacts
FORMATS = ("mp4", "gif", "png")
DEFAULT_OUT = "videos"
DEFAULT_CHUNK_FRAMES = 64


@dataclass(frozen=True)
class GenerateRequest:
    artifacts: Optional[str] = None  # export directory (manifest.json, generator.pt/.onnx)
    weights: Optional[str] = None  # "default", "demo" or a weights directory; None: default
    backend: Optional[str] = None  # None: eager for weights, onnxruntime for artifacts
    device: str = "auto"  # cpu | cuda | auto (cuda when usable, else cpu, and says so)
    seed: int = 0  # the one seed every noise code is drawn from
    num_videos: int = 4  # videos, one batch row each
    frames: int = 16  # frames per video; long videos stream in chunks
    fps: float = 8.0  # playback rate written into mp4/gif
    format: str = "mp4"  # mp4 (H.264 yuv420p) | gif | png (one contact sheet)
    out: str = DEFAULT_OUT  # output directory; created if missing
    fix: Optional[str] = None  # "content": one content code, N motions; "motion": the reverse
    category: Optional[int] = None  # conditional models: the action category for every video
    chunk_frames: int = DEFAULT_CHUNK_FRAMES  # frames per streamed chunk (bounds memory)
    progress: bool = False  # tqdm progress bar while streaming

    @property
    def resolved_backend(self) -> str:
        if self.backend is not None:
            return self.backend
        return "onnxruntime" if self.artifacts is not None else "eager"

    @property
    def out_path(self) -> Path:
        return Path(self.out)

    def validate(self) -> "GenerateRequest":
        problems: list[tuple[str, str]] = []  # (field, what is wrong)
        if self.backend is not None and self.backend not in BACKENDS:
            problems.append(("backend", str(choice_error(InputError, "backend", self.backend, BACKENDS))))
        if self.device not in DEVICES:
            problems.append(("device", str(choice_error(InputError, "device", self.device, DEVICES))))
        if self.format not in FORMATS:
            problems.append(("format", str(choice_error(InputError, "format", self.format, FORMATS))))
        if self.fix is not None and self.fix not in FIX_CHOICES:
            problems.append(("fix", str(choice_error(InputError, "--fix value", self.fix, FIX_CHOICES))))
        for name in ("num_videos", "frames", "chunk_frames"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                problems.append((name, f"{name.replace('_', '-')} must be a positive integer, got {value!r}"))
        if not isinstance(self.fps, (int, float)) or isinstance(self.fps, bool) or not 0 < self.fps < math.inf:
            problems.append(("fps", f"fps must be > 0 and finite, got {self.fps!r}"))
        if not _is_int(self.seed) or self.seed < 0:
            problems.append(("seed", f"seed must be a non-negative integer, got {self.seed!r}"))
        if self.category is not None and (not _is_int(self.category) or self.category < 0):
            problems.append(("category", f"category must be a non-negative integer, got {self.category!r}"))
        if self.artifacts is not None and self.weights is not None:
            problems.append(("artifacts", "pass either --artifacts DIR or --weights NAME|PATH, not both"))
        if self.resolved_backend in WEIGHTS_ONLY_BACKENDS and self.artifacts is not None:
            problems.append((
                "backend",
                f"the {self.resolved_backend} backend runs weights, not export artifacts; pass --weights, "
                "or --backend torchscript|onnxruntime with --artifacts",
            ))
        if problems:
            raise InputError("; ".join(message for _, message in problems), fields=[field for field, _ in problems])
        return self


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
