"""The facts `GET /v1/model` reports: config, provenance, size, backend and device.
Read from the weights' config.json and safetensors header, or the export manifest. Torch-free."""

from __future__ import annotations

import json
import struct
from math import prod
from pathlib import Path
from typing import Any

from vidsynth.runtime.backend import Backend
from vidsynth.runtime.request import GenerateRequest

DEMO_PROVENANCE = {"source": "demo: seeded random weights, untrained"}


def _weights_dir(server: GenerateRequest) -> Path | None:
    from vidsynth.weights import DEFAULT_WEIGHTS_DIR

    if server.artifacts is not None or server.weights == "demo":
        return None
    return DEFAULT_WEIGHTS_DIR if server.weights in (None, "default") else Path(server.weights)


BUFFERS = ("running_mean", "running_var", "num_batches_tracked")  # batch-norm state, not parameters


def safetensors_parameters(path: Path) -> int:
    """The model's parameter count from a safetensors file's JSON header alone (no torch)."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    return sum(
        prod(entry["shape"])
        for name, entry in header.items()
        if name != "__metadata__" and not name.endswith(BUFFERS)
    )


def model_card(server: GenerateRequest, backend: Backend) -> dict[str, Any]:
    card: dict[str, Any] = {
        "config": backend.config.to_dict(),
        "backend": backend.name,
        "device": backend.device,
        "detail": backend.detail,
        "weights": server.weights or ("default" if server.artifacts is None else None),
        "artifacts": server.artifacts,
    }
    directory = _weights_dir(server)
    if directory is not None:
        from vidsynth.weights.format import read_config

        card["provenance"] = read_config(directory)[1]
        tensors = directory / "model.safetensors"
        card["size_bytes"] = tensors.stat().st_size
        card["parameters"] = safetensors_parameters(tensors)
    elif server.artifacts is not None:
        manifest = json.loads((Path(server.artifacts) / "manifest.json").read_text())
        card["provenance"] = {
            "source": f"export artifacts (vidsynth {manifest.get('vidsynth_version')})",
            "dtype": manifest.get("dtype"),
        }
    else:
        card["provenance"] = dict(DEMO_PROVENANCE)
    return card
