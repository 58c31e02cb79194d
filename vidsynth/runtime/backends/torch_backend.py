"""The torch backends' shared body: a module with `initial_state` and `generate_chunk`
(eager VideoGenerator or its TorchScript), run without autograd on the chosen device."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch

from vidsynth.config import ModelConfig
from vidsynth.noise import Noise
from vidsynth.runtime.backends.base import Backend
from vidsynth.runtime.devices import DeviceChoice, choose_device


def torch_device(requested: str) -> DeviceChoice:
    usable = torch.cuda.is_available()
    why_not = "torch sees no CUDA GPU" + ("" if torch.version.cuda else " (this torch is a CPU-only build)")
    return choose_device(requested, usable, why_not)


class TorchBackend(Backend):
    def __init__(self, name: str, module: Any, config: ModelConfig, device: str) -> None:
        self.name = name
        self.config = config
        self.device = device
        self.detail = f"torch {torch.__version__}"
        self.module = module
        self._device = torch.device(device)

    def _tensors(self, noise: Noise) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        z_content = torch.from_numpy(noise.z_content).to(self._device)
        z_motion = torch.from_numpy(noise.z_motion).to(self._device)
        category = None if noise.category is None else torch.from_numpy(noise.category).to(self._device)
        return z_content, z_motion, category

    def _chunk(self, z_content, state, n_frames: int, category) -> tuple[torch.Tensor, torch.Tensor]:
        if category is None:
            return self.module.generate_chunk(z_content, state, n_frames)
        return self.module.generate_chunk(z_content, state, n_frames, category)

    @staticmethod
    def _to_numpy(video: torch.Tensor) -> np.ndarray:
        return video.detach().float().cpu().numpy()

    def generate(self, noise: Noise, n_frames: int) -> np.ndarray:
        z_content, z_motion, category = self._tensors(noise)
        with torch.no_grad():
            if category is None:
                video = self.module(z_content, z_motion, n_frames)
            else:
                video = self.module(z_content, z_motion, n_frames, category)
        return self._to_numpy(video)

    def initial_state(self, noise: Noise) -> torch.Tensor:
        with torch.no_grad():
            return self.module.initial_state(torch.from_numpy(noise.z_motion).to(self._device))

    def generate_chunk(self, noise: Noise, state: torch.Tensor, n_frames: int) -> tuple[np.ndarray, torch.Tensor]:
        z_content, _, category = self._tensors(noise)
        with torch.no_grad():
            video, state = self._chunk(z_content, state, n_frames, category)
        return self._to_numpy(video), state  # the state stays on the device

    def device_memory_available(self) -> Optional[int]:
        if self.device != "cuda":
            return None
        free, _total = torch.cuda.mem_get_info(self._device)
        return int(free)
