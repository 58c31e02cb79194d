"""Quality figures for a trained generator, as reported in the model card.

- motion: mean absolute frame-to-frame change (pixel values in [0, 1]) of generated clips
  and of real clips of the same length and frame step; their ratio should be near 1.
- content: mean absolute difference between first frames of videos that share one motion code
  and category but have different content codes ("different people"), against the same
  figure for videos that share the content code but not the motion code, and for pairs of
  real clips.
- category: how often the run's video critic (trained on the real labels) assigns generated
  videos the category they were asked for, next to its accuracy on real clips. The critic is
  not an independent judge; the figure says whether categories are told apart at all.
"""

from __future__ import annotations

from typing import Any

import torch

from vidsynth.model.generator import VideoGenerator
from vidsynth.model.noise import sample_noise
from vidsynth.train.sampler import ClipSampler


def _generate(
    model: VideoGenerator,
    n: int,
    n_frames: int,
    seed: int,
    fix: str | None = None,
    category: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    noise = sample_noise(model.config, n, seed, fix=fix, category=category)
    labels = None if noise.category is None else torch.from_numpy(noise.category)
    with torch.no_grad():
        video = model(torch.from_numpy(noise.z_content), torch.from_numpy(noise.z_motion), n_frames, labels)
    return (video.clamp(-1, 1) + 1) / 2, labels  # [0, 1]


def frame_change(video: torch.Tensor) -> float:
    """Mean |frame t+1 - frame t| of (B, T, C, H, W) videos in [0, 1]."""
    return float((video[:, 1:] - video[:, :-1]).abs().mean())


def pairwise_first_frame_difference(video: torch.Tensor) -> float:
    """Mean |a - b| between the first frames of every pair of videos."""
    first = video[:, 0].flatten(1)
    return float(torch.pdist(first, p=1).mean() / first.shape[1])


def quality_figures(
    model: VideoGenerator,
    sampler: ClipSampler,
    n_videos: int = 64,
    seed: int = 0,
    video_critic: torch.nn.Module | None = None,
) -> dict[str, Any]:
    model = model.eval()
    n_frames = sampler.clip_frames
    rng = torch.Generator().manual_seed(seed)
    real, real_labels = sampler.videos(n_videos, rng)
    real = (real + 1) / 2
    fake, fake_labels = _generate(model, n_videos, n_frames, seed)
    category = 0 if model.config.n_categories > 0 else None
    same_motion, _ = _generate(model, 16, 2, seed + 1, fix="motion", category=category)
    same_content, _ = _generate(model, 16, 2, seed + 1, fix="content", category=category)
    change_generated, change_real = round(frame_change(fake), 5), round(frame_change(real), 5)
    figures: dict[str, Any] = {
        "clips": n_videos,
        "frames_per_clip": n_frames,
        "real_frame_step": sampler.frame_step,
        "frame_change_generated": change_generated,
        "frame_change_real": change_real,
        "frame_change_ratio": round(change_generated / change_real, 3),
        "first_frame_difference_different_content": round(pairwise_first_frame_difference(same_motion), 5),
        "first_frame_difference_same_content": round(pairwise_first_frame_difference(same_content), 5),
        "first_frame_difference_real_clips": round(pairwise_first_frame_difference(real[:16]), 5),
    }
    if video_critic is not None and fake_labels is not None:
        video_critic.eval()
        with torch.no_grad():
            for name, videos, labels in (("real", real, real_labels), ("generated", fake, fake_labels)):
                _, logits = video_critic(videos * 2 - 1)
                accuracy = (logits.argmax(1) == labels).float().mean()
                figures[f"critic_category_accuracy_{name}"] = round(float(accuracy), 3)
    return figures
