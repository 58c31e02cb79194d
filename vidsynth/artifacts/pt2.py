"""Loading generator_motion.pt2 and generator_image.pt2 (written by `vidsynth export --formats
pt2`): each package is checked for the torch that compiled it, then the two are joined with the
model's own `frame_latents` into the artifacts' contract: whole videos (z_content, z_motion,
n_frames) and chunks with a carried state. Like TorchScript files, `.pt2` files are native
code: load them from trusted sources only."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vidsynth.artifacts.contract import PT2_IMAGE_FILE as IMAGE_FILE
from vidsynth.artifacts.contract import PT2_MOTION_FILE as MOTION_FILE
from vidsynth.artifacts.contract import initial_state
from vidsynth.errors import RuntimeBackendError
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import frame_latents


def check_torch_version(made_with: str | None, path: str | os.PathLike) -> None:
    """Refuses a package compiled by another torch: its native code calls that torch's ABI."""
    if made_with != torch.__version__:
        raise RuntimeBackendError(
            f"{path} was compiled by torch {made_with or 'of unknown version'}, but this is torch "
            f"{torch.__version__}; "
            f"install torch=={made_with} or re-export with `vidsynth export --formats pt2`"
        )


def load_package(path: Path, made_with: str | None) -> Callable[..., Any]:
    """One compiled package (CPU), after checking which torch compiled it."""
    check_torch_version(made_with, path)
    try:
        runner = torch._inductor.aoti_load_package(str(path))
    except Exception as exc:  # a bad zip, a missing library or symbol: many types
        raise RuntimeBackendError(f"{path} is not a loadable AOTInductor package: {exc}") from None
    check_torch_version(runner.get_metadata().get("torch_version"), path)
    return runner


@dataclass
class Pt2Generator:
    """The two packages behind the interface the torch backends call: forward (whole videos),
    `initial_state` and `generate_chunk` with a carried state."""

    motion: Callable[..., Any]
    image: Callable[..., Any]
    config: ModelConfig

    def __call__(
        self, z_content: Tensor, z_motion: Tensor, n_frames: int, category: Tensor | None = None
    ) -> Tensor:
        return self.generate_chunk(z_content, self.initial_state(z_motion), n_frames, category)[0]

    def initial_state(self, z_motion: Tensor) -> Tensor:
        return torch.from_numpy(initial_state(z_motion.numpy(), self.config.state_size))

    def generate_chunk(
        self, z_content: Tensor, state: Tensor, n_frames: int, category: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        codes, state = self.motion(state, torch.tensor(n_frames, dtype=torch.int64))
        frames = self.image(frame_latents(codes, z_content, self.config.n_categories, category))
        size = self.config.image_size
        return frames.view(z_content.size(0), n_frames, self.config.nc, size, size), state


def load_pt2(directory: str | os.PathLike, config: ModelConfig, made_with: str | None) -> Pt2Generator:
    motion, image = (load_package(Path(directory) / name, made_with) for name in (MOTION_FILE, IMAGE_FILE))
    return Pt2Generator(motion, image, config)
