"""The one seeded noise factory: every backend, test and benchmark draws its inputs here.

Noise is drawn with numpy (torch-free), so the torch runtime and the ONNX Runtime script make
the same videos from the same seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidsynth.errors import InputError, choice_error
from vidsynth.model.config import ModelConfig

FIX_CHOICES = ("content", "motion")


@dataclass(frozen=True)
class Noise:
    z_content: np.ndarray  # (B, d_content) float32
    z_motion: np.ndarray  # (B, d_motion) float32
    category: np.ndarray | None = None  # (B,) int64, conditional models only


def sample_noise(
    config: ModelConfig, batch: int, seed: int, fix: str | None = None, category: int | None = None
) -> Noise:
    """Standard-normal codes for `batch` videos.

    fix="content" gives every video the same content code (one person, many motions);
    fix="motion" the same motion code (one motion, many people). A conditional model gets
    `category` for every video, or a seeded random category per video when it is None.
    """
    if batch < 1:
        raise InputError(f"batch must be >= 1, got {batch}", fields=["num_videos"])
    if fix is not None and fix not in FIX_CHOICES:
        raise InputError(str(choice_error(InputError, "--fix value", fix, FIX_CHOICES)), fields=["fix"])
    rng = np.random.default_rng(seed)
    z_content = rng.standard_normal((batch, config.d_content), dtype=np.float32)
    z_motion = rng.standard_normal((batch, config.d_motion), dtype=np.float32)
    if fix == "content":
        z_content = np.repeat(z_content[:1], batch, axis=0)
    elif fix == "motion":
        z_motion = np.repeat(z_motion[:1], batch, axis=0)
    labels = None
    if config.n_categories > 0:
        if category is None:
            labels = rng.integers(0, config.n_categories, size=batch, dtype=np.int64)
        elif not 0 <= category < config.n_categories:
            names = f" ({config.category_labels()})" if config.category_names else ""
            raise InputError(
                f"category must be in [0, {config.n_categories - 1}]{names}, got {category}",
                fields=["category"],
            )
        else:
            labels = np.full(batch, category, dtype=np.int64)
    elif category is not None:
        raise InputError("this model has no categories; drop --category", fields=["category"])
    return Noise(z_content, z_motion, labels)


def noise_rows(noise: Noise, start: int, stop: int) -> Noise:
    category = None if noise.category is None else noise.category[start:stop]
    return Noise(noise.z_content[start:stop], noise.z_motion[start:stop], category)


def stack_noise(noises: list[Noise]) -> Noise:
    category = None if noises[0].category is None else np.concatenate([n.category for n in noises])
    return Noise(
        np.concatenate([n.z_content for n in noises]), np.concatenate([n.z_motion for n in noises]), category
    )
