"""The code users run today, as the assignment's and DLHacks' generation scripts do it:
torch.nn.LSTMCell / GRUCell stepped in a Python loop, nn.Linear + BatchNorm1d per step, and the
nn.Sequential DCGAN `Generator_I` in eager float32 over all frames at once.

`ReferenceGenerator.from_model(model)` loads a vidsynth model's weights into it (parameter
names are the same), so the reference and vidsynth make the same videos from the same noise.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import ImageGenerator


class ReferenceMotion(nn.Module):
    """The assignment's LSTM / DLHacks' GRU motion module, with torch.nn cells."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.is_lstm = config.cell == "lstm"
        self.feedback = config.motion_mode == "feedback"
        self.hidden_size = config.hidden_size
        if self.is_lstm:
            self.lstm = nn.LSTMCell(config.d_motion, config.hidden_size)
        else:
            self.gru = nn.GRUCell(config.d_motion, config.hidden_size)
        self.linear = nn.Linear(config.hidden_size, config.d_motion)
        self.bn = nn.BatchNorm1d(config.d_motion, affine=False, eps=config.bn_eps)

    def initHidden(self, batch_size: int) -> None:
        self.h = self.linear.weight.new_zeros(batch_size, self.hidden_size)
        self.c = self.linear.weight.new_zeros(batch_size, self.hidden_size)

    def forward(self, inputs: Tensor, n_frames: int) -> Tensor:
        outputs = []
        x = inputs
        for _ in range(n_frames):
            if self.is_lstm:
                self.h, self.c = self.lstm(x, (self.h, self.c))
            else:
                self.h = self.gru(x, self.h)
            y = self.linear(self.h)
            if self.feedback:
                x = y
            outputs.append(self.bn(y))
        return torch.stack(outputs)  # (n_frames, B, d_motion)


class ReferenceGenerator(nn.Module):
    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.motion = ReferenceMotion(config)
        # The public Generator_I is the same nn.Sequential of torch.nn layers as ours.
        self.main = ImageGenerator(config).main

    @classmethod
    def from_model(cls, model: nn.Module) -> ReferenceGenerator:
        reference = cls(model.config)
        reference.motion.load_state_dict(model.motion.state_dict(), strict=True)
        reference.main.load_state_dict(model.image.main.state_dict(), strict=True)
        return reference.eval()

    def forward(
        self, z_content: Tensor, z_motion: Tensor, n_frames: int, category: Tensor | None = None
    ) -> Tensor:
        c = self.config
        batch = z_content.size(0)
        self.motion.initHidden(batch)
        codes = self.motion(z_motion, n_frames)
        content = z_content
        if c.n_categories > 0:
            if category is None:
                category = torch.zeros(batch, dtype=torch.long, device=z_content.device)
            content = torch.cat([content, nn.functional.one_hot(category, c.n_categories).float()], 1)
        z_c = content.unsqueeze(1).repeat(1, n_frames, 1)
        z = torch.cat((codes.transpose(1, 0), z_c), 2)
        video = self.main(z.view(batch * n_frames, c.nz, 1, 1))
        return video.view(batch, n_frames, c.nc, c.image_size, c.image_size)
