"""TrainConfig: every setting of a training run, in one frozen dataclass stored with its
checkpoints, so `--resume` needs no flags that must match.

Each field is declared once, here: a field with `help` is also a `vidsynth train` option
(vidsynth/train/options.py derives the flags from these declarations).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from vidsynth.errors import ConfigError, InputError, choice_error
from vidsynth.model.config import CELLS, IMAGE_SIZES, MOTION_MODES, ModelConfig, field_type_problems
from vidsynth.runtime.backend import DEVICES


def setting(
    default: Any = None, help: str | None = None, *, directory: bool = False, fixed: bool = False
) -> Any:
    """A TrainConfig field; with `help`, also the option `--field-name` (a bool: a flag that turns
    it on, so bool settings default to False). A `fixed` setting is one a resumed run keeps
    whatever the command line says: it shapes the networks, seeds the random streams, lives in
    the optimizers' checkpointed state, or chooses the data's classes."""
    return field(default=default, metadata={"help": help, "directory": directory, "fixed": fixed})


MAX_SEED = 2**63 - 1  # torch seeds are 64-bit; the run's streams are seeded a few above it


@dataclass(frozen=True)
class TrainConfig:
    data: str | None = setting(
        None, "Folder of clips (videos or image strips), one class per subfolder.", directory=True
    )
    # Frame size the generator makes; data are resized to it.
    image_size: int = setting(64, f"Frame size ({' or '.join(map(str, IMAGE_SIZES))}).", fixed=True)
    # gru (DLHacks), lstm (assignment)
    cell: str = setting("gru", f"Motion cell: {' or '.join(CELLS)}.", fixed=True)
    motion_mode: str = setting(
        "feedback", f"Step input of the motion RNN: {' or '.join(MOTION_MODES)}.", fixed=True
    )
    ngf: int = setting(32, "Generator width.", fixed=True)
    ndf: int = setting(32, "Critic width (both critics).", fixed=True)
    d_content: int = setting(50, fixed=True)  # content code (MoCoGAN: 50)
    d_motion: int = setting(10, fixed=True)  # motion code per frame (MoCoGAN: 10)
    hidden_size: int = setting(100, fixed=True)  # motion RNN state
    steps: int = setting(10000, "Total generator updates (with --resume: the new total).")
    batch: int = setting(16, "Videos per batch (and as many single frames for the image critic).")
    clip_frames: int = setting(16, "Frames per training clip.")
    frame_step: int = setting(2, "Use every n-th frame of the real clips.")  # MoCoGAN's every_nth
    lr: float = setting(2e-4, fixed=True)  # Adam, as DCGAN and MoCoGAN
    beta1: float = setting(0.5, fixed=True)
    beta2: float = setting(0.999, fixed=True)
    real_label: float = setting(0.9)  # one-sided label smoothing for real samples
    instance_noise: float = setting(0.1)  # std of Gaussian noise added to every critic input
    category_weight: float = setting(1.0)  # weight of the action-classification losses
    # Off: motion codes are normalised with the motion module's stored statistics during
    # training too (its eval mode), exactly as deployed models do. Per-step batch statistics
    # (the assignment's training mode) cannot be reproduced at deployment, where one set of
    # running statistics serves every step, and feedback motion drifts from step to step.
    per_step_motion_norm: bool = setting(
        False, "Normalise motion codes with per-step batch statistics in training (deployment cannot)."
    )
    device: str = setting("cpu", f"{', '.join(DEVICES)} (auto: cuda when torch sees a GPU).")
    bf16: bool = setting(
        False, "bfloat16 autocast of the image generator and critics (the motion RNN stays fp32)."
    )
    seed: int = setting(0, "Seed of every random draw of the run.", fixed=True)
    checkpoint_every: int = setting(250, "Steps between checkpoints (and at the end).")
    sample_every: int = setting(500, "Steps between sample sheets.")
    threads: int = setting(0, "torch CPU threads while training (0: torch's default).")
    dry_run: bool = setting(False, "A few steps on synthetic data (no --data needed).", fixed=True)

    def __post_init__(self) -> None:
        if problems := field_type_problems(self):
            raise InputError("bad training settings: " + "; ".join(problems))
        if self.device not in DEVICES:
            raise choice_error(InputError, "device", self.device, DEVICES)
        problems = []
        try:
            self.model_config(n_categories=0)  # the generator's settings, checked where they are defined
        except ConfigError as exc:
            problems.append(str(exc))
        counts = ("ndf", "steps", "frame_step", "checkpoint_every", "sample_every")
        # setting: (whether its value is sound, what it must be)
        rules = {name: (getattr(self, name) >= 1, ">= 1") for name in counts} | {
            "batch": (self.batch >= 2, ">= 2 (batch norm needs it)"),
            "clip_frames": (self.clip_frames >= 4, ">= 4 (the video critic's time kernels)"),
            "threads": (self.threads >= 0, ">= 0"),
            "seed": (0 <= self.seed <= MAX_SEED, "between 0 and 2**63-1"),
            "lr": (0 < self.lr < math.inf, "a finite number > 0"),
            "beta1": (0 <= self.beta1 < 1, "in [0, 1)"),
            "beta2": (0 <= self.beta2 < 1, "in [0, 1)"),
            "real_label": (0 < self.real_label <= 1, "in (0, 1]"),
            "instance_noise": (0 <= self.instance_noise < math.inf, "a finite number >= 0"),
            "category_weight": (0 <= self.category_weight < math.inf, "a finite number >= 0"),
        }
        for name, (sound, must) in rules.items():
            if not sound:
                problems.append(f"{name} must be {must}, got {getattr(self, name)}")
        if self.data is None and not self.dry_run:
            problems.append("--data FOLDER is needed (or --dry-run to train on synthetic clips)")
        if problems:
            raise InputError("bad training settings: " + "; ".join(problems))

    def model_config(self, n_categories: int, category_names: Sequence[str] = ()) -> ModelConfig:
        return ModelConfig(
            image_size=self.image_size,
            ngf=self.ngf,
            d_content=self.d_content,
            d_motion=self.d_motion,
            hidden_size=self.hidden_size,
            cell=self.cell,
            motion_mode=self.motion_mode,
            n_categories=n_categories,
            category_names=tuple(category_names),
        )

    @property
    def span(self) -> int:
        """Real frames one training clip covers."""
        return (self.clip_frames - 1) * self.frame_step + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        if "freeze_motion_norm" in data:  # how existing runs and the shipped weights record the inverse
            frozen = data.pop("freeze_motion_norm")
            data.setdefault("per_step_motion_norm", not frozen if isinstance(frozen, bool) else frozen)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)


FIXED_ON_RESUME = tuple(f.name for f in fields(TrainConfig) if f.metadata["fixed"])
