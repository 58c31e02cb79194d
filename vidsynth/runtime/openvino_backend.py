"""The OpenVINO backend (torch-free): OpenVINO's CPU runtime reads the very ONNX files
onnxruntime runs. Compiled for float32 inference: on CPUs with bf16 or fp16 units OpenVINO would
otherwise lower the precision, and the artifacts are validated at float32. Telemetry is off:
vidsynth.optional.import_openvino keeps its client from starting."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from vidsynth.artifacts.contract import ExportContract
from vidsynth.errors import RuntimeBackendError
from vidsynth.optional import import_openvino
from vidsynth.runtime.backend import Artifacts, Exporter, OnnxGraphsBackend, request_artifacts
from vidsynth.runtime.request import GenerateRequest

logger = logging.getLogger(__name__)

DEVICE = "CPU"


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


class OpenVinoBackend(OnnxGraphsBackend):
    name = "openvino"
    device = "cpu"

    def __init__(self, artifacts: Artifacts, threads: int = 0) -> None:
        self._threads = threads
        super().__init__(artifacts)
        version = import_openvino().__version__.split("-")[0]  # "2026.4.1-22982-<hash>-..." -> "2026.4.1"
        self.detail = f"openvino {version} {DEVICE}, f32"

    def _open(self, path: Path, contract: ExportContract) -> Any:
        """An infer request of the compiled graph. A port can carry several tensor names (an
        input read straight by a Slice also takes the Slice's output name), so each contract
        name must be among its port's names."""
        compiled = compile_graph(path, self._threads)
        got_in = [port.get_names() for port in compiled.inputs]
        got_out = [port.get_names() for port in compiled.outputs]
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
        return compiled.create_infer_request()

    def _run(self, graph: Any, inputs: dict[str, Any], contract: ExportContract) -> list[np.ndarray]:
        graph.infer(inputs)
        # The request reuses its output buffers on the next call: hand out copies.
        return [np.array(graph.get_tensor(name).data, copy=True) for name in contract.output_names]


def open_openvino(request: GenerateRequest, exporter: Exporter | None = None) -> OpenVinoBackend:
    """The OpenVINO backend over the request's artifacts (or its weights, exported first); CPU only."""
    if request.device == "cuda":
        raise RuntimeBackendError(
            "the openvino backend runs on the CPU; on CUDA use --backend onnxruntime, torchscript or eager"
        )
    import_openvino()  # a missing runtime is named before anything is read or exported
    with request_artifacts(request, ("onnx",), exporter) as artifacts:
        backend = OpenVinoBackend(artifacts, request.threads)
    if request.device == "auto":
        logger.info("the openvino backend runs on the CPU")
    return backend
