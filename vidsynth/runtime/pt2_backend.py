"""The .pt2 backend: the AOTInductor packages of an export directory (`vidsynth export
--formats pt2`), compiled for the CPU by the torch that runs them. Given weights instead, it
exports them first, which compiles C++ for minutes: export once and pass --artifacts."""

from __future__ import annotations

import logging
from contextlib import nullcontext

from vidsynth.artifacts.contract import PT2_IMAGE_FILE, PT2_MOTION_FILE
from vidsynth.errors import RuntimeBackendError
from vidsynth.runtime.backend import Artifacts, Exporter, exported_weights
from vidsynth.runtime.request import GenerateRequest
from vidsynth.runtime.torch_backends import TorchBackend

logger = logging.getLogger(__name__)


def open_pt2(request: GenerateRequest, exporter: Exporter | None = None) -> TorchBackend:
    from vidsynth.artifacts.pt2 import load_pt2

    if request.device == "cuda":
        raise RuntimeBackendError(
            "the pt2 backend runs packages compiled for the CPU; use --device cpu, or --backend "
            "torchscript on CUDA"
        )
    source = (
        nullcontext(Artifacts(request.artifacts))
        if request.artifacts is not None
        else exported_weights(request, ("pt2",), exporter)
    )
    with source as exported:
        for file in (PT2_MOTION_FILE, PT2_IMAGE_FILE):
            exported.path(file, "pt2")  # a named error when the export has no .pt2 packages
        made_with = exported.manifest.get("pt2", {}).get("torch_version")
        generator = load_pt2(exported.directory, exported.config, made_with)
    if request.device == "auto":
        logger.info("the pt2 backend runs on the CPU (its packages are compiled for it)")
    backend = TorchBackend("pt2", generator, exported.config, "cpu")
    backend.detail += ", AOTInductor"
    return backend
