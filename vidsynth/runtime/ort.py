"""Torch-free video generation with ONNX Runtime over an export directory:

    python -m vidsynth.runtime.ort --artifacts DIR [--frames T --num-videos N ...]

Takes the options of `vidsynth generate` except --weights (weights need torch). Imports
numpy, onnxruntime and imageio (and vidsynth's torch-free modules) only, so a serving image
can leave torch out. Noise comes from vidsynth.noise.sample_noise, so a seed makes the same
video here as on the torch backends.
"""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from vidsynth.errors import InputError, VidsynthError
from vidsynth.runtime.generate import generate_videos
from vidsynth.runtime.options import TORCH_FREE_OPTIONS
from vidsynth.runtime.request import GenerateRequest

PROG = "python -m vidsynth.runtime.ort"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    for option in TORCH_FREE_OPTIONS:
        default = option.default
        shown = "" if default is None else f" [default: {default}]"
        parser.add_argument(
            option.flag, dest=option.dest, type=option.type, default=default,
            metavar=option.metavar, help=option.help + shown,
        )
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    values = vars(build_parser().parse_args(argv))
    try:
        if values["artifacts"] is None:
            raise InputError("--artifacts DIR is required (an export directory from `vidsynth export`)")
        if values["backend"] not in (None, "onnxruntime", "openvino"):
            raise InputError(
                f"this script runs the torch-free backends onnxruntime and openvino only, got --backend {values['backend']!r}"
            )
        request = GenerateRequest(**values, progress=True)
        result = generate_videos(request, notify=lambda message: print(message, file=sys.stderr))
    except VidsynthError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    print(f"{len(result.paths)} file(s) from {result.detail} on {result.device}:", file=sys.stderr)
    for path in result.paths:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
