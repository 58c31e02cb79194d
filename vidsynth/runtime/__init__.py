"""Make videos from a generator: request -> plan -> backend -> stream -> writer.

request.py    GenerateRequest: every option, validated once
plan.py       how much memory a request needs and how to split it
backend.py    the Backend interface, devices, export directories, the registry of backends
hardware.py   what this machine offers, and the backend `auto` picks from it
*_backend(s).py  torch (eager, optimized, torchscript, .pt2), ONNX Runtime, OpenVINO
stream.py     the generation loop and the float -> uint8 conversion (chunks.py: live streams)
writers.py    mp4 / gif / png writers (ffmpeg.py: the checked mp4 encoder process)
output.py     the output directory: staging, a lock, an all-or-nothing commit
sharing.py    whether videos stacked into one model call keep the values they get alone
generate.py   generate_videos, the public function

Importing this package stays torch-free; the torch backends are imported only when asked for.
"""

from vidsynth.runtime.generate import GenerateResult, generate_videos
from vidsynth.runtime.request import GenerateRequest

__all__ = ["GenerateRequest", "GenerateResult", "generate_videos"]
