"""The TorchScript backend: generator.pt from an export directory, or a model scripted in
process from weights."""
from __future__ import annotations

from typing import Callable, Optional

import torch

from vidsynth.runtime.backends.artifacts import Artifacts
from vidsynth.runtime.backends.torch_backend import TorchBackend, torch_device

TORCHSCRIPT_FILE = "generator.pt"


def open_torchscript(
    artifacts: Optional[str], weights: Optional[str], device: str, notify: Callable[[str], None]
) -> TorchBackend:
    if artifacts is not None:
        exported = Artifacts(artifacts)
        path = exported.path(TORCHSCRIPT_FILE, "torchscript")
        choice = torch_device(device)
        from vidsynth.export.torchscript_ops import load_checked

        module = load_checked(path, exported.manifest.get("torchscript_ops"), choice.name)
        config = exported.config
    else:
        from vidsynth.weights import load_model

        model = load_model(weights).eval()
        choice = torch_device(device)
        module = torch.jit.script(model).to(choice.name)
        config = model.config
    if choice.note:
        notify(choice.note)
    return TorchBackend("torchscript", module.eval(), config, choice.name)
