"""The public MoCoGAN code as its authors wrote it (torch.nn modules), to check that imported
checkpoints reproduce the originals' videos."""

import torch
from torch import nn


class Generator_I(nn.Module):
    def __init__(self, nc=3, ngf=64, nz=60, first_kernel=6):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, first_kernel, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, z):
        return self.main(z)


class AssignmentLSTM(nn.Module):
    """The assignment's motion module, with torch.nn.LSTMCell."""

    def __init__(self, input_size=10, hidden_size=100):
        super().__init__()
        self.hidden_size = hidden_size
        self.lstm = nn.LSTMCell(input_size, hidden_size)
        self.linear = nn.Linear(hidden_size, input_size)
        self.bn = nn.BatchNorm1d(input_size, affine=False)

    def forward(self, inputs, n_frames):
        h = inputs.new_zeros(inputs.size(0), self.hidden_size)
        c = inputs.new_zeros(inputs.size(0), self.hidden_size)
        outputs = []
        for _ in range(n_frames):
            h, c = self.lstm(inputs, (h, c))
            outputs.append(self.linear(h))
        return torch.stack([self.bn(o) for o in outputs])


class DLHacksGRU(nn.Module):
    """DLHacks/mocogan's motion module (torch.nn.GRU), stepped in feedback mode."""

    def __init__(self, input_size=10, hidden_size=100):
        super().__init__()
        self.hidden_size = hidden_size
        self.gru = nn.GRU(input_size, hidden_size)
        self.linear = nn.Linear(hidden_size, input_size)
        self.bn = nn.BatchNorm1d(input_size, affine=False)

    def forward(self, inputs, n_frames):
        hidden = inputs.new_zeros(1, inputs.size(0), self.hidden_size)
        x, outputs = inputs, []
        for _ in range(n_frames):
            out, hidden = self.gru(x.unsqueeze(0), hidden)
            x = self.linear(out[0])
            outputs.append(self.bn(x))
        return torch.stack(outputs)


def randomize_batchnorm(module: nn.Module, seed: int) -> None:
    """Non-trivial running statistics, so a wrong key mapping cannot go unnoticed."""
    generator = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=generator) - 0.5)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)


def legacy_video(generator: Generator_I, motion: nn.Module, z_content, z_motion, n_frames):
    """Generation as the original scripts do it: motion codes, then one frame per latent."""
    codes = motion(z_motion, n_frames).transpose(0, 1)  # (B, T, d_motion)
    batch = z_content.size(0)
    z = torch.cat([codes, z_content.unsqueeze(1).expand(batch, n_frames, -1)], 2)
    frames = generator(z.reshape(batch * n_frames, -1, 1, 1))
    return frames.view(batch, n_frames, *frames.shape[1:])
