"""Contact sheets of generated videos: a row per video, a column per frame."""

from __future__ import annotations

import os

import numpy as np
import torch

from vidsynth.atomic import atomic_file
from vidsynth.model.generator import VideoGenerator
from vidsynth.model.noise import sample_noise
from vidsynth.runtime.stream import to_uint8


def render_videos(model: VideoGenerator, n_videos: int, n_frames: int, seed: int) -> np.ndarray:
    """Eval-mode videos from the seeded noise factory; category k for video k (mod classes).
    Touches neither the model's training mode afterwards nor any torch RNG."""
    noise = sample_noise(model.config, n_videos, seed)
    device = next(model.parameters()).device
    z_content, z_motion = (torch.from_numpy(z).to(device) for z in (noise.z_content, noise.z_motion))
    n_cat = model.config.n_categories
    category = torch.arange(n_videos, device=device) % n_cat if n_cat > 0 else None
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            video = model(z_content, z_motion, n_frames, category)
    finally:
        model.train(was_training)
    return to_uint8(video.float().cpu().numpy())


def sheet(videos: np.ndarray, gap: int = 2) -> np.ndarray:
    """(B, T, H, W, 3) -> one (B*(H+gap)-gap, T*(W+gap)-gap, 3) image."""
    b, t, h, w, c = videos.shape
    out = np.full((b, h + gap, t, w + gap, c), 255, dtype=np.uint8)  # a cell per frame, gap right and below
    out[:, :h, :, :w] = videos.transpose(0, 2, 1, 3, 4)
    return out.reshape(b * (h + gap), t * (w + gap), c)[: b * (h + gap) - gap, : t * (w + gap) - gap]


def write_png(image: np.ndarray, path: str | os.PathLike) -> None:
    import imageio.v3 as iio

    encoded = iio.imwrite("<bytes>", image, extension=".png")  # a full disk is then a plain OSError
    with atomic_file(path) as tmp:
        tmp.write_bytes(encoded)
