"""Make videos from a generator: backends (eager, TorchScript, ONNX Runtime), device choice,
memory planning, chunked streaming and video writing.

Importing this package stays torch-free: `python -m vidsynth.runtime.ort` runs without torch.
The torch backends are imported only when asked for.
"""
from __future__ import annotations

__all__ = ["GenerateRequest", "GenerateResult", "generate_videos"]


def __getattr__(name: str):
    if name == "GenerateRequest":
        from vidsynth.runtime.request import GenerateRequest

        return GenerateRequest
    if name in ("GenerateResult", "generate_videos"):
        from vidsynth.runtime import generate

        return getattr(generate, name)
    raise AttributeError(f"module 'vidsynth.runtime' has no attribute {name!r}")
