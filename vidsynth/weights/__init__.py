"""Weights: our safetensors + JSON format, legacy importers, demo and shipped default weights."""

from __future__ import annotations

import os
from pathlib import Path

from vidsynth.errors import WeightsError

DEFAULT_WEIGHTS_DIR = Path(__file__).parent / "default"


def load_model(name_or_path: str | os.PathLike | None = None):
    """A VideoGenerator in eval mode: None -> the shipped default weights, "demo" -> seeded
    random (untrained) weights, otherwise a directory in vidsynth's weights format."""
    from vidsynth.weights.demo import demo_model
    from vidsynth.weights.format import load_weights

    if name_or_path is None or name_or_path == "default":
        if not (DEFAULT_WEIGHTS_DIR / "model.safetensors").is_file():
            raise WeightsError(
                "this vidsynth build ships no default weights; use --weights demo or a weights directory"
            )
        return load_weights(DEFAULT_WEIGHTS_DIR)
    if name_or_path == "demo":
        return demo_model()
    if not Path(name_or_path).exists():
        raise WeightsError(
            f"unknown weights {str(name_or_path)!r}: expected 'default', 'demo' or a weights directory"
        )
    return load_weights(name_or_path)
