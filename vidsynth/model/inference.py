"""A faster inference copy of a VideoGenerator for the torch CPU path (eval mode only).

`optimize_for_inference(model, precision)` returns a copy of the VideoGenerator with its motion
and image modules swapped for faster forms: the same outputs up to float rounding (fp32) or bf16
rounding of the image generator (bf16). The recurrence runs as InferenceMotion; every eval batch
norm is folded into the layer before it; the first ConvTranspose2d runs as the matrix product it
is and, in fp32, the last one as a sub-pixel convolution (oneDNN's deconvolution is slow there;
bench/levers.py measures it); the image generator runs channels-last (oneDNN's preferred layout),
optionally in bf16, over `frame_chunk` frames at a time so that activations stay small whatever
the batch and frame count. The model passed in is not changed.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from vidsynth.errors import InputError, choice_error
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import VideoGenerator
from vidsynth.model.layers import gru_update, lstm_update

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16}
# Frames per image-generator call: ~20 MB of fp32 activations at 96x96, ngf=64 (fits L2+L3).
DEFAULT_FRAME_CHUNK = 32


class InferenceMotion(nn.Module):
    """A motion module's eval-mode rollout in few ops. The linear layer and the BatchNorm1d
    after it are one affine map, run once over all steps after the recurrence, which runs as:

    - same-input: one torch.lstm / torch.gru call (oneDNN's fused RNN kernel on the CPU, ONNX's
      LSTM/GRU operator in an export);
    - feedback: a loop of one matrix product per step. The next input is the linear layer's
      output, x' = W_l h' + b_l, so its projection W_ih x' + b_ih is an affine map of h' too:
      both projections of h' are precomputed as one matrix (in float64, then rounded once), and
      the loop carries the next step's pre-activations instead of x, rebuilding x from the last
      h only at the end. Each step's gates are the cells' own (lstm_update, gru_update).

    `rollout(state, n_frames)` takes and returns the state the literal module carries.
    """

    # Constants to TorchScript, so a scripted module keeps only its own mode's and cell's code.
    __constants__ = ["is_lstm", "feedback"]

    def __init__(self, motion: nn.Module, cell: str) -> None:
        super().__init__()
        self.is_lstm = cell == "lstm"
        self.feedback = motion.feedback
        self.hidden_size = motion.hidden_size
        self.cell_state_size = motion.cell_state_size
        cell_module = motion.lstm if self.is_lstm else motion.gru
        w_ih, w_hh = cell_module.weight_ih.detach().double(), cell_module.weight_hh.detach().double()
        b_ih, b_hh = cell_module.bias_ih.detach().double(), cell_module.bias_hh.detach().double()
        w_l, b_l = motion.linear.weight.detach().double(), motion.linear.bias.detach().double()
        scale = torch.rsqrt(motion.bn.running_var.double() + motion.bn.eps)
        fed_weight, fed_bias = w_ih @ w_l, w_ih @ b_l + b_ih  # h' -> W_ih x' + b_ih
        if self.is_lstm:  # the gates only ever see the sum of both projections
            step_weight, step_bias = fed_weight + w_hh, fed_bias + b_hh
        else:  # GRU keeps the candidate's two halves apart: [r, z summed; x_n; h_n]
            h2 = 2 * self.hidden_size
            step_weight = torch.cat([fed_weight[:h2] + w_hh[:h2], fed_weight[h2:], w_hh[h2:]])
            step_bias = torch.cat([fed_bias[:h2] + b_hh[:h2], fed_bias[h2:], b_hh[h2:]])
        for name, value in (
            ("weight_ih", w_ih),
            ("weight_hh", w_hh),
            ("bias_ih", b_ih),
            ("bias_hh", b_hh),
            # The maps to the d_motion outputs stay (d_motion, hidden) and are used transposed: the
            # layout CPU GEMM runs faster for so narrow a right-hand factor (bench/results/motion.md).
            ("out_weight", w_l * scale[:, None]),  # the linear layer with batch norm folded in
            ("out_bias", (b_l - motion.bn.running_mean.double()) * scale),
            ("feedback_weight", w_l),
            ("feedback_bias", b_l),
            ("step_weight", step_weight.t()),  # feedback only
            ("step_bias", step_bias),
        ):
            self.register_buffer(name, value.float().contiguous())

    @torch.jit.export
    def rollout(self, state: Tensor, n_frames: int) -> tuple[Tensor, Tensor]:
        """(n_frames, B, d_motion) normalised motion codes and the state after the last step."""
        h = state[:, : self.hidden_size]
        c = state[:, self.hidden_size : self.cell_state_size]  # empty for a GRU
        x = state[:, self.cell_state_size :]
        if self.feedback:
            hs, h, c = self._feedback_loop(x, h, c, n_frames)
            x = torch.addmm(self.feedback_bias, h, self.feedback_weight.t())
        else:
            hs, h, c = self._fused(x, h, c, n_frames)
        codes = torch.addmm(self.out_bias, hs.flatten(0, 1), self.out_weight.t())
        return codes.view(n_frames, h.size(0), -1), torch.cat([h, c, x], 1)

    def _fused(self, x: Tensor, h: Tensor, c: Tensor, n_frames: int) -> tuple[Tensor, Tensor, Tensor]:
        inputs = x.unsqueeze(0).expand(n_frames, x.size(0), x.size(1))
        params = [self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh]
        h0 = h.unsqueeze(0).contiguous()
        if self.is_lstm:
            c0 = c.unsqueeze(0).contiguous()
            hs, h_last, c_last = torch.lstm(inputs, [h0, c0], params, True, 1, 0.0, False, False, False)
            return hs, h_last[0], c_last[0]
        hs, h_last = torch.gru(inputs, h0, params, True, 1, 0.0, False, False, False)
        return hs, h_last[0], c

    def _feedback_loop(self, x: Tensor, h: Tensor, c: Tensor, n_frames: int) -> tuple[Tensor, Tensor, Tensor]:
        hidden = self.hidden_size
        from_x = torch.addmm(self.bias_ih, x, self.weight_ih.t())  # the first step's input is x itself
        from_h = torch.addmm(self.bias_hh, h, self.weight_hh.t())
        if self.is_lstm:
            pre = from_x + from_h
        else:
            h2 = 2 * hidden
            pre = torch.cat([from_x[:, :h2] + from_h[:, :h2], from_x[:, h2:], from_h[:, h2:]], 1)
        gru_parts = [hidden] * 4
        hs = []
        for _ in range(n_frames):
            if self.is_lstm:
                h, c = lstm_update(pre, c)
            else:
                r, z, x_n, h_n = pre.split(gru_parts, 1)
                h = gru_update(r, z, x_n, h_n, h)
            hs.append(h)
            pre = torch.addmm(self.step_bias, h, self.step_weight)
        return torch.stack(hs), h, c


def fold_image_generator(image: nn.Module) -> nn.Sequential:
    """The DCGAN generator with each eval BatchNorm2d folded into the ConvTranspose2d before it."""
    layers: list[nn.Module] = []
    for module in image.main:
        if isinstance(module, nn.BatchNorm2d) and layers and isinstance(layers[-1], nn.ConvTranspose2d):
            conv = layers[-1]
            with torch.no_grad():
                scale = module.weight * torch.rsqrt(module.running_var + module.eps)
                # ConvTranspose2d weights are (in, out, kH, kW): scale the output channels.
                conv.weight = nn.Parameter(conv.weight * scale.view(1, -1, 1, 1))
                conv.bias = nn.Parameter(module.bias - module.running_mean * scale)
        else:
            layers.append(copy.deepcopy(module))
    return nn.Sequential(*layers)


class LatentProjection(nn.Module):
    """ConvTranspose2d(nz, C, k, stride 1, padding 0) on a 1x1 input, as a matrix product."""

    def __init__(self, layer: nn.ConvTranspose2d) -> None:
        super().__init__()
        k = layer.kernel_size[0]
        self.out_channels, self.side = layer.out_channels, k
        self.register_buffer("weight", layer.weight.detach().reshape(layer.in_channels, -1).clone())
        bias = layer.bias.detach() if layer.bias is not None else layer.weight.new_zeros(layer.out_channels)
        self.register_buffer("bias", bias.repeat_interleave(k * k).clone())

    def forward(self, z: Tensor) -> Tensor:
        y = torch.addmm(self.bias, z.flatten(1), self.weight)
        return y.view(-1, self.out_channels, self.side, self.side).contiguous(
            memory_format=torch.channels_last
        )


class SubPixelConvTranspose(nn.Module):
    """ConvTranspose2d(kernel 4, stride 2, padding 1) as one 2x2 convolution (padding 1) that
    writes the four output phases as channels, then depth-to-space: output pixel (2m+a, 2n+b)
    takes kernel taps {3, 1} (a=0) or {2, 0} (a=1) over input rows (m-1, m) or (m, m+1)."""

    def __init__(self, layer: nn.ConvTranspose2d) -> None:
        super().__init__()
        weight = layer.weight.detach()  # (in, out, 4, 4)
        taps = {0: [3, 1], 1: [2, 0]}
        phases = [
            weight[:, :, taps[a], :][:, :, :, taps[b]].permute(1, 0, 2, 3) for a in (0, 1) for b in (0, 1)
        ]
        self.register_buffer("weight", torch.cat(phases, 0).contiguous())
        self.register_buffer("bias", None if layer.bias is None else layer.bias.detach().repeat(4).clone())
        self.out_channels = layer.out_channels

    def forward(self, x: Tensor) -> Tensor:
        n, _, h, w = x.shape
        y = nn.functional.conv2d(x, self.weight, self.bias, padding=1).view(
            n, 2, 2, self.out_channels, h + 1, w + 1
        )
        phases = [  # written out: TorchScript (and so the ONNX export) takes one generator per comprehension
            y[:, 0, 0, :, 0:h, 0:w],
            y[:, 0, 1, :, 0:h, 1 : w + 1],
            y[:, 1, 0, :, 1 : h + 1, 0:w],
            y[:, 1, 1, :, 1 : h + 1, 1 : w + 1],
        ]
        out = torch.stack(phases, 0).view(2, 2, n, self.out_channels, h, w)
        return out.permute(2, 3, 4, 0, 5, 1).reshape(n, self.out_channels, 2 * h, 2 * w)


def rewrite_for_cpu(net: nn.Sequential, latent_matmul: bool, sub_pixel_last: bool) -> nn.Sequential:
    """The folded generator with, optionally, its first layer as a matrix product and its last
    ConvTranspose2d as a sub-pixel convolution."""
    layers = list(net)
    if latent_matmul:
        layers[0] = LatentProjection(layers[0])
    if sub_pixel_last:
        last = max(i for i, m in enumerate(layers) if isinstance(m, nn.ConvTranspose2d))
        layers[last] = SubPixelConvTranspose(layers[last])
    return nn.Sequential(*layers)


class ChunkedImageGenerator(nn.Module):
    """(N, nz, 1, 1) float32 -> (N, nc, H, W) float32, computed in `dtype`, channels-last,
    `frame_chunk` frames at a time into one preallocated output."""

    def __init__(
        self,
        image: nn.Module,
        config: ModelConfig,
        dtype: torch.dtype,
        frame_chunk: int,
        rewrite: bool = True,
    ) -> None:
        super().__init__()
        net = fold_image_generator(image)
        if rewrite:  # sub-pixel pays in fp32 only: oneDNN's bf16 deconvolution is already fast there
            net = rewrite_for_cpu(net, latent_matmul=True, sub_pixel_last=dtype == torch.float32)
        self.net = net.to(dtype=dtype, memory_format=torch.channels_last)
        self.dtype = dtype
        self.frame_chunk = frame_chunk
        self.nc = config.nc
        self.image_size = config.image_size

    def forward(self, z: Tensor) -> Tensor:
        n = z.size(0)
        out = torch.empty(n, self.nc, self.image_size, self.image_size, dtype=torch.float32, device=z.device)
        z = z.to(self.dtype)
        for start in range(0, n, self.frame_chunk):
            stop = min(start + self.frame_chunk, n)
            out[start:stop].copy_(self.net(z[start:stop]))
        return out


def optimize_for_inference(
    model: VideoGenerator, precision: str = "fp32", frame_chunk: int = DEFAULT_FRAME_CHUNK
) -> VideoGenerator:
    """An eval-mode CPU inference copy of `model` (see the module docstring)."""
    if precision not in PRECISIONS:
        raise choice_error(InputError, "precision", precision, sorted(PRECISIONS))
    if not isinstance(frame_chunk, int) or frame_chunk < 1:
        raise InputError(f"frame_chunk must be a positive integer, got {frame_chunk!r}")
    fast = copy.deepcopy(model).to(device="cpu", dtype=torch.float32).eval()
    config = fast.config
    motion = InferenceMotion(fast.motion, config.cell)
    # Scripting pays in the feedback loop of small ops; a fused kernel is one call either way.
    fast.motion = torch.jit.script(motion) if motion.feedback else motion
    fast.image = ChunkedImageGenerator(fast.image, config, PRECISIONS[precision], frame_chunk)
    # How the recurrence runs, in words (the torch backend and the benchmarks report it).
    fast.motion_kind = f"fused torch.{config.cell}"
    if motion.feedback:
        fast.motion_kind = "TorchScript loop of one matrix product per step"
    return fast.requires_grad_(False)
