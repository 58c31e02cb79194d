"""What a training run needs in memory, estimated before anything is allocated, so settings
that cannot fit (`--batch 1000000`, `--ngf 1000000`) are one clear error instead of a failed
allocation deep in torch or the kernel's OOM killer."""

from __future__ import annotations

import torch

from vidsynth.errors import InputError
from vidsynth.model.config import image_layers
from vidsynth.runtime.plan import available_memory, format_bytes
from vidsynth.train.config import TrainConfig

_FLOAT = 4
_TENSORS_PER_PARAMETER = 4  # the weight, its gradient and Adam's two moments
# Activations kept for the backward pass per frame, as multiples of the generator's layer
# outputs (at ngf, and at ndf for the critics): a lower bound, so no run that fits is refused.
_ACTIVATION_FACTOR = 2


def _activations_per_frame(config: TrainConfig, width: int) -> int:
    model = config.model_config(0).replace(ngf=width)
    return sum(layer.out_channels * layer.out_side**2 for layer in image_layers(model))


def training_bytes(config: TrainConfig, n_categories: int) -> int:
    """A lower bound on the bytes one training step holds: parameters with their gradients and
    Adam moments, and the activations of the generated clips and frames."""
    from vidsynth.model.generator import VideoGenerator
    from vidsynth.train.discriminators import ImageDiscriminator, VideoDiscriminator

    model_config = config.model_config(n_categories)
    try:
        with torch.device("meta"):
            networks = (
                VideoGenerator(model_config),
                ImageDiscriminator(model_config.nc, config.ndf, config.image_size, n_categories),
                VideoDiscriminator(model_config.nc, config.ndf, config.image_size, n_categories),
            )
    except (RuntimeError, ValueError, OverflowError, MemoryError) as exc:
        raise InputError(f"a model with these settings cannot be built ({exc})") from None
    parameters = sum(p.numel() for network in networks for p in network.parameters())
    frames = config.batch * (config.clip_frames + 1)  # the generated clips, and one frame each
    per_frame = _activations_per_frame(config, config.ngf) + _activations_per_frame(config, config.ndf)
    return _FLOAT * (_TENSORS_PER_PARAMETER * parameters + _ACTIVATION_FACTOR * frames * per_frame)


def check_fits(config: TrainConfig, n_categories: int, device: torch.device) -> None:
    """Refuses a run whose lower-bound estimate exceeds the memory free on `device`."""
    needed = training_bytes(config, n_categories)
    if device.type == "cuda":
        free, where = torch.cuda.mem_get_info(device)[0], "free on the GPU"
    else:
        free, where = available_memory(), "available"
    if needed > free:
        raise InputError(
            f"training at --batch {config.batch} --ngf {config.ngf} --ndf {config.ndf} "
            f"({config.image_size}x{config.image_size}, {config.clip_frames}-frame clips) needs at least "
            f"{format_bytes(needed)} of memory, and {format_bytes(free)} is {where}: "
            "lower --batch, --ngf or --ndf"
        )
