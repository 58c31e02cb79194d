"""The MoCoGAN video generator: a recurrent motion module feeding a DCGAN image generator."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from vidsynth.model.config import ModelConfig
from vidsynth.model.layers import GRU, LSTM, check_n_frames, initial_state


def dcgan_init(module: nn.Module) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), batch-norm scales N(1, 0.02)."""
    if getattr(module, "weight", None) is not None and module.weight.is_meta:
        return  # no values to set; torch's meta normal_ would import all of torch._dynamo
    if isinstance(module, (nn.ConvTranspose2d, nn.Conv2d, nn.Conv3d)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, (nn.BatchNorm2d, nn.BatchNorm3d)) and module.affine:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class ImageGenerator(nn.Module):
    """DCGAN generator: (N, nz, 1, 1) latents -> (N, nc, S, S) images in [-1, 1].

    State-dict keys are `main.N...` exactly as in the public Generator_I checkpoints.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        nz, ngf, nc = config.nz, config.ngf, config.nc
        first_kernel = config.image_size // 16  # 6 for 96x96, 4 for 64x64: s below
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, first_kernel, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8, eps=config.bn_eps),
            nn.ReLU(True),
            # state size: (ngf*8) x s x s
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4, eps=config.bn_eps),
            nn.ReLU(True),
            # state size: (ngf*4) x 2s x 2s
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2, eps=config.bn_eps),
            nn.ReLU(True),
            # state size: (ngf*2) x 4s x 4s
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf, eps=config.bn_eps),
            nn.ReLU(True),
            # state size: ngf x 8s x 8s
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
            # state size: nc x 16s x 16s (96 or 64)
        )
        self.apply(dcgan_init)

    def forward(self, z: Tensor) -> Tensor:
        return self.main(z)


def frame_latents(codes: Tensor, z_content: Tensor, n_categories: int, category: Tensor | None) -> Tensor:
    """The image generator's input for every frame, (B*T, nz, 1, 1), batch-major:
    z_t = cat(motion code t, content code[, one-hot category]). `codes` is (T, B, d_motion)."""
    n_frames, batch = codes.size(0), codes.size(1)
    content = z_content
    if n_categories > 0:
        if category is None:
            category = torch.zeros(batch, dtype=torch.long, device=z_content.device)
        one_hot = nn.functional.one_hot(category, n_categories).to(z_content.dtype)
        content = torch.cat([z_content, one_hot], 1)
    content = content.unsqueeze(1).expand(batch, n_frames, content.size(1))
    z = torch.cat([codes.transpose(0, 1), content], 2)  # (B, T, nz)
    return z.reshape(batch * n_frames, z.size(2), 1, 1)


class VideoGenerator(nn.Module):
    """MoCoGAN's generator: z_t = cat(z_motion_t, z_content[, category one-hot]) -> frame t.

    `forward(z_content, z_motion, n_frames)` makes whole videos; `generate_chunk` continues
    a video from a carried recurrent state, so arbitrarily long videos stream in chunks.
    All noise comes in as arguments: the model draws nothing at random.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.nc = config.nc
        self.image_size = config.image_size
        self.n_categories = config.n_categories
        self.cell_state_size = config.state_size - config.d_motion
        motion = LSTM if config.cell == "lstm" else GRU
        self.motion = motion(config.d_motion, config.hidden_size, config.motion_mode, bn_eps=config.bn_eps)
        self.motion.initWeight()
        self.image = ImageGenerator(config)

    def initial_state(self, z_motion: Tensor) -> Tensor:
        """The recurrent state a video starts from: (B, config.state_size)."""
        return initial_state(z_motion, self.cell_state_size)

    def generate_chunk(
        self, z_content: Tensor, state: Tensor, n_frames: int, category: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """The next n_frames frames (B, n_frames, nc, H, W) and the state to continue from."""
        if not torch.jit.is_scripting():
            check_n_frames(n_frames)
        codes, state = self.motion.rollout(state, n_frames)  # (T, B, d_motion)
        return self.render(codes, z_content, category), state

    def render(self, codes: Tensor, z_content: Tensor, category: Tensor | None = None) -> Tensor:
        """Frames (B, T, nc, H, W) for motion codes (T, B, d_motion): the image generator's half."""
        frames = self.image(frame_latents(codes, z_content, self.n_categories, category))
        return frames.view(z_content.size(0), codes.size(0), self.nc, self.image_size, self.image_size)

    def forward(
        self, z_content: Tensor, z_motion: Tensor, n_frames: int, category: Tensor | None = None
    ) -> Tensor:
        """(B, n_frames, nc, H, W) float video in [-1, 1]. `category` (B,) int64 is used by
        conditional models only; without it they make category 0."""
        return self.generate_chunk(z_content, self.initial_state(z_motion), n_frames, category)[0]


@contextlib.contextmanager
def seeded_init(seed: int) -> Iterator[None]:
    """Module constructors draw their initial weights from torch's global CPU generator: this
    seeds it for the block and restores it afterwards. No other device's generator is touched
    (torch.manual_seed would reseed every CUDA generator too)."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield


def build_model(config: ModelConfig, seed: int | None = None) -> VideoGenerator:
    """A freshly initialised generator; with `seed`, the same weights on every machine."""
    with contextlib.nullcontext() if seed is None else seeded_init(seed):
        return VideoGenerator(config)


def parameter_count(config: ModelConfig) -> int:
    """Trainable parameters of a generator with `config`, counted on the meta device (nothing
    is allocated)."""
    with torch.device("meta"):
        return sum(p.numel() for p in VideoGenerator(config).parameters())
