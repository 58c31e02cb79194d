"""The ONNX Runtime backend (torch-free): generator.onnx for whole videos, and
generator_chunk.onnx for streaming with the state carried between chunks.

Runs go through IO binding on every device: on CUDA (onnxruntime-gpu's
CUDAExecutionProvider) the codes are copied to the GPU once per batch, the carried state
never leaves it, and only the finished frames come back to the host for writing.
Given weights instead of artifacts, it exports them to a temporary directory first (torch).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from vidsynth.artifacts.contract import (
    ONNX_CHUNK_FILE,
    ONNX_FILE,
    ExportContract,
    chunk_contract,
    generator_contract,
    graph_inputs,
    initial_state,
)
from vidsynth.errors import RuntimeBackendError
from vidsynth.model.noise import Noise
from vidsynth.optional import CPU_PROVIDER, import_onnxruntime, onnxruntime_session
from vidsynth.runtime.backend import Artifacts, Backend, Exporter, choose_device, exported_weights
from vidsynth.runtime.hardware import nvidia_driver_present
from vidsynth.runtime.request import GenerateRequest

logger = logging.getLogger(__name__)

ort = import_onnxruntime()

CUDA_PROVIDER = "CUDAExecutionProvider"


def _installed(distribution: str) -> bool:
    from importlib.metadata import PackageNotFoundError, version

    try:
        version(distribution)
    except PackageNotFoundError:
        return False
    return True


def no_cuda_provider_reason() -> str:
    """Why onnxruntime offers no CUDAExecutionProvider, and the fix."""
    if not nvidia_driver_present():
        return "no NVIDIA GPU driver is loaded (/proc/driver/nvidia is missing)"
    swap = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install 'vidsynth[gpu]'"
    if _installed("onnxruntime") and _installed("onnxruntime-gpu"):
        return (
            "onnxruntime and onnxruntime-gpu are both installed and share one module, which is now the "
            f"CPU build; keep only the GPU one: {swap}"
        )
    return (
        f"onnxruntime {ort.__version__} is a CPU build without {CUDA_PROVIDER}; "
        f"for CUDA: {swap} (README, GPU)"
    )


def cuda_provider_available() -> bool:
    return nvidia_driver_present() and CUDA_PROVIDER in ort.get_available_providers()


def _open_session(path: Path, device: str, contract: ExportContract, threads: int) -> Any:
    providers = [CUDA_PROVIDER, CPU_PROVIDER] if device == "cuda" else [CPU_PROVIDER]
    try:
        session = onnxruntime_session(path, providers, threads)
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
        raise RuntimeBackendError(f"onnxruntime cannot load {path}: {exc}") from None
    if device == "cuda" and session.get_providers()[0] != CUDA_PROVIDER:
        raise RuntimeBackendError(
            f"onnxruntime could not start {CUDA_PROVIDER} for {path.name} (no usable GPU or CUDA libraries)"
        )
    got_in = [i.name for i in session.get_inputs()]
    got_out = [o.name for o in session.get_outputs()]
    if got_in != contract.input_names or got_out != contract.output_names:
        raise RuntimeBackendError(
            f"{path} has inputs {got_in} and outputs {got_out}; expected {contract.input_names} and "
            f"{contract.output_names}"
        )
    return session


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, artifacts: Artifacts, device: str, threads: int = 0) -> None:
        self.config = artifacts.config
        self.device = device
        self._ort_device = "cuda" if device == "cuda" else "cpu"
        from vidsynth.runtime.backend import check_onnx_session

        video_path = artifacts.path(ONNX_FILE, "onnx")
        self.video_session = _open_session(video_path, device, generator_contract(self.config), threads)
        check_onnx_session(self.video_session, self.config, video_path)
        self.chunk_session = None
        if artifacts.has(ONNX_CHUNK_FILE):
            path = artifacts.path(ONNX_CHUNK_FILE, "onnx")
            self.chunk_session = _open_session(path, device, chunk_contract(self.config), threads)
            check_onnx_session(self.chunk_session, self.config, path)
        self.detail = f"onnxruntime {ort.__version__} {self.video_session.get_providers()[0]}"

    def _value(self, array: np.ndarray) -> Any:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self._ort_device, 0)

    def _run(self, session: Any, inputs: dict[str, Any], outputs: list[str]) -> list[Any]:
        binding = session.io_binding()
        for name, value in inputs.items():
            if isinstance(value, ort.OrtValue):
                binding.bind_ortvalue_input(name, value)
            else:
                binding.bind_cpu_input(name, value)
        for name in outputs:
            binding.bind_output(name, self._ort_device, 0)
        try:
            session.run_with_iobinding(binding)
        except Exception as exc:  # onnxruntime's own types (InvalidArgument, Fail, ...), from its C++ side
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeBackendError(
                f"onnxruntime refused to run the graph ({type(exc).__name__}: {first}); "
                "the graph does not fit the manifest's config: re-export the artifacts"
            ) from None
        return binding.get_outputs()

    def _inputs(self, contract: ExportContract, noise: Noise, n_frames: int) -> dict[str, Any]:
        """The graph's inputs on the run's device, but n_frames: a loop count, read on the host."""
        inputs = graph_inputs(contract, noise, n_frames)
        return {name: value if name == "n_frames" else self._value(value) for name, value in inputs.items()}

    def generate(self, noise: Noise, n_frames: int) -> np.ndarray:
        contract = generator_contract(self.config)
        (video,) = self._run(
            self.video_session, self._inputs(contract, noise, n_frames), contract.output_names
        )
        return video.numpy()

    def initial_state(self, noise: Noise) -> Any:
        return self._value(initial_state(noise.z_motion, self.config.state_size))

    def generate_chunk(self, noise: Noise, state: Any, n_frames: int) -> tuple[np.ndarray, Any]:
        if self.chunk_session is None:
            raise RuntimeBackendError(
                f"streaming needs {ONNX_CHUNK_FILE}, which these artifacts do not have; re-export them"
            )
        contract = chunk_contract(self.config)
        inputs = {**self._inputs(contract, noise, n_frames), "state": state}
        video, state_out = self._run(self.chunk_session, inputs, contract.output_names)
        return video.numpy(), state_out  # state_out stays on the device

    def state_to_host(self, state: Any) -> np.ndarray:
        return state.numpy()

    def state_from_host(self, state: np.ndarray) -> Any:
        return self._value(np.asarray(state, dtype=np.float32))


def _open(artifacts: Artifacts, request: GenerateRequest) -> OnnxRuntimeBackend:
    device = request.device
    choice = choose_device(device, cuda_provider_available(), no_cuda_provider_reason())
    try:
        backend = OnnxRuntimeBackend(artifacts, choice.name, request.threads)
    except RuntimeBackendError as exc:
        if device != "auto" or choice.name != "cuda":
            raise
        logger.info("--device auto: %s; running on cpu", exc)
        return OnnxRuntimeBackend(artifacts, "cpu", request.threads)
    if choice.note:
        logger.info(choice.note)
    return backend


def open_onnxruntime(request: GenerateRequest, exporter: Exporter | None = None) -> OnnxRuntimeBackend:
    if request.artifacts is not None:
        return _open(Artifacts(request.artifacts), request)
    with exported_weights(request, ("onnx",), exporter) as artifacts:
        return _open(artifacts, request)
