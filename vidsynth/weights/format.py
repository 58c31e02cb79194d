"""vidsynth's own weights format: a directory with model.safetensors and config.json, and the
strict loading of a state dict that both it and the legacy importers use."""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from vidsynth.atomic import atomic_directory, owned_directory
from vidsynth.checksums import SUMS_FILE, verify_sums, write_sums
from vidsynth.errors import ConfigError, WeightsError
from vidsynth.files import read_small_file
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import VideoGenerator
from vidsynth.version import __version__

TENSORS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
MAX_CONFIG_BYTES = 1 << 20
# Beside the shipped default weights (scripts/ship_default.py).
SHIPPED_EXTRAS = ("MODEL_CARD.md", "quality.json")
_weights_names = owned_directory({TENSORS_FILE, CONFIG_FILE, SUMS_FILE, *SHIPPED_EXTRAS}, CONFIG_FILE)


def recognise_weights(directory: Path) -> str | None:
    """None if `directory` is a weights directory as save_weights (and ship_default) write it,
    judged by what its files hold, not only their names; otherwise why not. What `--force`
    may replace."""
    if (why := _weights_names(directory)) is not None:
        return why
    try:
        read_config(directory)
        if (directory / TENSORS_FILE).exists():
            stored_shapes(directory / TENSORS_FILE)
    except WeightsError:
        return f"its {CONFIG_FILE} or {TENSORS_FILE} is not a vidsynth weights file"
    return None


def save_weights(
    model: VideoGenerator,
    directory: str | os.PathLike,
    provenance: dict[str, Any] | None = None,
    force: bool = False,
) -> Path:
    """Writes `model` atomically. `provenance` records where the weights came from
    (source, training data, steps, ...); the vidsynth version and time are set."""
    record = {
        "model": model.config.to_dict(),
        "provenance": {
            **(provenance or {}),
            "vidsynth_version": __version__,
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    }
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_directory(directory, force=force, recognise=recognise_weights) as tmp:
        save_file(tensors, str(tmp / TENSORS_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(record, indent=2) + "\n")
        write_sums(tmp, (TENSORS_FILE, CONFIG_FILE))
    return Path(directory)


def read_config(directory: str | os.PathLike) -> tuple[ModelConfig, dict[str, Any]]:
    """The ModelConfig and provenance stored in a weights directory."""
    path = Path(directory) / CONFIG_FILE
    try:
        record = json.loads(read_small_file(path, MAX_CONFIG_BYTES, WeightsError, "a weights config.json"))
        return ModelConfig.from_dict(record["model"]), dict(record.get("provenance", {}))
    except FileNotFoundError:
        raise WeightsError(f"{directory} is not a vidsynth weights directory: no {CONFIG_FILE}") from None
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, RecursionError) as exc:
        raise WeightsError(f"{path} is not a valid weights config: {exc}") from None
    except ConfigError as exc:
        raise WeightsError(f"{path}: {exc}") from None


def load_weights(directory: str | os.PathLike) -> VideoGenerator:
    """A VideoGenerator in eval mode with the weights stored in `directory`."""
    directory = Path(directory)
    if directory.is_file():
        raise WeightsError(
            f"weights {str(directory)!r} is a file; pass its directory (the one holding {CONFIG_FILE})"
        )
    if not directory.is_dir():
        raise WeightsError(f"weights directory {directory} does not exist")
    config, provenance = read_config(directory)
    tensors_path = directory / TENSORS_FILE
    if not tensors_path.is_file():
        raise WeightsError(f"{directory} is not a vidsynth weights directory: no {TENSORS_FILE}")
    verify_sums(directory, WeightsError)
    check_shapes(config, stored_shapes(tensors_path), str(tensors_path))
    try:
        state = load_file(str(tensors_path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{tensors_path} is not a readable safetensors file: {exc}") from None
    model = model_from_state(config, state, str(tensors_path))
    model.provenance = provenance
    return model


def stored_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors header, without reading the tensors."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path} is not a readable safetensors file: {exc}") from None


def check_shapes(config: ModelConfig, found: dict[str, tuple[int, ...]], source: str) -> None:
    """Refuses tensors whose names or shapes do not fit `config`, before the model is built: the
    shapes are compared against a model built on the meta device, so a config or checkpoint that
    declares huge sizes is refused before anything that size is allocated."""
    try:
        with torch.device("meta"):
            expected = {key: tuple(value.shape) for key, value in VideoGenerator(config).state_dict().items()}
    except (RuntimeError, ValueError, OverflowError, MemoryError) as exc:
        raise WeightsError(f"{source}: the model its config declares cannot be built ({exc})") from None
    problems = []
    if missing := sorted(set(expected) - set(found)):
        problems.append(f"missing keys {missing}")
    if unexpected := sorted(set(found) - set(expected)):
        problems.append(f"unexpected keys {unexpected}")
    for key in sorted(set(expected) & set(found)):
        if tuple(found[key]) != expected[key]:
            problems.append(f"shape mismatch at {key}: expected {expected[key]}, found {tuple(found[key])}")
    if problems:
        raise WeightsError(f"{source}: " + "; ".join(problems))


def model_from_state(config: ModelConfig, state: dict[str, torch.Tensor], source: str) -> VideoGenerator:
    """A VideoGenerator (eval mode) holding `state`. Refuses names and shapes that do not fit
    `config` (before the model is allocated), non-float dtypes, NaN/inf values and negative
    batch-norm variances (values that would "generate" black videos)."""
    check_shapes(config, {k: tuple(v.shape) for k, v in state.items()}, source)
    model = VideoGenerator(config)
    problems = []
    for key, value in sorted(state.items()):
        if key.endswith("num_batches_tracked"):
            continue
        if not value.dtype.is_floating_point:
            problems.append(f"{key} has dtype {value.dtype}; expected a floating-point type")
        elif not bool(torch.isfinite(value).all()):
            problems.append(f"{key} holds NaN or infinite values")
        elif key.endswith("running_var") and bool((value < 0).any()):
            problems.append(f"{key} holds negative variances")
    if problems:
        raise WeightsError(f"{source}: " + "; ".join(problems[:8]) + (" ..." if len(problems) > 8 else ""))
    model.load_state_dict(state, strict=True)  # copied into the model's float32 parameters
    return model.eval()
