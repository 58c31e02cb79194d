"""TrainConfig: every setting of a training run, in one frozen dataclass stored with its
checkpoints, so `--resume` needs no flags that must match."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Optional

from vidsynth.config import CELLS, IMAGE_SIZES, MOTION_MODES, ModelConfig
from vidsynth.errors import InputError, choice_error

DEVICES = ("cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    data: Optional[str]  # folder of clips (one class per subfolder); None with dry_run
    image_size: int = 64  # frame size the generator makes; data are resized to it
    cell: str = "gru"  # motion cell: "gru" (DLHacks) or "lstm" (assignment)
    motion_mode: str = "feedback"  # step input of the motion RNN
    ngf: int = 32  # generator width
    ndf: int = 32  # width of both discriminators
    d_content: int = 50  # content code (MoCoGAN: 50)
    d_motion: int = 10  # motion code per frame (MoCoGAN: 10)
    hidden_size: int = 100  # motion RNN state
    steps: int = 10000  # total generator updates
    batch: int = 16  # videos per batch, and as many single frames for the image critic
    clip_frames: int = 16  # T: frames per training clip
    frame_step: int = 2  # take every n-th frame of the real clips (MoCoGAN's every_nth)
    lr: float = 2e-4  # Adam, as DCGAN and MoCoGAN
    beta1: float = 0.5
    beta2: float = 0.999
    real_label: float = 0.9  # one-sided label smoothing for real samples
    instance_noise: float = 0.1  # std of Gaussian noise added to every critic input
    category_weight: float = 1.0  # weight of the action-classification losses
    # Normalise motion codes with the motion module's stored statistics during training too
    # (its eval mode), exactly as deployed models do. Per-step batch statistics (the
    # assignment's training mode) cannot be reproduced at deployment, where one set of
    # running statistics serves every step, and feedback motion drifts from step to step.
    freeze_motion_norm: bool = True
    device: str = "cpu"
    bf16: bool = False  # bfloat16 autocast (AMX on recent Xeons)
    seed: int = 0
    checkpoint_every: int = 250  # steps between checkpoints (and at the end)
    sample_every: int = 500  # steps between sample sheets
    threads: int = 0  # torch CPU threads; 0 keeps torch's default
    dry_run: bool = False  # a few steps on synthetic data, no files needed

    def __post_init__(self) -> None:
        if self.cell not in CELLS:
            raise choice_error(InputError, "cell", self.cell, CELLS)
        if self.motion_mode not in MOTION_MODES:
            raise choice_error(InputError, "motion mode", self.motion_mode, MOTION_MODES)
        if self.image_size not in IMAGE_SIZES:
            raise choice_error(InputError, "image size", self.image_size, [str(s) for s in IMAGE_SIZES])
        if self.device not in DEVICES:
            raise choice_error(InputError, "device", self.device, DEVICES)
        problems = []
        for name in ("ngf", "ndf", "d_content", "d_motion", "hidden_size", "steps", "frame_step",
                     "checkpoint_every", "sample_every"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch < 2:
            problems.append(f"batch must be >= 2 (batch norm needs it), got {self.batch}")
        if self.clip_frames < 4:
            problems.append(f"clip_frames must be >= 4 (the video critic's time kernels), got {self.clip_frames}")
        if self.threads < 0:
            problems.append(f"threads must be >= 0, got {self.threads}")
        if self.data is None and not self.dry_run:
            problems.append("a data folder is needed unless dry_run")
        if problems:
            raise InputError("bad training settings: " + "; ".join(problems))

    def model_config(self, n_categories: int) -> ModelConfig:
        return ModelConfig(
            image_size=self.image_size, ngf=self.ngf, d_content=self.d_content, d_motion=self.d_motion,
            hidden_size=self.hidden_size, cell=self.cell, motion_mode=self.motion_mode,
            n_categories=n_categories,
        )

    @property
    def span(self) -> int:
        """Real frames one training clip covers."""
        return (self.clip_frames - 1) * self.frame_step + 1

    def command_line(self, run_dir: str, max_minutes: Optional[float] = None, resume: bool = False) -> str:
        """The `vidsynth train` command that makes this run, every setting spelled out."""
        import shlex

        words = ["vidsynth", "train"]
        words += ["--dry-run"] if self.dry_run else ["--data", str(self.data)]
        words += ["--out", str(run_dir)] + (["--resume"] if resume else [])
        for name in ("image_size", "cell", "motion_mode", "ngf", "ndf", "batch", "clip_frames", "frame_step",
                     "steps", "device", "seed", "threads", "checkpoint_every", "sample_every"):
            words += ["--" + name.replace("_", "-"), str(getattr(self, name))]
        words += ["--bf16"] if self.bf16 else []
        words += [] if self.freeze_motion_norm else ["--per-step-motion-norm"]
        words += ["--max-minutes", f"{max_minutes:g}"] if max_minutes else []
        return " ".join(shlex.quote(w) for w in words)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def replace(self, **changes: Any) -> "TrainConfig":
        return replace(self, **changes)
