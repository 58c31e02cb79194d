"""Importers for the public MoCoGAN checkpoints (pickled state dicts, read without unpickling
arbitrary objects): the course assignment's Generator_I + LSTM, and DLHacks/mocogan's
Generator_I + GRU. Modules built from torch.nn.LSTMCell / GRUCell save the same keys."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import torch

from vidsynth.errors import WeightsError
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import VideoGenerator
from vidsynth.weights.format import model_from_state

_FIRST_KERNEL_TO_SIZE = {6: 96, 4: 64}
_MOTION_MODES = {"lstm": "same-input", "gru": "feedback"}  # each public checkpoint's, by its cell


def read_checkpoint(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A legacy state dict, loaded with weights_only=True onto the CPU."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"checkpoint {path} does not exist")
    _check_zip_crcs(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # the restricted unpickler raises many kinds on damaged input
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise WeightsError(
            f"{path} is not a readable PyTorch checkpoint ({type(exc).__name__}: {detail})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path} does not hold a state dict of tensors")
    for key, tensor in state.items():
        # Stride 0 or overlapping views: sizes that would build a model far larger than the file.
        if tensor.numel() * tensor.element_size() > tensor.untyped_storage().nbytes():
            raise WeightsError(
                f"{path}: {key} declares shape {tuple(tensor.shape)} with strides {tensor.stride()}, "
                "more elements than the file stores; refusing it"
            )
    return {k.removeprefix("module."): v for k, v in state.items()}


def _check_zip_crcs(path: Path) -> None:
    """torch.load skips the zip CRCs, so a flipped byte would load as a silently wrong weight."""
    if not zipfile.is_zipfile(path):
        return  # the pre-1.6 (non-zip) format carries no checksums
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
        raise WeightsError(f"{path} is a damaged checkpoint archive: {exc}") from None
    if bad is not None:
        raise WeightsError(f"{path} is damaged: {bad} fails its CRC check (the file was corrupted)")


def _generator_layout(state: dict[str, torch.Tensor], path: Path) -> dict[str, int]:
    if "main.0.weight" not in state:
        raise WeightsError(
            f"{path} is not a Generator_I checkpoint: no key main.0.weight (found {sorted(state)[:6]})"
        )
    first = state["main.0.weight"]  # ConvTranspose2d weight: (nz, 8ngf, k, k)
    last = state.get("main.12.weight")
    if first.dim() != 4 or last is None or last.dim() != 4:
        raise WeightsError(f"{path} does not have Generator_I's layout (main.0 and main.12 ConvTranspose2d)")
    kernel = first.shape[-1]
    if kernel not in _FIRST_KERNEL_TO_SIZE:
        raise WeightsError(
            f"{path}: first kernel {kernel} matches no known image size (6 -> 96px, 4 -> 64px)"
        )
    return {
        "nz": first.shape[0],
        "ngf": first.shape[1] // 8,
        "nc": last.shape[1],
        "image_size": _FIRST_KERNEL_TO_SIZE[kernel],
    }


def _motion_layout(state: dict[str, torch.Tensor], path: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """The cell kind and the motion state dict with nn.GRU's `_l0` suffixes removed."""
    state = {k.removesuffix("_l0"): v for k, v in state.items()}
    for cell in _MOTION_MODES:
        if f"{cell}.weight_ih" in state:
            return cell, state
    raise WeightsError(
        f"{path} is not a motion checkpoint: expected lstm.weight_ih or gru.weight_ih (found "
        f"{sorted(state)[:6]})"
    )


def import_legacy(generator_path: str | os.PathLike, motion_path: str | os.PathLike) -> VideoGenerator:
    """A VideoGenerator (eval mode) holding a legacy Generator_I and LSTM/GRU checkpoint pair."""
    generator_path, motion_path = Path(generator_path), Path(motion_path)
    generator_state = read_checkpoint(generator_path)
    motion_state = read_checkpoint(motion_path)
    layout = _generator_layout(generator_state, generator_path)
    cell, motion_state = _motion_layout(motion_state, motion_path)
    weight_ih, weight_hh = (motion_state.get(f"{cell}.{name}") for name in ("weight_ih", "weight_hh"))
    if weight_hh is None or weight_ih.dim() != 2 or weight_hh.dim() != 2:
        raise WeightsError(
            f"{motion_path} is not a complete {cell.upper()} checkpoint: {cell}.weight_ih and "
            f"{cell}.weight_hh must both be matrices (found {cell}.weight_ih {tuple(weight_ih.shape)}, "
            f"{cell}.weight_hh {'missing' if weight_hh is None else tuple(weight_hh.shape)})"
        )
    d_motion, hidden_size = weight_ih.shape[1], weight_hh.shape[1]
    nz = layout.pop("nz")
    if nz - d_motion < 1:
        raise WeightsError(
            f"{motion_path} (d_motion={d_motion}) does not fit {generator_path} (nz={nz}): "
            "the generator's input must be wider than the motion code"
        )
    config = ModelConfig(
        **layout,
        d_content=nz - d_motion,
        d_motion=d_motion,
        hidden_size=hidden_size,
        cell=cell,
        motion_mode=_MOTION_MODES[cell],
    )
    state = {f"image.{k}": v for k, v in generator_state.items()}
    state.update({f"motion.{k}": v for k, v in motion_state.items()})
    # Checkpoints from torch < 0.4 have no BatchNorm batch counters; they are unused at inference.
    for key in [k for k in state if k.endswith(".running_mean")]:
        state.setdefault(key.replace("running_mean", "num_batches_tracked"), torch.tensor(0))
    return model_from_state(config, state, f"{generator_path} + {motion_path}")
