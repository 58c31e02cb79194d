"""Export a generator to TorchScript and ONNX, validated against eager PyTorch.

Importing this package stays torch-free (the ONNX Runtime script reads manifests through
`vidsynth.artifacts.manifest`); the exporters load on first use.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from vidsynth.artifacts.manifest import read_manifest

if TYPE_CHECKING:
    from vidsynth.model.generator import VideoGenerator

__all__ = ["export_artifacts", "export_weights", "read_manifest"]


def export_weights(
    model: VideoGenerator | str | None, out_dir: str | os.PathLike, formats: Sequence[str]
) -> dict[str, Any]:
    """`export_artifacts(model, out_dir, formats)` with the default options: the exporter that
    runtime callers pass (vidsynth.runtime.backend.Exporter), importing torch only when called."""
    from vidsynth.export.artifacts import export_artifacts

    return export_artifacts(model, out_dir, formats=formats)


def __getattr__(name: str):
    if name == "export_artifacts":
        from vidsynth.export import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module 'vidsynth.export' has no attribute {name!r}")
