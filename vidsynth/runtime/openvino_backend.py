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

from vidsynth.artifacts.contract import ExportContract
from vidsynth.errors import RuntimeBackendError
from vidsynth.optional import import_openvino
from vidsynth.runtime.backend import Artifacts, Exporter, exported_weights
from vidsynth.runtime.onnx_graphs import OnnxGraphsBackend
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


class OpenVinoBackend(OnnxGraphsBackend):
    name = "openvino"
    device = "cpu"

    def __init__(self, artifacts: Artifacts, threads: int = 0) -> None:
        self._threads = threads
        super().__init__(artifacts)
        self.detail = f"openvino {openvino_version()} {DEVICE}, f32"

    def _open(self, path: Path, contract: ExportContract) -> _Graph:
        return _Graph(path, contract, self._threads)

    def _run(self, graph: _Graph, inputs: dict[str, Any], contract: ExportContract) -> list[np.ndarray]:
        return graph(inputs)


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
