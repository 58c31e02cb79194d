"""Export directories as the runtime reads them: the manifest is checked (sha256 of every
file it lists) before any artifact is loaded, so tampered or mixed files are refused.
Torch-free."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from vidsynth.config import ModelConfig
from vidsynth.errors import ConfigError, RuntimeBackendError


class Artifacts:
    def __init__(self, directory: str | Path) -> None:
        from vidsynth.export.manifest import read_manifest

        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise RuntimeBackendError(f"artifacts directory {self.directory} does not exist; make one with `vidsynth export`")
        self.manifest: dict[str, Any] = read_manifest(self.directory, verify_hashes=True)
        try:
            self.config = ModelConfig.from_dict(self.manifest["config"])
        except (KeyError, TypeError, ConfigError) as exc:
            raise RuntimeBackendError(f"{self.directory / 'manifest.json'} has no valid model config: {exc}") from None

    def has(self, filename: str) -> bool:
        return filename in self.manifest.get("files", {})

    def path(self, filename: str, made_by: str) -> Path:
        """The verified path of `filename`; `made_by` names the export format that writes it."""
        if not self.has(filename):
            raise RuntimeBackendError(
                f"artifacts in {self.directory} have no {filename}; export with the {made_by} format"
            )
        return self.directory / filename
