"""manifest.json: what an export directory holds and how to use it. Torch-free, so the ONNX
Runtime script can read and verify exports without torch."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

from vidsynth.artifacts.contract import GRAPH_REWRITES, MANIFEST_FILE, TORCHSCRIPT_FILE
from vidsynth.checksums import sha256_file
from vidsynth.errors import ConfigError, RuntimeBackendError, VidsynthError
from vidsynth.files import read_small_file
from vidsynth.model.config import ModelConfig, image_layers
from vidsynth.version import __version__

FORMAT_VERSION = 1
REQUIRED_KEYS = ("format_version", "config", "dtype", "inputs", "outputs", "files")
MAX_MANIFEST_BYTES = 1 << 20
MAX_FILE_BYTES = 1 << 40
MAX_FILES = 64
# A plain file name inside the export directory: no separators, no "..", no hidden names.
_PLAIN_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def file_record(path: str | os.PathLike) -> dict[str, Any]:
    return {"sha256": sha256_file(path), "bytes": os.path.getsize(path)}


def write_manifest(directory: str | os.PathLike, manifest: dict[str, Any]) -> Path:
    """Writes manifest.json into `directory` (an export's temporary directory)."""
    path = Path(directory) / MANIFEST_FILE
    path.write_text(json.dumps(manifest, indent=2, allow_nan=False) + "\n")
    return path


def read_manifest(directory: str | os.PathLike, verify_hashes: bool = True) -> dict[str, Any]:
    """The manifest of an export directory. Its structure is checked (file names must be plain
    names inside the directory); with `verify_hashes`, every file it lists must be present with
    the recorded size and sha256. A RuntimeBackendError names the first problem."""
    directory = Path(directory)
    path = directory / MANIFEST_FILE
    if not os.path.lexists(path):
        raise RuntimeBackendError(f"{directory} is not a vidsynth export directory: no {MANIFEST_FILE}")
    try:
        data = read_small_file(path, MAX_MANIFEST_BYTES, RuntimeBackendError, "a vidsynth manifest.json")
    except OSError as exc:
        raise RuntimeBackendError(f"cannot read {path}: {exc.strerror}") from None
    try:
        manifest = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise RuntimeBackendError(f"{path} is not text (not UTF-8); expected a vidsynth manifest") from None
    except json.JSONDecodeError as exc:
        raise RuntimeBackendError(f"{path} is not valid JSON: {exc}") from None
    except (RecursionError, ValueError):  # nesting too deep for the parser; an integer of thousands of digits
        raise RuntimeBackendError(
            f"{path} is not a vidsynth manifest: nested too deeply or a number too large"
        ) from None
    check_structure(manifest, path)
    if verify_hashes:
        largest = largest_artifact_bytes(manifest["config"])
        for name, record in manifest["files"].items():  # every size before any hashing
            if record["bytes"] > largest:
                raise RuntimeBackendError(
                    f"{path} lists {name} at {record['bytes']:,} bytes, more than an export of its model "
                    f"can hold (at most {largest:,}): the manifest or the file is not what vidsynth wrote"
                )
            check_size(directory / name, record)
        for name, record in manifest["files"].items():
            if sha256_file(directory / name) != record["sha256"]:
                raise RuntimeBackendError(
                    f"{directory / name} does not match its sha256 in {MANIFEST_FILE}: "
                    "file changed or corrupted"
                )
    return manifest


# A graph file holds its weights (at most 8 bytes each) and the graph itself; compiled .pt2
# packages add their machine code.
_BYTES_PER_WEIGHT = 8
_GRAPH_BYTES = 256 << 20


def largest_artifact_bytes(config: Any) -> int:
    """The most bytes one export file of a model with `config` can take; MAX_FILE_BYTES when
    the config is not one this vidsynth reads (the backends then refuse it)."""
    try:
        model = ModelConfig.from_dict(config)
    except (ConfigError, TypeError, ValueError, KeyError):
        return MAX_FILE_BYTES
    image = sum(layer.in_channels * layer.out_channels * layer.kernel**2 for layer in image_layers(model))
    hidden, motion = model.hidden_size, model.d_motion
    recurrent = 4 * hidden * (hidden + motion + 2) + hidden * (motion + 1)
    weights = image + 2 * recurrent + 8 * model.ngf * 4  # batch norms: four values per channel
    return min(MAX_FILE_BYTES, _BYTES_PER_WEIGHT * weights + _GRAPH_BYTES)


def check_structure(manifest: Any, path: Path) -> None:
    """Refuses a manifest whose shape is not the one vidsynth writes, with one error listing why."""
    if not isinstance(manifest, dict):
        raise RuntimeBackendError(f"{path} does not hold a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in manifest]
    if missing:
        raise RuntimeBackendError(f"{path} lacks the keys {missing}")
    check_readable(manifest, path)
    problems = []
    if not isinstance(manifest["config"], dict):
        problems.append("config is not an object")
    files = manifest["files"]
    if not isinstance(files, dict):
        problems.append("files is not an object of name -> {sha256, bytes}")
    elif len(files) > MAX_FILES:
        problems.append(f"files lists {len(files)} entries (at most {MAX_FILES})")
    else:
        problems += filter(None, (_file_entry_problem(name, record) for name, record in files.items()))
    if isinstance(files, dict) and TORCHSCRIPT_FILE in files and "torchscript_ops" not in manifest:
        problems.append(f"it lists {TORCHSCRIPT_FILE} without torchscript_ops, the operators it may run")
    if "torchscript_ops" in manifest:
        ops = manifest["torchscript_ops"]
        if not (
            isinstance(ops, list)
            and len(ops) < 10_000
            and all(isinstance(op, str) and len(op) < 200 for op in ops)
        ):
            problems.append("torchscript_ops is not a list of operator names")
    if problems:
        raise RuntimeBackendError(f"{path} is not a valid vidsynth manifest: " + "; ".join(problems[:5]))


def _file_entry_problem(name: str, record: Any) -> str | None:
    if not _PLAIN_NAME.match(name) or ".." in name:
        return f"file name {name[:80]!r} is not a plain name inside the export directory"
    if not isinstance(record, dict):
        return f"the record of {name} is not an object"
    size, digest = record.get("bytes"), record.get("sha256")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= MAX_FILE_BYTES:
        return f"{name}: bytes is not a size between 0 and {MAX_FILE_BYTES}"
    if not isinstance(digest, str) or not _SHA256.match(digest):
        return f"{name}: sha256 is not 64 lowercase hex digits"
    return None


def check_readable(manifest: dict[str, Any], path: Path) -> None:
    """Refuses a manifest this vidsynth cannot honour: a newer format, or graphs carrying a
    rewrite it does not know (naming the versions of both sides)."""
    written_by = f"vidsynth {str(manifest.get('vidsynth_version', '(unknown version)'))[:40]}"
    version = manifest["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version < 10**6:
        small = isinstance(version, (int, float)) and abs(version) < 10**6
        shown = repr(version) if small else "an unknown version"
        raise RuntimeBackendError(f"{path} has format_version {shown}; expected a positive integer")
    if version > FORMAT_VERSION:
        raise RuntimeBackendError(
            f"{path} was written by {written_by} in format_version {version}; this vidsynth "
            f"{__version__} reads "
            f"format_version {FORMAT_VERSION} and older: upgrade vidsynth, or export again with this one"
        )
    rewrites = manifest.get("rewrites", [])
    if not isinstance(rewrites, list) or not all(isinstance(name, str) for name in rewrites):
        raise RuntimeBackendError(f"{path} has rewrites {rewrites!r}; expected a list of names")
    unknown = [name for name in rewrites if name not in GRAPH_REWRITES]
    if unknown:
        raise RuntimeBackendError(
            f"{path} lists graph rewrites {unknown} unknown to this vidsynth {__version__} (written by "
            f"{written_by}); "
            f"known: {', '.join(GRAPH_REWRITES)}: upgrade vidsynth, or export again with --no-optimize"
        )


def check_size(path: Path, record: dict[str, Any]) -> None:
    """`path` must be a regular file, not a link, of the recorded size."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise RuntimeBackendError(f"{path} is listed in {MANIFEST_FILE} but missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise RuntimeBackendError(
            f"{path} is not a regular file (a link or a device); {MANIFEST_FILE} lists a file"
        )
    if info.st_size != record["bytes"]:
        raise RuntimeBackendError(
            f"{path} does not have the size {MANIFEST_FILE} records: file changed or truncated"
        )


def recognise_export(directory: Path) -> str | None:
    """None if `directory` is an export vidsynth wrote (its manifest and the files it lists,
    nothing else); otherwise why not. What `export --force` may replace."""
    try:
        manifest = read_manifest(directory, verify_hashes=False)
    except VidsynthError:
        return f"it has no valid {MANIFEST_FILE}"
    extra = sorted({entry.name for entry in directory.iterdir()} - {MANIFEST_FILE, *manifest["files"]})
    if extra:
        listed = ", ".join(extra[:5]) + (" ..." if len(extra) > 5 else "")
        return f"it also holds {listed}, which the manifest does not list"
    return None
