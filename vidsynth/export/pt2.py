"""generator_motion.pt2 and generator_image.pt2: AOTInductor packages of torch.export programs.

Two programs, each compiled ahead of time into a shared library zipped with its weights
(`torch._inductor.aoti_compile_and_package`; loaded with `aoti_load_package`, no tracing):
- the motion recurrence, `(state, n_frames) -> (codes, state_out)`: the while_loop
  formulation (vidsynth.export.while_loop) with a dynamic batch and the frame count as an
  int64 scalar whose value sizes the codes;
- the image generator, `(B*T, nz, 1, 1) latents -> frames`, with a dynamic first dimension.
`Pt2Generator` joins them with the model's own `frame_latents` into the artifacts' contract.

Why two: AOTInductor (torch 2.13.0, CPU) compiles the single whole-video program, and the image
generator alone on a data-dependent latent count (B * n_frames.item()), into wrong videos,
though the torch.export programs match eager; with a dynamic input dimension instead the image
generator matches to 1e-10, and the motion program alone to 2e-7.

A package is native code for the exporting machine's torch and CPU: a package from another
torch version is refused with both versions named. Like TorchScript files, load `.pt2` files
from trusted sources only.
"""

from __future__ import annotations

import contextlib
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from vidsynth.artifacts.contract import BATCH, EXPORT_SHAPE
from vidsynth.artifacts.contract import PT2_IMAGE_FILE as IMAGE_FILE
from vidsynth.artifacts.contract import PT2_MOTION_FILE as MOTION_FILE
from vidsynth.errors import ExportError
from vidsynth.export.onnx_export import EXAMPLE_SEED
from vidsynth.export.while_loop import MotionRollout
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import VideoGenerator
from vidsynth.model.noise import sample_noise
from vidsynth.version import __version__

PACKAGER = "torch._inductor.aoti_compile_and_package of torch.export.export programs (motion: while_loop)"
MAX_BATCH = 1 << 16  # torch.export needs an upper bound for a dynamic dimension
MAX_LATENTS = 1 << 24  # videos x frames per image-generator call


def motion_program(model: VideoGenerator) -> torch.export.ExportedProgram:
    """The motion recurrence with a dynamic batch and a data-dependent frame count."""
    batch, n_frames = EXPORT_SHAPE
    noise = sample_noise(model.config, batch, seed=EXAMPLE_SEED)
    state = model.initial_state(torch.from_numpy(noise.z_motion))
    inputs = (state, torch.tensor(n_frames, dtype=torch.int64))
    dynamic = ({0: torch.export.Dim(BATCH, min=1, max=MAX_BATCH)}, None)
    return _export(MotionRollout(model.motion).eval(), inputs, dynamic, MOTION_FILE)


def image_program(model: VideoGenerator) -> torch.export.ExportedProgram:
    """The image generator with a dynamic number of latents (videos x frames)."""
    batch, n_frames = EXPORT_SHAPE
    latents = torch.randn(
        batch * n_frames, model.config.nz, 1, 1, generator=torch.Generator().manual_seed(EXAMPLE_SEED)
    )
    dynamic = ({0: torch.export.Dim("latents", min=1, max=MAX_LATENTS)},)
    return _export(model.image.eval(), (latents,), dynamic, IMAGE_FILE)


def _export(
    module: torch.nn.Module, inputs: tuple, dynamic: tuple, file: str
) -> torch.export.ExportedProgram:
    try:
        with _quiet_torch_deprecations():
            return torch.export.export(module, inputs, dynamic_shapes=dynamic, strict=False)
    except Exception as exc:  # torch.export raises many unrelated types
        raise ExportError(f"torch.export for {file} failed (torch {torch.__version__}): {exc}") from exc


@contextlib.contextmanager
def _quiet_torch_deprecations() -> Iterator[None]:
    """torch.export and AOTInductor call torch's own deprecated internals, whose FutureWarnings
    concern torch's developers, not users: FutureWarnings alone are hidden, and only here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        yield


def compile_package(program: torch.export.ExportedProgram, path: Path, config: ModelConfig) -> None:
    metadata = {
        "config": json.dumps(config.to_dict(), sort_keys=True),
        "vidsynth_version": __version__,
        "torch_version": torch.__version__,
    }
    options = {"aot_inductor.metadata": metadata}
    try:
        with _quiet_torch_deprecations():
            torch._inductor.aoti_compile_and_package(
                program, package_path=str(path), inductor_configs=options
            )
    except Exception as exc:  # inductor and the C++ toolchain raise many unrelated types
        raise ExportError(
            f"AOTInductor could not compile {path.name} (torch {torch.__version__}; a C++ compiler such "
            f"as g++ must be installed): {exc}"
        ) from exc


def save_pt2(model: VideoGenerator, directory: Path) -> None:
    """Exports and compiles both packages of `model` (eval mode, CPU) into `directory`."""
    compile_package(motion_program(model), directory / MOTION_FILE, model.config)
    compile_package(image_program(model), directory / IMAGE_FILE, model.config)


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
