"""ModelConfig: every hyperparameter of a video generator, in one frozen dataclass.

Torch-free on purpose: the ONNX Runtime script reads configs from export manifests.
"""

from __future__ import annotations

import functools
import math
import types
import typing
from dataclasses import asdict, dataclass, fields, replace
from typing import Any, NamedTuple

from vidsynth.errors import ConfigError, choice_error

CELLS = ("lstm", "gru")
MOTION_MODES = ("same-input", "feedback")
IMAGE_SIZES = (64, 96)


_EXPECTED = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "true or false",
    tuple: "a list of strings",
}
MAX_CATEGORY_NAME = 255  # characters: as long as a folder name, since training takes those


def field_type_problems(instance: Any) -> list[str]:
    """One line for each field of a dataclass instance whose value is not of the field's
    declared type (int, float, str, bool, tuple[str, ...], or Optional of one). A bool is not
    an integer here, and an integer is a valid float."""
    problems = []
    for name, (kind, optional) in field_kinds(type(instance)).items():
        value = getattr(instance, name)
        if (value is None and optional) or _is_kind(value, kind):
            continue
        expected = _EXPECTED[kind] + (" or None" if optional else "")
        problems.append(f"{name} must be {expected}, got {value!r}")
    return problems


@functools.cache
def field_kinds(cls: type) -> dict[str, tuple[type, bool]]:
    """Each field's declared type and whether it is Optional: {name: (type, optional)}."""
    hints = typing.get_type_hints(cls)
    return {field.name: _unwrap_optional(hints[field.name]) for field in fields(cls)}


def _unwrap_optional(hint: Any) -> tuple[type, bool]:
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and len(args) == 1:
        return _unwrap_optional(args[0])[0], True
    return typing.get_origin(hint) or hint, False  # tuple for tuple[str, ...], the only generic declared


def _is_kind(value: Any, kind: type) -> bool:
    if kind is tuple:
        return isinstance(value, tuple) and all(isinstance(item, str) for item in value)
    if isinstance(value, bool):
        return kind is bool
    if kind is float:
        return isinstance(value, (int, float))
    return isinstance(value, kind)


def is_category_name(name: str) -> bool:
    """Whether `name` can label a category: printable, not blank, at most MAX_CATEGORY_NAME long."""
    return bool(name.strip()) and len(name) <= MAX_CATEGORY_NAME and name.isprintable()


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
    # What each category shows, by index (training takes the class folder names); empty: the
    # categories are known by number only, as in configs written before names were recorded.
    category_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.category_names, list):  # as JSON and callers give it
            object.__setattr__(self, "category_names", tuple(self.category_names))
        problems = field_type_problems(self)
        if problems:
            raise ConfigError("bad model config: " + "; ".join(problems))
        if self.cell not in CELLS:
            raise choice_error(ConfigError, "cell", self.cell, CELLS)
        if self.motion_mode not in MOTION_MODES:
            raise choice_error(ConfigError, "motion mode", self.motion_mode, MOTION_MODES)
        if self.image_size not in IMAGE_SIZES:
            raise choice_error(ConfigError, "image size", self.image_size, [str(s) for s in IMAGE_SIZES])
        for name in ("ngf", "nc", "d_content", "d_motion", "hidden_size"):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"config field {name} must be a positive integer, got {value!r}")
        if self.n_categories < 0:
            raise ConfigError(f"config field n_categories must be >= 0, got {self.n_categories!r}")
        if not (math.isfinite(self.bn_eps) and self.bn_eps > 0):
            raise ConfigError(f"config field bn_eps must be a finite number > 0, got {self.bn_eps!r}")
        self._check_category_names()

    def _check_category_names(self) -> None:
        names = self.category_names
        if names and len(names) != self.n_categories:
            raise ConfigError(
                f"config field category_names must name all {self.n_categories} categories or none, "
                f"got {len(names)} names"
            )
        for name in names:
            if not is_category_name(name):
                raise ConfigError(
                    "config field category_names must hold printable names of 1 to "
                    f"{MAX_CATEGORY_NAME} characters, got {name[: MAX_CATEGORY_NAME + 1]!r}"
                )
        if len(set(names)) != len(names):
            raise ConfigError(f"config field category_names must be distinct, got {list(names)!r}")

    def category_labels(self) -> str:
        """Every category as users see it, e.g. "0 = wave, 1 = bend" (the index alone where the
        config has no names); "" for an unconditional model."""
        if self.category_names:
            return ", ".join(f"{k} = {name}" for k, name in enumerate(self.category_names))
        return ", ".join(map(str, range(self.n_categories)))

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
        data = asdict(self)
        data["category_names"] = list(self.category_names)  # JSON's form, so dicts compare as read
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown config fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> ModelConfig:
        return replace(self, **changes)


class ImageLayer(NamedTuple):
    """One ConvTranspose2d of the image generator."""

    in_channels: int
    out_channels: int
    kernel: int
    in_side: int  # height and width of its input
    out_side: int


def image_layers(config: ModelConfig) -> list[ImageLayer]:
    """The image generator's ConvTranspose2d layers, first to last: channels go
    nz -> 8ngf -> 4ngf -> 2ngf -> ngf -> nc, the side 1 -> s -> 2s -> 4s -> 8s -> 16s."""
    ngf, side = config.ngf, config.image_size // 16
    channels = [config.nz, 8 * ngf, 4 * ngf, 2 * ngf, ngf, config.nc]
    layers = [ImageLayer(channels[0], channels[1], side, 1, side)]
    for in_channels, out_channels in zip(channels[1:-1], channels[2:]):
        layers.append(ImageLayer(in_channels, out_channels, 4, side, 2 * side))
        side *= 2
    return layers


PRESETS: dict[str, ModelConfig] = {
    # The course assignment: LSTM motion, the same noise fed at every step.
    "assignment": ModelConfig(),
    # DLHacks/mocogan: GRU motion, each step fed the previous step's output.
    "dlhacks": ModelConfig(cell="gru", motion_mode="feedback"),
    # The original MoCoGAN's 64x64 layout.
    "mocogan64": ModelConfig(image_size=64),
}
