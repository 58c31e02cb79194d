"""Make videos from a generator: request -> plan -> backend -> stream -> writer.

request.py    GenerateRequest: every option, validated once
plan.py       how much memory a request needs and how to split it
backend.py    the Backend interface, devices, export directories, the registry of backends
hardware.py   what this machine offers, and the backend `auto` picks from it
*_backend(s).py  torch (eager, optimized, torchscript), ONNX Runtime, OpenVINO, .pt2
onnx_graphs.py what the ONNX Runtime and OpenVINO backends share: the two graphs, fed by the contract
stream.py     the chunked generation loop and the float -> uint8 conversion
writers.py    mp4 / gif / png writers (ffmpeg.py: the checked mp4 encoder process)
output.py     the output directory: staging, a lock, an all-or-nothing commit
sharing.py    whether videos stacked into one model call keep the values they get alone
generate.py   generate_videos, the public function

Importing this package stays torch-free; the torch backends are imported only when asked for.
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
