"""Backends behind one interface (see base.Backend). `open_backend` imports only the one
asked for, so the ONNX Runtime path never imports torch."""
from __future__ import annotations

import tempfile
from typing import Callable

from vidsynth.runtime.backends.base import Backend
from vidsynth.runtime.request import GenerateRequest

__all__ = ["Backend", "open_backend"]


def open_backend(request: GenerateRequest, notify: Callable[[str], None] = lambda message: None) -> Backend:
    backend = request.resolved_backend
    if backend == "eager":
        from vidsynth.runtime.backends.eager import open_eager

        return open_eager(request.weights, request.device, notify)
    if backend.startswith("optimized"):
        from vidsynth.runtime.backends.optimized import open_optimized

        return open_optimized(request.weights, request.device, "bf16" if backend.endswith("bf16") else "fp32", notify)
    if backend == "pt2":
        from vidsynth.runtime.backends.pt2 import open_pt2

        return open_pt2(request.artifacts, request.device, notify)
    if backend == "torchscript":
        from vidsynth.runtime.backends.torchscript import open_torchscript

        return open_torchscript(request.artifacts, request.weights, request.device, notify)
    from vidsynth.runtime.backends.onnx_runtime import open_onnxruntime

    if request.artifacts is not None:
        return open_onnxruntime(request.artifacts, request.device, notify)
    return _onnxruntime_from_weights(request, notify)


def _onnxruntime_from_weights(request: GenerateRequest, notify: Callable[[str], None]) -> Backend:
    """Exports the weights to a temporary directory and loads the sessions from it (the
    sessions keep the models in memory, so the directory can go). Needs torch."""
    from vidsynth.export import export_artifacts
    from vidsynth.runtime.backends.onnx_runtime import open_onnxruntime
    from vidsynth.weights import load_model

    model = load_model(request.weights)
    notify("exporting the weights to ONNX for onnxruntime (use `vidsynth export` once and --artifacts to skip this)")
    with tempfile.TemporaryDirectory(prefix="vidsynth-onnx-") as tmp:
        directory = f"{tmp}/artifacts"
        export_artifacts(model, directory, formats=("onnx",))
        return open_onnxruntime(directory, request.device, notify)
