"""generator_motion.pt2 and generator_image.pt2: AOTInductor packages of torch.export programs.

Two programs, each compiled ahead of time into a shared library zipped with its weights
(`torch._inductor.aoti_compile_and_package`; loaded with `aoti_load_package`, no tracing):
- the motion recurrence, `(state, n_frames) -> (codes, state_out)`: the while_loop
  formulation (vidsynth.export.while_loop) with a dynamic batch and the frame count as an
  int64 scalar whose value sizes the codes;
- the image generator, `(B*T, nz, 1, 1) latents -> frames`, with a dynamic first dimension.
vidsynth.artifacts.pt2 loads and joins them.

Why two: AOTInductor (torch 2.13.0, CPU) compiles the single whole-video program, and the image
generator alone on a data-dependent latent count (B * n_frames.item()), into wrong videos,
though the torch.export programs match eager; with a dynamic input dimension instead the image
generator matches to 1e-10, and the motion program alone to 2e-7.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from vidsynth.artifacts.contract import BATCH, EXPORT_SHAPE
from vidsynth.artifacts.contract import PT2_IMAGE_FILE as IMAGE_FILE
from vidsynth.artifacts.contract import PT2_MOTION_FILE as MOTION_FILE
from vidsynth.errors import ExportError
from vidsynth.export.onnx_export import EXAMPLE_SEED, example_inputs
from vidsynth.export.while_loop import MotionRollout
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import VideoGenerator
from vidsynth.version import __version__

PACKAGER = "torch._inductor.aoti_compile_and_package of torch.export.export programs (motion: while_loop)"
MAX_BATCH = 1 << 16  # torch.export needs an upper bound for a dynamic dimension
MAX_LATENTS = 1 << 24  # videos x frames per image-generator call


def save_pt2(model: VideoGenerator, directory: Path) -> None:
    """Exports and compiles both packages of `model` (eval mode, CPU) into `directory`."""
    # The motion recurrence, with a dynamic batch and a data-dependent frame count.
    _, state, n_frames = example_inputs(model, True, *EXPORT_SHAPE)[:3]
    batch = {0: torch.export.Dim(BATCH, min=1, max=MAX_BATCH)}
    motion = MotionRollout(model.motion).eval()
    _package(motion, (state, n_frames), (batch, None), directory / MOTION_FILE, model.config)
    # The image generator, with a dynamic number of latents (videos x frames).
    generator = torch.Generator().manual_seed(EXAMPLE_SEED)
    latents = torch.randn(EXPORT_SHAPE[0] * EXPORT_SHAPE[1], model.config.nz, 1, 1, generator=generator)
    dynamic = ({0: torch.export.Dim("latents", min=1, max=MAX_LATENTS)},)
    _package(model.image.eval(), (latents,), dynamic, directory / IMAGE_FILE, model.config)


def _package(module: torch.nn.Module, inputs: tuple, dynamic: tuple, path: Path, config: ModelConfig) -> None:
    """torch.export of `module`, compiled by AOTInductor into the package `path`."""
    metadata = {
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "vidsynth_version": __version__,
        "torch_version": torch.__version__,
    }
    with warnings.catch_warnings():
        # torch.export and AOTInductor call torch's own deprecated internals, whose FutureWarnings
        # concern torch's developers, not users: FutureWarnings alone are hidden, and only here.
        warnings.filterwarnings("ignore", category=FutureWarning)
        try:
            program = torch.export.export(module, inputs, dynamic_shapes=dynamic, strict=False)
        except Exception as exc:  # torch.export raises many unrelated types
            raise ExportError(
                f"torch.export for {path.name} failed (torch {torch.__version__}): {exc}"
            ) from exc
        try:
            options = {"aot_inductor.metadata": metadata}
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(path), inductor_configs=options
            )
        except Exception as exc:  # inductor and the C++ toolchain raise many unrelated types
            raise ExportError(
                f"AOTInductor could not compile {path.name} (torch {torch.__version__}; a C++ compiler such "
                f"as g++ must be installed): {exc}"
            ) from exc


def pt2_record() -> dict[str, Any]:
    """The manifest's description of the .pt2 packages."""
    return {
        "files": [MOTION_FILE, IMAGE_FILE],
        "packager": PACKAGER,
        "torch_version": torch.__version__,
        "device": "cpu",
        "motion": "(state, n_frames) -> (codes (n_frames, B, d_motion), state_out)",
        "image": "(B*n_frames, nz, 1, 1) latents -> (B*n_frames, nc, H, W) frames",
        "latents": (
            "cat(codes transposed to batch-major, z_content[, one-hot category]), "
            "as vidsynth.model.generator.frame_latents"
        ),
    }
