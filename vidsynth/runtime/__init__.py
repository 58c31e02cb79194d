"""Make videos from a generator: request -> plan -> backend -> stream -> writer, one module each
(the backends in *_backend(s).py, live streams' chunks in chunks.py, the output directory's
all-or-nothing commit in output.py), and generate_videos in generate.py over them all.

Importing this package stays torch-free; the torch backends are imported only when asked for.
"""

from vidsynth.runtime.generate import GenerateResult, generate_videos
from vidsynth.runtime.request import GenerateRequest

__all__ = ["GenerateRequest", "GenerateResult", "generate_videos"]
