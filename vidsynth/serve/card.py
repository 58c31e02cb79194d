"""The facts `GET /v1/model` reports: config, provenance, size, backend and device.
Read from the weights' config.json, or the export manifest (torch-free for exports)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidsynth.artifacts.manifest import read_manifest
from vidsynth.runtime.backend import Backend
from vidsynth.runtime.request import GenerateRequest


def _name(where: str | None) -> str | None:
    return None if where is None else Path(where).name


def model_card(server: GenerateRequest, backend: Backend) -> dict[str, Any]:
    card: dict[str, Any] = {
        "config": backend.config.to_dict(),
        "backend": backend.name,
        "device": backend.device,
        "detail": backend.detail,
        # Names only: the server's own paths are none of a client's business.
        "weights": _name(server.weights) or ("default" if server.artifacts is None else None),
        "artifacts": _name(server.artifacts),
    }
    if server.artifacts is not None:
        manifest = read_manifest(server.artifacts, verify_hashes=False)  # the backend verified it
        card["provenance"] = {
            "source": f"export artifacts (vidsynth {manifest.get('vidsynth_version')})",
            "dtype": manifest.get("dtype"),
        }
    elif server.weights == "demo":
        card["provenance"] = {"source": "demo: seeded random weights, untrained"}
    else:
        from vidsynth.model.generator import parameter_count
        from vidsynth.weights import DEFAULT_WEIGHTS_DIR
        from vidsynth.weights.format import read_config

        directory = DEFAULT_WEIGHTS_DIR if server.weights in (None, "default") else Path(server.weights)
        config, card["provenance"] = read_config(directory)
        card["size_bytes"] = (directory / "model.safetensors").stat().st_size
        card["parameters"] = parameter_count(config)
    return card
