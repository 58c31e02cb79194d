"""generator.pt: torch.jit.script of the whole VideoGenerator.

The motion recurrence stays a real loop over n_frames (prim::Loop). Besides `forward`, the
scripted module keeps `initial_state(z_motion)` and `generate_chunk(z_content, state,
n_frames)` for streaming. The config and vidsynth version ride along as extra files.
"""

from __future__ import annotations

import io
import json
import os

import torch

from vidsynth.errors import ExportError
from vidsynth.model.generator import VideoGenerator
from vidsynth.version import __version__


def script_generator(model: VideoGenerator) -> torch.jit.ScriptModule:
    """The scripted generator (the model must already be in eval mode, on the CPU)."""
    try:
        return torch.jit.script(model)
    except Exception as exc:  # TorchScript raises several unrelated types
        raise ExportError(f"torch.jit.script failed on the generator: {exc}") from exc


def save_torchscript(scripted: torch.jit.ScriptModule, path: str | os.PathLike, config_dict: dict) -> None:
    extra = {
        "config.json": json.dumps(config_dict, indent=2, sort_keys=True),
        "vidsynth_version": __version__,
    }
    # Serialised in memory, then written from Python: torch.jit.save onto a full disk aborts
    # the whole process (a C++ enforce in the zip writer), where a Python write raises OSError.
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer, _extra_files=extra)
    with open(path, "wb") as handle:
        handle.write(buffer.getbuffer())
