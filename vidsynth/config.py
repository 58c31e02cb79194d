"""ModelConfig: every hyperparameter of a video generator, in one frozen dataclass.

Torch-free on purpose: the ONNX Runtime script reads configs from export manifests.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from vidsynth.errors import ConfigError, choice_error

CELLS = ("lstm", "gru")
MOTION_MODES = ("same-input", "feedback")
IMAGE_SIZES = (64, 96)


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 96  # 96 (assignment, DLHacks) or 64 (original MoCoGAN): sets the first kernel
    ngf: int = 64  # generator width; channels go 8ngf -> 4ngf -> 2ngf -> ngf -> nc
    nc: int = 3  # output channels (RGB)
    d_content: int = 50  # content code, fixed for a whole video
    d_motion: int = 10  # motion code, one per frame from the recurrence
    hidden_size: int = 100  # recurrent state width
    cell: str = "lstm"  # "lstm" (assignment) or "gru" (DLHacks)
    motion_mode: str = "same-input"  # step input: same noise each step, or the previous output
    n_categories: int = 0  # >0: a one-hot action category is appended to the content code
    bn_eps: float = 1e-5  # BatchNorm epsilon, as torch.nn's default

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise choice_error(ConfigError, "cell", self.cell, CELLS)
        if self.motion_mode not in MOTION_MODES:
            raise choice_error(ConfigError, "motion mode", self.motion_mode, MOTION_MODES)
        if self.image_size not in IMAGE_SIZES:
            raise choice_error(ConfigError, "image size", self.image_size, [str(s) for s in IMAGE_SIZES])
        for name in ("ngf", "nc", "d_content", "d_motion", "hidden_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ConfigError(f"config field {name} must be a positive integer, got {value!r}")
        if not isinstance(self.n_categories, int) or self.n_categories < 0:
            raise ConfigError(f"config field n_categories must be >= 0, got {self.n_categories!r}")

    @property
    def nz(self) -> int:
        """Width of the image generator's input: motion, then content, then category."""
        return self.d_motion + self.d_content + self.n_categories

    @property
    def state_size(self) -> int:
        """Width of the recurrent state carried between chunks: [h | c (LSTM only) | next input]."""
        cell_state = 2 * self.hidden_size if self.cell == "lstm" else self.hidden_size
        return cell_state + self.d_motion

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ModelConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> "ModelConfig":
        return replace(self, **changes)


PRESETS: dict[str, ModelConfig] = {
    # The course assignment: LSTM motion, the same noise fed at every step.
    "assignment": ModelConfig(),
    # DLHacks/mocogan: GRU motion, each step fed the previous step's output.
    "dlhacks": ModelConfig(cell="gru", motion_mode="feedback"),
    # The original MoCoGAN's 64x64 layout.
    "mocogan64": ModelConfig(image_size=64),
}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise choice_error(ConfigError, "preset", name, sorted(PRESETS))
    return PRESETS[name]
