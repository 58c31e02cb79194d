"""The .pt2 backend: the AOTInductor packages of an export directory (`vidsynth export
--formats pt2`), compiled for the CPU by the torch that runs them."""
from __future__ import annotations

from typing import Callable

from vidsynth.errors import RuntimeBackendError
from vidsynth.runtime.backends.artifacts import Artifacts
from vidsynth.runtime.backends.torch_backend import TorchBackend


def open_pt2(artifacts: str, device: str, notify: Callable[[str], None]) -> TorchBackend:
    from vidsynth.export.pt2 import IMAGE_FILE, MOTION_FILE, load_pt2

    if device == "cuda":
        raise RuntimeBackendError("the pt2 backend runs packages compiled for the CPU; use --device cpu, or --backend torchscript on CUDA")
    exported = Artifacts(artifacts)
    for file in (MOTION_FILE, IMAGE_FILE):
        exported.path(file, "pt2")  # named error when the export has no .pt2 packages
    made_with = exported.manifest.get("pt2", {}).get("torch_version")
    generator = load_pt2(exported.directory, exported.config, made_with)
    if device == "auto":
        notify("the pt2 backend runs on the CPU (its packages are compiled for it)")
    backend = TorchBackend("pt2", generator, exported.config, "cpu")
    backend.detail += ", AOTInductor"
    return backend
