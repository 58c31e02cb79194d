"""Random real clips and frames for the critics, drawn with the run's own torch.Generator
(whose state the checkpoints carry, so a resumed run draws the same batches)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from vidsynth.errors import DataError
from vidsynth.train.data import ClipDataset


class ClipSampler:
    def __init__(self, dataset: ClipDataset, image_size: int, clip_frames: int, frame_step: int) -> None:
        span = (clip_frames - 1) * frame_step + 1
        short = [(p, c.shape[0]) for p, c in zip(dataset.paths, dataset.clips) if c.shape[0] < span]
        if short:
            listed = ", ".join(f"{p} ({n} frames)" for p, n in short[:5])
            raise DataError(
                f"{len(short)} clip(s) shorter than the {span} frames a training clip covers "
                f"({clip_frames} frames, every {frame_step}): {listed}; lower --clip-frames"
            )
        self.clip_frames = clip_frames
        self.frame_step = frame_step
        self.span = span
        # Every frame of every clip in one uint8 tensor (N_frames, 3, S, S); clip i spans
        # rows [offsets[i], offsets[i] + lengths[i]).
        frames = torch.from_numpy(np.concatenate(dataset.clips)).permute(0, 3, 1, 2)
        if frames.shape[-1] != image_size:
            resized = torch.nn.functional.interpolate(
                frames.float(),
                size=(image_size, image_size),
                mode="area" if frames.shape[-1] > image_size else "bilinear",
            )
            frames = resized.round().clamp(0, 255).to(torch.uint8)
        self.frames = frames.contiguous()
        self.lengths = torch.tensor([c.shape[0] for c in dataset.clips], dtype=torch.long)
        self.offsets = torch.cumsum(self.lengths, 0) - self.lengths
        self.labels = torch.from_numpy(dataset.labels)
        # Each frame's clip, so frames are drawn uniformly over all frames, as MoCoGAN does.
        self.frame_clip = torch.repeat_interleave(torch.arange(len(dataset.clips)), self.lengths)

    def to(self, device: torch.device) -> ClipSampler:
        """Keeps the frame bank on `device`, so batches are gathered there (indices stay on the CPU
        generator, so the draws do not depend on the device)."""
        self.frames = self.frames.to(device)
        return self

    @staticmethod
    def to_float(frames: Tensor) -> Tensor:
        return frames.float().div_(127.5).sub_(1.0)

    def videos(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(B, T, 3, S, S) float clips in [-1, 1] and their (B,) labels."""
        clip = torch.randint(len(self.lengths), (batch,), generator=generator)
        room = self.lengths[clip] - self.span + 1
        start = (torch.rand(batch, generator=generator) * room).long()
        index = self.offsets[clip, None] + start[:, None] + torch.arange(self.clip_frames) * self.frame_step
        return self.to_float(self.frames[index.to(self.frames.device)]), self.labels[clip]

    def images(self, batch: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """(B, 3, S, S) float frames in [-1, 1] and their (B,) labels."""
        index = torch.randint(self.frames.shape[0], (batch,), generator=generator)
        return self.to_float(self.frames[index.to(self.frames.device)]), self.labels[self.frame_clip[index]]
