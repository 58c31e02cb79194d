"""manifest.json: what an export directory holds and how to use it. Torch-free, so the ONNX
Runtime script can read and verify exports without torch."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from vidsynth.errors import RuntimeBackendError
from vidsynth.export.contract import GRAPH_REWRITES, MANIFEST_FILE
from vidsynth.version import __version__

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
    check_readable(manifest, path)
    if verify_hashes:
        for name, record in manifest["files"].items():
            verify_file(directory / name, record)
    return manifest


def check_readable(manifest: dict[str, Any], path: Path) -> None:
    """Refuses a manifest this vidsynth cannot honour: a newer format, or graphs carrying a
    rewrite it does not know (naming the versions of both sides)."""
    written_by = f"vidsynth {manifest.get('vidsynth_version', '(unknown version)')}"
    version = manifest["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise RuntimeBackendError(f"{path} has format_version {version!r}; expected a positive integer")
    if version > FORMAT_VERSION:
        raise RuntimeBackendError(
            f"{path} was written by {written_by} in format_version {version}; this vidsynth {__version__} reads "
            f"format_version {FORMAT_VERSION} and older: upgrade vidsynth, or export again with this one"
        )
    rewrites = manifest.get("rewrites", [])
    if not isinstance(rewrites, list) or not all(isinstance(name, str) for name in rewrites):
        raise RuntimeBackendError(f"{path} has rewrites {rewrites!r}; expected a list of names")
    unknown = [name for name in rewrites if name not in GRAPH_REWRITES]
    if unknown:
        raise RuntimeBackendError(
            f"{path} lists graph rewrites {unknown} unknown to this vidsynth {__version__} (written by {written_by}); "
            f"known: {', '.join(GRAPH_REWRITES)}: upgrade vidsynth, or export again with --no-optimize"
        )


def verify_file(path: Path, record: dict[str, Any]) -> None:
    if not path.is_file():
        raise RuntimeBackendError(f"{path} is listed in {MANIFEST_FILE} but missing")
    size = path.stat().st_size
    if size != record.get("bytes"):
        raise RuntimeBackendError(f"{path} has {size} bytes, {MANIFEST_FILE} says {record.get('bytes')}: file changed or truncated")
    if sha256_file(path) != record.get("sha256"):
        raise RuntimeBackendError(f"{path} does not match its sha256 in {MANIFEST_FILE}: file changed or corrupted")
