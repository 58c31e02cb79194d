"""The one interface every backend implements: whole videos, or chunks with carried state.

Inputs are the numpy codes from vidsynth.noise.sample_noise; outputs are numpy float32
videos (B, T, nc, H, W) in [-1, 1]. The recurrent state between chunks is opaque to callers
(a tensor or an ONNX Runtime value that may live on the GPU). Torch-free.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Optional

import numpy as np

from vidsynth.config import ModelConfig
from vidsynth.noise import Noise


class Backend(ABC):
    name: str  # "eager", "torchscript" or "onnxruntime"
    device: str  # "cpu" or "cuda"
    config: ModelConfig
    detail: str = ""  # e.g. the execution provider, for messages

    @abstractmethod
    def generate(self, noise: Noise, n_frames: int) -> np.ndarray:
        """Whole videos in one call: (B, n_frames, nc, H, W) float32."""

    @abstractmethod
    def initial_state(self, noise: Noise) -> Any:
        """The state a video starts from (zero cell state, then z_motion)."""

    @abstractmethod
    def generate_chunk(self, noise: Noise, state: Any, n_frames: int) -> tuple[np.ndarray, Any]:
        """The next n_frames frames and the state to continue from."""

    def device_memory_available(self) -> Optional[int]:
        """Free bytes on the compute device when it is not host memory; None otherwise."""
        return None
