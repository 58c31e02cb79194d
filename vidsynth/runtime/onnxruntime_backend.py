"""The ONNX Runtime backend (torch-free). Runs go through IO binding on every device: on CUDA
(onnxruntime-gpu's CUDAExecutionProvider) the codes are copied to the GPU once per batch, the
carried state never leaves it, and only the finished frames come back to the host."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from vidsynth.artifacts.contract import ExportContract
from vidsynth.errors import RuntimeBackendError
from vidsynth.optional import CPU_PROVIDER, import_onnxruntime, onnxruntime_session
from vidsynth.runtime.backend import (
    Artifacts,
    Exporter,
    OnnxGraphsBackend,
    check_graph_config,
    choose_device,
    request_artifacts,
)
from vidsynth.runtime.hardware import installed_version, nvidia_driver_present
from vidsynth.runtime.request import GenerateRequest

logger = logging.getLogger(__name__)
ort = import_onnxruntime()
CUDA_PROVIDER = "CUDAExecutionProvider"


def no_cuda_provider_reason() -> str:
    """Why onnxruntime offers no CUDAExecutionProvider, and the fix."""
    if not nvidia_driver_present():
        return "no NVIDIA GPU driver is loaded (/proc/driver/nvidia is missing)"
    swap = "pip uninstall -y onnxruntime onnxruntime-gpu && pip install onnxruntime-gpu"
    if installed_version("onnxruntime") and installed_version("onnxruntime-gpu"):
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


class OnnxRuntimeBackend(OnnxGraphsBackend):
    name = "onnxruntime"

    def __init__(self, artifacts: Artifacts, device: str, threads: int = 0) -> None:
        self.device = device
        self._threads = threads
        super().__init__(artifacts)
        self.detail = f"onnxruntime {ort.__version__} {self.video_graph.get_providers()[0]}"

    def _open(self, path: Path, contract: ExportContract) -> Any:
        providers = [CUDA_PROVIDER, CPU_PROVIDER] if self.device == "cuda" else [CPU_PROVIDER]
        try:
            session = onnxruntime_session(path, providers, self._threads)
        except Exception as exc:  # onnxruntime raises its own exception types for unreadable models
            raise RuntimeBackendError(f"onnxruntime cannot load {path}: {exc}") from None
        if self.device == "cuda" and session.get_providers()[0] != CUDA_PROVIDER:
            raise RuntimeBackendError(
                f"onnxruntime could not start {CUDA_PROVIDER} for {path.name} "
                "(no usable GPU or CUDA libraries)"
            )
        got_in = [i.name for i in session.get_inputs()]
        got_out = [o.name for o in session.get_outputs()]
        if got_in != contract.input_names or got_out != contract.output_names:
            raise RuntimeBackendError(
                f"{path} has inputs {got_in} and outputs {got_out}; expected {contract.input_names} and "
                f"{contract.output_names}"
            )
        check_graph_config(self.config, session.get_modelmeta().custom_metadata_map.get("config"), str(path))
        return session

    def _value(self, array: np.ndarray) -> Any:
        return ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), self.device, 0)

    def _run(self, session: Any, inputs: dict[str, Any], contract: ExportContract) -> list[Any]:
        binding = session.io_binding()
        for name, value in inputs.items():
            if name == "n_frames":  # a loop count, read on the host
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(
                    name, value if isinstance(value, ort.OrtValue) else self._value(value)
                )
        for name in contract.output_names:
            binding.bind_output(name, self.device, 0)
        try:
            session.run_with_iobinding(binding)
        except Exception as exc:  # onnxruntime's own types (InvalidArgument, Fail, ...), from its C++ side
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeBackendError(
                f"onnxruntime refused to run the graph ({type(exc).__name__}: {first}); "
                "the graph does not fit the manifest's config: re-export the artifacts"
            ) from None
        video, *state = binding.get_outputs()
        return [video.numpy(), *state]  # the state stays on the device

    def state_to_host(self, state: Any) -> np.ndarray:
        return state.numpy()

    def state_from_host(self, state: np.ndarray) -> Any:
        return self._value(np.asarray(state, dtype=np.float32))


def open_onnxruntime(request: GenerateRequest, exporter: Exporter | None = None) -> OnnxRuntimeBackend:
    with request_artifacts(request, ("onnx",), exporter) as artifacts:
        choice = choose_device(request.device, cuda_provider_available(), no_cuda_provider_reason())
        try:
            backend = OnnxRuntimeBackend(artifacts, choice.name, request.threads)
        except RuntimeBackendError as exc:
            if request.device != "auto" or choice.name != "cuda":
                raise
            logger.info("--device auto: %s; running on cpu", exc)
            return OnnxRuntimeBackend(artifacts, "cpu", request.threads)
    if choice.note:
        logger.info(choice.note)
    return backend
