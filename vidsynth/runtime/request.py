"""What a user asks `vidsynth generate` (or the server) for, declared and checked in one place.

Each field carries its command-line help, so the CLI's options are built from this class.
`validate()` raises one InputError naming every bad value (its `fields` lists their names),
before any model is loaded or any file is written. Torch-free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from vidsynth.errors import InputError
from vidsynth.model.noise import FIX_CHOICES
from vidsynth.runtime.backend import AUTO, BACKENDS, DEVICES, REGISTRY
from vidsynth.runtime.hardware import threads_problem

OUTPUT_FORMATS = ("mp4", "gif", "png")
# Frame rates a file can carry. GIF stores frame delays in whole hundredths of a second
# (Pillow truncates the milliseconds it is given), so above 100 fps a delay would become 0,
# which players show at an arbitrary speed.
MIN_FPS = 0.01  # one frame per 100 s
MAX_FPS = 1000.0
MAX_GIF_FPS = 100.0  # a 10 ms delay, the shortest GIF stores
STDOUT = "-"  # --out -: one mp4 video to stdout, as a fragmented MP4


def _option(default, help: str, metavar: str | None = None):
    return field(default=default, metadata={"help": help, "metavar": metavar})


@dataclass(frozen=True)
class GenerateRequest:
    artifacts: str | None = _option(
        None, "export directory from `vidsynth export` (manifest.json, generator.pt/.onnx)", "DIR"
    )
    weights: str | None = _option(
        None,
        "weights: default, demo or a weights directory [default: the shipped default weights]",
        "NAME|PATH",
    )
    backend: str = _option(
        AUTO,
        f"{' | '.join(BACKENDS)}; auto picks the fastest for this machine and source and says which",
        "NAME",
    )
    device: str = _option(
        "auto", f"{' | '.join(DEVICES)}: auto uses CUDA when usable and says when it falls back", "NAME"
    )
    seed: int = _option(0, "seed of all noise codes: same seed and options, same files", "S")
    num_videos: int = _option(4, "number of videos", "N")
    frames: int = _option(16, "frames per video; long videos stream in chunks", "T")
    fps: float = _option(8.0, "frames per second written into mp4/gif", "F")
    format: str = _option(
        "mp4",
        f"{' | '.join(OUTPUT_FORMATS)} (png: one sheet.png, a row per video, a column per frame)",
        "NAME",
    )
    out: str = _option(
        "videos",
        "output directory (video_000.mp4, ... or sheet.png); created if missing; "
        "- writes one mp4 video to stdout (a fragmented MP4, e.g. for ffplay -)",
        "DIR|-",
    )
    fix: str | None = _option(
        None,
        "content: one content code, a motion per video; motion: one motion, a content per video",
        "content|motion",
    )
    category: int | None = _option(None, "conditional models: the action category of every video", "K")
    chunk_frames: int = _option(64, "frames per video per model call when streaming (bounds memory)", "N")
    threads: int = _option(
        0, "intra-op threads of an onnxruntime or openvino session (0: its default, one per core)", "N"
    )
    progress: bool = False  # a progress bar while streaming long runs

    def validate(self) -> GenerateRequest:
        problems: dict[str, str] = {}

        def choice(name: str, value: object, valid: tuple[str, ...]) -> None:
            if value not in valid:
                problems[name] = f"unknown {name} {value!r}; expected one of: {', '.join(valid)}"

        choice("backend", self.backend, BACKENDS)
        choice("device", self.device, DEVICES)
        choice("format", self.format, OUTPUT_FORMATS)
        if self.fix is not None:
            choice("fix", self.fix, FIX_CHOICES)
        for name in ("num_videos", "frames", "chunk_frames"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                problems[name] = f"{name.replace('_', '-')} must be a positive integer, got {value!r}"
        if isinstance(self.threads, bool) or not isinstance(self.threads, int) or self.threads < 0:
            problems["threads"] = f"threads must be a non-negative integer, got {self.threads!r}"
        elif problem := threads_problem(self.threads):
            problems["threads"] = problem
        fps = self.fps
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not math.isfinite(fps):
            problems["fps"] = f"fps must be a finite number, got {fps!r}"
        elif not MIN_FPS <= fps <= MAX_FPS:
            problems["fps"] = f"fps must be between {MIN_FPS:g} and {MAX_FPS:g}, got {fps:g}"
        elif self.format == "gif" and fps > MAX_GIF_FPS:
            problems["fps"] = (
                "gif frame delays are whole hundredths of a second: "
                f"fps must be at most {MAX_GIF_FPS:g} for gif, got {fps:g}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            problems["seed"] = f"seed must be a non-negative integer, got {self.seed!r}"
        if self.category is not None and (
            isinstance(self.category, bool) or not isinstance(self.category, int)
        ):
            problems["category"] = f"category must be an integer, got {self.category!r}"
        if self.artifacts is not None and self.weights is not None:
            problems["artifacts"] = "pass either --artifacts DIR or --weights NAME|PATH, not both"
        spec = REGISTRY.get(self.backend)
        if spec is not None and not spec.runs_artifacts and self.artifacts is not None:
            artifact_backends = ", ".join(n for n, s in REGISTRY.items() if s.runs_artifacts)
            problems["backend"] = (
                f"the {self.backend} backend runs weights, not export artifacts; pass --weights, "
                f"or an artifact backend ({artifact_backends}) with --artifacts"
            )
        if self.out == STDOUT:
            if self.format != "mp4":
                problems.setdefault("format", f"--out - writes mp4 only, got --format {self.format}")
            if self.num_videos != 1:
                problems.setdefault(
                    "num_videos",
                    f"--out - writes one video; got --num-videos {self.num_videos}: add --num-videos 1",
                )
        if problems:
            raise InputError("; ".join(problems.values()), fields=tuple(problems))
        return self
