"""The ONNX Runtime backend (torch-free): generator.onnx for whole videos, and
generator_chunk.onnx for streaming with the state carried between chunks.

Runs go through IO binding on every device: on CUDA (onnxruntime-gpu's
CUDAExecutionProvider) the codes are copied to the GPU once per batch, the carried state
never leaves it, and only the finished frames come back to the host for writing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from vidsynth.config import ModelConfig
from vidsynth.errors import RuntimeBackendError
from vidsynth.noise import Noise
from vidsynth.optional import import_onnxruntime
from vidsynth.runtime.backends.artifacts import Artifacts
from vidsynth.runtime.backends.base import Backend
from vidsynth.runtime.devices import choose_device

ort = import_onnxruntime()

VIDEO_FILE = "generator.onnx"
CHUNK_FILE = "generator_chunk.onnx"
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def _installed(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def no_cuda_provider_reason() -> str:
    """Why onnxruntime offers no CUDAExecutionProvider, and the fix."""
    swap = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'vidsynth[gpu]'"
    if _installed("onnxruntime") and _installed("onnxruntime-gpu"):
        return (
            "onnxruntime and onnxruntime-gpu are both installed and share one module, which is now the "
            f"CPU build; keep only the GPU one: {swap}"
        )
    return f"onnxruntime {ort.__version__} is a CPU build without {CUDA_PROVIDER}; for CUDA: {swap} (README, GPU)"


def _expected_io(config: ModelConfig, first: str, outputs: tuple[str, ...]) -> tuple[set[str], set[str]]:
    inputs = {"z_content", first, "n_frames"} | ({"category"} if config.n_categories > 0 else set())
    return inputs, set(outputs)


def _open_session(path: Path, device: str, config: ModelConfig, first: str, outputs: tuple[str, ...]):
    providers = [CUDA_PROVIDER, CPU_PROVIDER] if device == "cuda" else [CPU_PROVIDER]
    options = ort.SessionOptions()
    # This session only: errors still show; the graph optimiser's notes about the Loop
    # body's shared initialisers are warnings that concern no user.
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=providers)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise RuntimeBackendError(f"onnxruntime cannot load {path}: {exc}") from None
    if device == "cuda" and session.get_providers()[0] != CUDA_PROVIDER:
        raise RuntimeBackendError(
            f"onnxruntime could not start {CUDA_PROVIDER} for {path.name} (no usable GPU or CUDA libraries)"
        )
    want_in, want_out = _expected_io(config, first, outputs)
    got_in = {i.name for i in session.get_inputs()}
    got_out = {o.name for o in session.get_outputs()}
    if got_in != want_in or got_out != want_out:
        raise RuntimeBackendError(
            f"{path} has inputs {sorted(got_in)} and outputs {sorted(got_out)}; "
            f"expected {sorted(want_in)} and {sorted(want_out)}"
        )
    return session


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, artifacts: Artifacts, device: str) -> None:
        self.config = artifacts.config
        self.device = device
        self._ort_device = "cuda" if device == "cuda" else "cpu"
        self.video_session = _open_session(
            artifacts.path(VIDEO_FILE, "onnx"), device, self.config, "z_motion", ("video",)
        )
        self.chunk_session = None
        if artifacts.has(CHUNK_FILE):
            self.chunk_session = _open_session(
                artifacts.path(CHUNK_FILE, "onnx"), device, self.config, "state", ("video", "state_out")
            )
        self.detail = f"onnxruntime {ort.__version__} {self.video_session.get_providers()[0]}"

    def _value(self, array: np.ndarray) -> ort.OrtValue:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self._ort_device, 0)

    def _run(self, session, inputs: dict[str, Any], outputs: tuple[str, ...]) -> list[ort.OrtValue]:
        binding = session.io_binding()
        for name, value in inputs.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, value)
        for name in outputs:
            binding.bind_output(name, self._ort_device, 0)
        session.run_with_iobinding(binding)
        return binding.get_outputs()

    def _codes(self, noise: Noise, n_frames: int) -> dict[str, Any]:
        codes: dict[str, Any] = {
            "z_content": self._value(noise.z_content.astype(np.float32, copy=False)),
            "n_frames": np.array(n_frames, dtype=np.int64),  # a loop count, read on the host
        }
        if self.config.n_categories > 0:
            codes["category"] = self._value(noise.category.astype(np.int64, copy=False))
        return codes

    def generate(self, noise: Noise, n_frames: int) -> np.ndarray:
        inputs = self._codes(noise, n_frames)
        inputs["z_motion"] = self._value(noise.z_motion.astype(np.float32, copy=False))
        (video,) = self._run(self.video_session, inputs, ("video",))
        return video.numpy()

    def initial_state(self, noise: Noise) -> ort.OrtValue:
        batch = noise.z_motion.shape[0]
        zeros = np.zeros((batch, self.config.state_size - self.config.d_motion), dtype=np.float32)
        return self._value(np.concatenate([zeros, noise.z_motion.astype(np.float32, copy=False)], axis=1))

    def generate_chunk(self, noise: Noise, state: ort.OrtValue, n_frames: int) -> tuple[np.ndarray, ort.OrtValue]:
        if self.chunk_session is None:
            raise RuntimeBackendError(f"streaming needs {CHUNK_FILE}, which these artifacts do not have; re-export them")
        inputs = self._codes(noise, n_frames)
        inputs["state"] = state
        video, state_out = self._run(self.chunk_session, inputs, ("video", "state_out"))
        return video.numpy(), state_out  # state_out stays on the device


def cuda_provider_available() -> bool:
    return CUDA_PROVIDER in ort.get_available_providers()


def open_onnxruntime(artifacts: str | Path, device: str, notify: Callable[[str], None]) -> OnnxRuntimeBackend:
    exported = Artifacts(artifacts)
    choice = choose_device(device, cuda_provider_available(), no_cuda_provider_reason())
    try:
        backend = OnnxRuntimeBackend(exported, choice.name)
    except RuntimeBackendError as exc:
        if device != "auto" or choice.name != "cuda":
            raise
        notify(f"--device auto: {exc}; running on cpu")
        return OnnxRuntimeBackend(exported, "cpu")
    if choice.note:
        notify(choice.note)
    return backend
