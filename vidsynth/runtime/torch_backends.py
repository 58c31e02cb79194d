"""The torch backends: `eager` (the VideoGenerator from weights), `optimized` and
`optimized-bf16` (vidsynth.model.inference's CPU inference copy of them), `torchscript`
(generator.pt from an export, or the weights scripted in process) and `pt2` (an export's
AOTInductor packages, compiled for the CPU by the torch that runs them). One body runs them
all: a module with forward and generate_chunk, without autograd, on the chosen device."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from vidsynth.artifacts.contract import PT2_IMAGE_FILE, PT2_MOTION_FILE, TORCHSCRIPT_FILE
from vidsynth.artifacts.pt2 import load_pt2
from vidsynth.artifacts.torchscript_ops import load_checked
from vidsynth.errors import RuntimeBackendError
from vidsynth.model.config import ModelConfig
from vidsynth.model.inference import optimize_for_inference
from vidsynth.model.noise import Noise
from vidsynth.runtime.backend import (
    Artifacts,
    Backend,
    Exporter,
    check_graph_config,
    choose_device,
    request_artifacts,
)
from vidsynth.runtime.request import GenerateRequest
from vidsynth.weights import load_model

logger = logging.getLogger(__name__)


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().float().cpu().numpy()


class TorchBackend(Backend):
    def __init__(
        self, name: str, module: Any, config: ModelConfig, device: str, detail: str = "", slow: bool = False
    ) -> None:
        self.name = name
        self.config = config
        self.device = device
        self.detail = f"torch {torch.__version__}{detail}"
        self.slow = slow
        self.module = module

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device)

    def generate(self, noise: Noise, n_frames: int) -> np.ndarray:
        codes = [self._tensor(noise.z_content), self._tensor(noise.z_motion)]
        extra = () if noise.category is None else (self._tensor(noise.category),)
        with torch.no_grad():
            return _to_numpy(self.module(*codes, n_frames, *extra))

    def generate_chunk(
        self, noise: Noise, state: torch.Tensor, n_frames: int
    ) -> tuple[np.ndarray, torch.Tensor]:
        extra = () if noise.category is None else (self._tensor(noise.category),)
        with torch.no_grad():
            video, state = self.module.generate_chunk(self._tensor(noise.z_content), state, n_frames, *extra)
        return _to_numpy(video), state  # the state stays on the device

    def state_to_host(self, state: torch.Tensor) -> np.ndarray:
        return _to_numpy(state)

    def state_from_host(self, state: np.ndarray) -> torch.Tensor:
        return self._tensor(np.ascontiguousarray(state, dtype=np.float32))

    def device_memory_available(self) -> int | None:
        if self.device != "cuda":
            return None
        return int(torch.cuda.mem_get_info(self.device)[0])  # (free, total)


def _chosen(request: GenerateRequest) -> str:
    why_not = "torch sees no CUDA GPU" + ("" if torch.version.cuda else " (this torch is a CPU-only build)")
    choice = choose_device(request.device, torch.cuda.is_available(), why_not)
    if choice.note:
        logger.info(choice.note)
    return choice.name


def warn_if_bf16_is_emulated() -> bool:
    """Warns, and says True, when this CPU emulates bf16."""
    from vidsynth.runtime.hardware import NATIVE_BF16_FLAGS, probe_hardware

    hardware = probe_hardware()
    if not hardware.native_bf16:
        slowdown, unit = hardware.emulated_bf16_slowdown
        logger.warning(
            "this CPU has no native bf16 (%s), so bf16 is emulated: measured %gx slower than fp32 "
            "on an %s CPU like this one; --backend auto picks fp32 here",
            " or ".join(NATIVE_BF16_FLAGS),
            slowdown,
            unit,
        )
    return not hardware.native_bf16


def open_eager(request: GenerateRequest, exporter: Exporter | None = None) -> TorchBackend:
    model = load_model(request.weights)
    device = _chosen(request)
    return TorchBackend("eager", model.to(device).eval(), model.config, device)


def open_optimized(request: GenerateRequest, exporter: Exporter | None = None) -> TorchBackend:
    if request.device == "cuda":
        raise RuntimeBackendError(
            "the optimized backend runs on the CPU; on CUDA use --backend eager or torchscript"
        )
    if request.device == "auto" and torch.cuda.is_available():
        logger.info("the optimized backend runs on the CPU, not on the GPU")
    precision = "bf16" if request.backend == "optimized-bf16" else "fp32"
    emulated = precision == "bf16" and warn_if_bf16_is_emulated()
    model = optimize_for_inference(load_model(request.weights), precision)
    detail = f", {precision}, motion: {model.motion_kind}"
    return TorchBackend(request.backend, model, model.config, "cpu", detail, slow=emulated)


def open_torchscript(request: GenerateRequest, exporter: Exporter | None = None) -> TorchBackend:
    device = _chosen(request)
    if request.artifacts is not None:
        exported = Artifacts(request.artifacts)
        slow = device == "cpu" and exported.manifest.get("dtype") == "bf16" and warn_if_bf16_is_emulated()
        path = exported.path(TORCHSCRIPT_FILE, "torchscript")
        module, carried_config = load_checked(path, exported.manifest["torchscript_ops"], device)
        check_graph_config(exported.config, carried_config, str(path))
        config = exported.config
    else:
        model = load_model(request.weights)
        module = torch.jit.script(model).to(device)
        config = model.config
        slow = False
    return TorchBackend("torchscript", module.eval(), config, device, slow=slow)


def open_pt2(request: GenerateRequest, exporter: Exporter | None = None) -> TorchBackend:
    """Given weights instead of artifacts, it exports them first, which compiles C++ for
    minutes: export once and pass --artifacts."""
    if request.device == "cuda":
        raise RuntimeBackendError(
            "the pt2 backend runs packages compiled for the CPU; use --device cpu, or --backend "
            "torchscript on CUDA"
        )
    with request_artifacts(request, ("pt2",), exporter) as exported:
        for file in (PT2_MOTION_FILE, PT2_IMAGE_FILE):
            exported.path(file, "pt2")  # a named error when the export has no .pt2 packages
        made_with = exported.manifest.get("pt2", {}).get("torch_version")
        generator = load_pt2(exported.directory, exported.config, made_with)
    if request.device == "auto":
        logger.info("the pt2 backend runs on the CPU (its packages are compiled for it)")
    return TorchBackend("pt2", generator, exported.config, "cpu", ", AOTInductor")
