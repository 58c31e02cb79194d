"""The manifest is not trusted on its own: its model config must match what each graph
carries (ONNX metadata_props, the TorchScript config.json extra file), and every output a
backend returns must have the shape the request asked for. An edited image size or a
generator.onnx from another export with its hash recomputed is refused instead of writing a
wrong video. Torch-free."""
from __future__ import annotations

import json
from typing import Any, Optional

import numpy as np

from vidsynth.config import ModelConfig
from vidsynth.errors import ConfigError, RuntimeBackendError


def check_graph_config(manifest_config: ModelConfig, carried: Optional[str], where: str) -> None:
    """`carried`: the config JSON a graph holds (None or "" if it holds none)."""
    if not carried:
        raise RuntimeBackendError(f"{where} carries no model config; it was not written by vidsynth export")
    try:
        graph_config = ModelConfig.from_dict(json.loads(carried))
    except (json.JSONDecodeError, TypeError, ValueError, RecursionError, ConfigError) as exc:
        raise RuntimeBackendError(f"{where} carries an unreadable model config: {exc}") from None
    if graph_config != manifest_config:
        ours, theirs = manifest_config.to_dict(), graph_config.to_dict()
        differ = [f"{key}: manifest {ours[key]!r}, graph {theirs.get(key)!r}" for key in ours if ours[key] != theirs.get(key)]
        raise RuntimeBackendError(
            f"{where} was exported for another model than manifest.json describes ({'; '.join(differ)}); "
            "artifacts are mixed or edited: re-export them"
        )


def check_onnx_session(session: Any, manifest_config: ModelConfig, path: Any) -> None:
    check_graph_config(manifest_config, session.get_modelmeta().custom_metadata_map.get("config"), f"{path}")


def check_video_shape(video: Any, n_videos: int, n_frames: int, config: ModelConfig, backend: str) -> None:
    """A backend's output must be (videos, frames, nc, H, W) as requested."""
    expected = (n_videos, n_frames, config.nc, config.image_size, config.image_size)
    shape = tuple(np.shape(video))
    if shape != expected:
        raise RuntimeBackendError(
            f"the {backend} backend returned videos of shape {shape}, expected {expected} "
            "(videos, frames, channels, height, width): the model does not match its config"
        )
