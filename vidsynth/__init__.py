"""vidsynth: ship a MoCoGAN recurrent video generator.

Importing the package stays light (no torch): the ONNX Runtime script runs without torch.
"""

import logging

from vidsynth.errors import VidsynthError
from vidsynth.model.config import PRESETS, ModelConfig
from vidsynth.version import __version__

# A library prints nothing on its own: `vidsynth` (the CLI) or the embedding program adds handlers.
logging.getLogger(__name__).addHandler(logging.NullHandler())

__all__ = ["ModelConfig", "PRESETS", "VidsynthError", "__version__", "load_model"]


def __getattr__(name: str):
    if name == "load_model":
        from vidsynth.weights import load_model

        return load_model
    raise AttributeError(f"module 'vidsynth' has no attribute {name!r}")
