"""What a user asks `vidsynth generate` for, checked in one place.

`GenerateRequest.validate()` collects every bad value and raises one InputError naming them
all, before any model is loaded or any file is written. Torch-free.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from vidsynth.errors import InputError, choice_error
from vidsynth.noise import FIX_CHOICES
from vidsynth.runtime.devices import DEVICES

BACKENDS = ("eager", "optimized", "optimized-bf16", "torchscript", "onnxruntime", "pt2")
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
        problems: list[str] = []
        if self.backend is not None and self.backend not in BACKENDS:
            problems.append(str(choice_error(InputError, "backend", self.backend, BACKENDS)))
        if self.device not in DEVICES:
            problems.append(str(choice_error(InputError, "device", self.device, DEVICES)))
        if self.format not in FORMATS:
            problems.append(str(choice_error(InputError, "format", self.format, FORMATS)))
        if self.fix is not None and self.fix not in FIX_CHOICES:
            problems.append(str(choice_error(InputError, "--fix value", self.fix, FIX_CHOICES)))
        for name in ("num_videos", "frames", "chunk_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems.append(f"{name.replace('_', '-')} must be a positive integer, got {value!r}")
        if not isinstance(self.fps, (int, float)) or not self.fps > 0:
            problems.append(f"fps must be > 0, got {self.fps!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            problems.append(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.artifacts is not None and self.weights is not None:
            problems.append("pass either --artifacts DIR or --weights NAME|PATH, not both")
        if self.resolved_backend in WEIGHTS_ONLY_BACKENDS and self.artifacts is not None:
            problems.append(
                f"the {self.resolved_backend} backend runs weights, not export artifacts; pass --weights, "
                "or --backend torchscript|onnxruntime with --artifacts"
            )
        if self.resolved_backend == "pt2" and self.artifacts is None:
            problems.append("the pt2 backend runs export artifacts: `vidsynth export --formats pt2 --out DIR`, then --artifacts DIR")
        if problems:
            raise InputError("; ".join(problems))
        return self
