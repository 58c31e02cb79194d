"""Make videos from a generator: request -> plan -> backend -> stream -> writer, one module each,
and generate_videos over them all. Importing this package stays torch-free; the torch backends
are imported only when asked for."""

from vidsynth.runtime.generate import GenerateResult, generate_videos
from vidsynth.runtime.request import GenerateRequest

__all__ = ["GenerateRequest", "GenerateResult", "generate_videos"]
