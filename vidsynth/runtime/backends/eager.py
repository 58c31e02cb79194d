"""The eager backend: the VideoGenerator from a weights directory (or default/demo)."""
from __future__ import annotations

from typing import Callable, Optional

from vidsynth.runtime.backends.torch_backend import TorchBackend, torch_device


def open_eager(weights: Optional[str], device: str, notify: Callable[[str], None]) -> TorchBackend:
    from vidsynth.weights import load_model

    model = load_model(weights)
    choice = torch_device(device)
    if choice.note:
        notify(choice.note)
    model = model.to(choice.name).eval()
    return TorchBackend("eager", model, model.config, choice.name)
