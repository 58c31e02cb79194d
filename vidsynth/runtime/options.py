"""The command-line options of `vidsynth generate`, declared once: the click command and the
torch-free script (`python -m vidsynth.runtime.ort`, argparse) are both built from this table,
with the defaults of GenerateRequest. Torch-free."""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Optional

from vidsynth.runtime.request import BACKENDS, DEVICES, FORMATS, GenerateRequest


@dataclass(frozen=True)
class Option:
    flag: str
    type: type
    help: str
    metavar: Optional[str] = None

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    @property
    def default(self) -> Any:
        return {f.name: f.default for f in fields(GenerateRequest)}[self.dest]


GENERATE_OPTIONS = (
    Option("--artifacts", str, "export directory from `vidsynth export` (manifest.json, generator.pt/.onnx)", "DIR"),
    Option("--weights", str, "weights: default, demo or a weights directory [default: the shipped default weights]", "NAME|PATH"),
    Option("--backend", str, f"{' | '.join(BACKENDS)} [default: eager with weights, onnxruntime with --artifacts]", "NAME"),
    Option("--device", str, f"{' | '.join(DEVICES)}: auto uses CUDA when usable and says when it falls back", "NAME"),
    Option("--seed", int, "seed of all noise codes: same seed and options, same files", "S"),
    Option("--num-videos", int, "number of videos", "N"),
    Option("--frames", int, "frames per video; long videos stream in chunks", "T"),
    Option("--fps", float, "frames per second written into mp4/gif", "F"),
    Option("--format", str, f"{' | '.join(FORMATS)} (png: one sheet.png, a row per video, a column per frame)", "NAME"),
    Option("--out", str, "output directory (video_000.mp4, ... or sheet.png)", "DIR"),
    Option("--fix", str, "content: one content code, a motion per video; motion: one motion, a content per video", "content|motion"),
    Option("--category", int, "conditional models: the action category of every video", "K"),
    Option("--chunk-frames", int, "frames per video per model call when streaming (bounds memory)", "N"),
)

TORCH_FREE_OPTIONS = tuple(o for o in GENERATE_OPTIONS if o.flag != "--weights")
