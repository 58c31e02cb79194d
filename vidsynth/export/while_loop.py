"""The generator written for torch.export: the motion recurrence as one
`torch._higher_order_ops.while_loop` over a loop counter, so a single exported program
serves any batch and any frame count.

torch.export traces Python, so the model's `for _ in range(n_frames)` would be unrolled
at the example frame count. Here `n_frames` is an int64 scalar tensor: its value (read
with `.item()`, an unbacked size to the tracer) sizes the buffer of motion codes, and the
loop runs while the counter is below it, writing one step's code per iteration with
`index_copy`. Each iteration is the model's own `step`, so there is one source for the
recurrence. Eval mode only (batch norm from running statistics).

Both the `.pt2` artifact and the torch.export-based ONNX exporter read these wrappers.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from vidsynth.model.generator import VideoGenerator


def motion_codes(motion: nn.Module, state: Tensor, n_frames: Tensor) -> tuple[Tensor, Tensor]:
    """`motion.rollout` as a while_loop: (n_frames, B, d_motion) eval-mode codes and the
    state after the last step. `n_frames` is a 0-d int64 tensor."""
    from torch._higher_order_ops import while_loop

    steps = n_frames.item()
    # At least one frame: lets the tracer prove the image generator's inputs are never empty.
    torch._check(steps >= 1)
    cell_size = motion.cell_state_size
    # Carried values must keep one layout across iterations: contiguous copies of the slices.
    cell_state = state[:, :cell_size].contiguous()
    x = state[:, cell_size:].contiguous()
    # The codes travel through the loop as one flat buffer, step t at [t*B*d, (t+1)*B*d):
    # torch 2.15's while_loop gives a carried tensor of data-dependent size a fresh symbolic
    # stride, which then differs from the body's output unless the tensor is 1-D.
    batch, width = state.size(0), motion.input_size
    codes = state.new_zeros(steps * batch * width)
    offsets = torch.arange(batch * width, device=state.device)

    def running(step: Tensor, cell_state: Tensor, x: Tensor, codes: Tensor) -> Tensor:
        return step < n_frames

    def advance(step: Tensor, cell_state: Tensor, x: Tensor, codes: Tensor) -> tuple[Tensor, ...]:
        cell_state, next_x, y = motion.step(x, cell_state)
        codes = codes.index_copy(0, step * (batch * width) + offsets, y.reshape(-1))
        # while_loop's outputs may not alias its inputs, hence the clone of a same-input x.
        return step + 1, cell_state, next_x if motion.feedback else next_x.clone(), codes

    counter = torch.zeros((), dtype=torch.int64, device=state.device)
    _, cell_state, x, codes = while_loop(running, advance, (counter, cell_state, x, codes))
    return motion._normalize_eval(codes.view(steps, batch, width)), torch.cat([cell_state, x], 1)


class MotionRollout(nn.Module):
    """(state, n_frames) -> (codes, state_out): the motion recurrence alone, codes
    (n_frames, B, d_motion) as `VideoGenerator.motion.rollout` returns them in eval mode."""

    def __init__(self, motion: nn.Module) -> None:
        super().__init__()
        self.motion = motion

    def forward(self, state: Tensor, n_frames: Tensor) -> tuple[Tensor, Tensor]:
        return motion_codes(self.motion, state, n_frames)


class WhileLoopGenerator(nn.Module):
    """(z_content, z_motion, n_frames[, category]) -> video, as generator.onnx and generator.pt,
    or with `streaming` (z_content, state, n_frames[, category]) -> (video, state_out), as
    generator_chunk.onnx. Eval-mode generators only."""

    def __init__(self, generator: VideoGenerator, streaming: bool) -> None:
        if generator.training:
            raise ValueError("the while_loop formulation exports eval-mode generators only")
        super().__init__()
        self.generator = generator
        self.streaming = streaming

    def forward(
        self, z_content: Tensor, motion: Tensor, n_frames: Tensor, category: Tensor | None = None
    ) -> Tensor | tuple[Tensor, Tensor]:
        state = motion if self.streaming else self.generator.initial_state(motion)
        codes, state = motion_codes(self.generator.motion, state, n_frames)
        video = self.generator.render(codes, z_content, category)
        return (video, state) if self.streaming else video
