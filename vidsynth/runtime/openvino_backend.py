"""The OpenVINO backend (torch-free): OpenVINO's CPU runtime reads generator.onnx (whole
videos) and generator_chunk.onnx (streaming, state carried between chunks) directly, the
very files onnxruntime runs. Given weights instead of artifacts, it exports them to a
temporary directory first (torch).

Compiled for float32 inference: on CPUs with bf16 or fp16 units OpenVINO would otherwise
lower the precision by default, and the artifacts are validated at float32. Telemetry is
off: openvino is imported through vidsynth.optional.import_openvino, which keeps its
telemetry client from starting (see there).
"""

from __future__ import annotations

import logging
import os
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
from vidsynth.optional import import_openvino
from vidsynth.runtime.backend import Artifacts, Backend, Exporter, exported_weights
from vidsynth.runtime.request import GenerateRequest

logger = logging.getLogger(__name__)

DEVICE = "CPU"


def openvino_version() -> str:
    return import_openvino().__version__.split("-")[0]  # "2026.4.1-22982-<hash>-releases/..." -> "2026.4.1"


def compile_graph(path: str | os.PathLike, threads: int = 0) -> Any:
    """An OpenVINO CompiledModel of the ONNX graph at `path`, float32, tuned for latency;
    `threads` 0 leaves the thread count to OpenVINO."""
    ov = import_openvino()
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
    if threads > 0:
        config["INFERENCE_NUM_THREADS"] = threads
    try:
        core = ov.Core()
        return core.compile_model(core.read_model(str(path)), DEVICE, config)
    except RuntimeError as exc:  # OpenVINO reports unreadable models and unsupported ops this way
        raise RuntimeBackendError(
            f"OpenVINO cannot compile {path}: {str(exc).strip().splitlines()[0]}"
        ) from None


class _Graph:
    """One compiled graph with its infer request, checked against the contract's signature."""

    def __init__(self, path: Path, contract: ExportContract, threads: int) -> None:
        self.compiled = compile_graph(path, threads)
        # A port can carry several tensor names (an input read straight by a Slice also takes
        # the Slice's output name), so each contract name must be among its port's names.
        got_in = [port.get_names() for port in self.compiled.inputs]
        got_out = [port.get_names() for port in self.compiled.outputs]
        fits = all(
            len(got) == len(want) and all(name in names for name, names in zip(want, got))
            for got, want in ((got_in, contract.input_names), (got_out, contract.output_names))
        )
        if not fits:
            raise RuntimeBackendError(
                f"{path} has inputs {[sorted(n) for n in got_in]} and outputs "
                f"{[sorted(n) for n in got_out]}; "
                f"expected {contract.input_names} and {contract.output_names}"
            )
        self.outputs = contract.output_names
        self.request = self.compiled.create_infer_request()

    def __call__(self, feed: dict[str, np.ndarray]) -> list[np.ndarray]:
        self.request.infer(feed)
        # The request reuses its output buffers on the next call: hand out copies.
        return [np.array(self.request.get_tensor(name).data, copy=True) for name in self.outputs]


class OpenVinoBackend(Backend):
    name = "openvino"
    device = "cpu"

    def __init__(self, artifacts: Artifacts, threads: int = 0) -> None:
        self.config = artifacts.config
        self.video_graph = _Graph(artifacts.path(ONNX_FILE, "onnx"), generator_contract(self.config), threads)
        self.chunk_graph = None
        if artifacts.has(ONNX_CHUNK_FILE):
            self.chunk_graph = _Graph(
                artifacts.path(ONNX_CHUNK_FILE, "onnx"), chunk_contract(self.config), threads
            )
        self.detail = f"openvino {openvino_version()} {DEVICE}, f32"

    def generate(self, noise: Noise, n_frames: int) -> np.ndarray:
        (video,) = self.video_graph(graph_inputs(generator_contract(self.config), noise, n_frames))
        return video

    def initial_state(self, noise: Noise) -> np.ndarray:
        return initial_state(noise.z_motion, self.config.state_size)

    def generate_chunk(self, noise: Noise, state: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        if self.chunk_graph is None:
            raise RuntimeBackendError(
                f"streaming needs {ONNX_CHUNK_FILE}, which these artifacts do not have; re-export them"
            )
        feed = graph_inputs(chunk_contract(self.config), noise, n_frames)
        video, state_out = self.chunk_graph({**feed, "state": state})
        return video, state_out


def open_openvino(request: GenerateRequest, exporter: Exporter | None = None) -> OpenVinoBackend:
    """The OpenVINO backend over the request's artifacts (or its weights, exported first); CPU only."""
    if request.device == "cuda":
        raise RuntimeBackendError(
            "the openvino backend runs on the CPU; on CUDA use --backend onnxruntime, torchscript or eager"
        )
    import_openvino()  # a missing runtime is named before anything is read or exported
    if request.artifacts is not None:
        backend = OpenVinoBackend(Artifacts(request.artifacts), request.threads)
    else:
        with exported_weights(request, ("onnx",), exporter) as artifacts:
            backend = OpenVinoBackend(artifacts, request.threads)
    if request.device == "auto":
        logger.info("the openvino backend runs on the CPU")
    return backend
