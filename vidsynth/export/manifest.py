"""manifest.json: what an export directory holds and how to use it. Torch-free, so the ONNX
Runtime script can read and verify exports without torch."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from vidsynth.errors import RuntimeBackendError
from vidsynth.export.contract import MANIFEST_FILE

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "config", "dtype", "inputs", "outputs", "files")


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_record(path: str | os.PathLike) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}


def write_manifest(directory: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Writes manifest.json into `directory` (an export's temporary directory)."""
    path = Path(directory) / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n")
    return path


def read_manifest(directory: str | os.PathLike, verify_hashes: bool = True) -> dict[str, Any]:
    """The manifest of an export directory. With `verify_hashes`, every file it lists must be
    present with the recorded size and sha256; a RuntimeBackendError names the first that is not."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not path.is_file():
        raise RuntimeBackendError(f"{directory} is not a vidsynth export directory: no {MANIFEST_FILE}")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RuntimeBackendError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(manifest, dict):
        raise RuntimeBackendError(f"{path} does not hold a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise RuntimeBackendError(f"{path} lacks the keys {missing}")
    if manifest["format_version"] != FORMAT_VERSION:
        raise RuntimeBackendError(
            f"{path} has format_version {manifest['format_version']!r}; this vidsynth reads version {FORMAT_VERSION}"
        )
    if verify_hashes:
        for name, record in manifest["files"].items():
            verify_file(directory / name, record)
    return manifest


def verify_file(path: Path, record: dict[str, Any]) -> None:
    if not path.is_file():
        raise RuntimeBackendError(f"{path} is listed in {MANIFEST_FILE} but missing")
    size = path.stat().st_size
    if size != record.get("bytes"):
        raise RuntimeBackendError(f"{path} has {size} bytes, {MANIFEST_FILE} says {record.get('bytes')}: file changed or truncated")
    if sha256_file(path) != record.get("sha256"):
        raise RuntimeBackendError(f"{path} does not match its sha256 in {MANIFEST_FILE}: file changed or corrupted")
