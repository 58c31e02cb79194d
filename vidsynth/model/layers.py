"""The assignment's layers: a linear layer, LSTM and GRU cells, and the recurrent motion
modules built from them, written with matmuls and elementwise ops only.

Parameter names and gate orders equal torch.nn's (LSTM: i, f, g, o; GRU: r, z, n), so state
dicts move between these and torch.nn.Linear / LSTMCell / GRUCell unchanged. Everything here
compiles with torch.jit.script.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vidsynth.errors import ConfigError, InputError, choice_error
from vidsynth.model.config import MOTION_MODES


def check_n_frames(n_frames: int) -> None:
    """A clear error for a frame count the recurrence cannot make (torch's own is an empty
    stack deep in the loop). Symbolic sizes (torch.export) are left to the tracer."""
    if isinstance(n_frames, int) and not isinstance(n_frames, bool) and n_frames < 1:
        raise InputError(f"n_frames must be >= 1, got {n_frames}")


def initial_state(z_motion: Tensor, cell_state_size: int) -> Tensor:
    """The recurrent state a video starts from: a zero cell state, then z_motion as the first
    step's input. (vidsynth.artifacts.contract.initial_state is the same rule in numpy, for the
    torch-free runtimes.)"""
    zeros = z_motion.new_zeros(z_motion.size(0), cell_state_size)
    return torch.cat([zeros, z_motion], 1)


def lstm_update(gates: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
    """An LSTM step from its summed pre-activations (i, f, g, o): (h, c)."""
    i, f, g, o = gates.chunk(4, -1)
    c = torch.addcmul(torch.sigmoid(f) * c, torch.sigmoid(i), torch.tanh(g))  # f * c + i * g
    return torch.sigmoid(o) * torch.tanh(c), c


def gru_update(r: Tensor, z: Tensor, x_n: Tensor, h_n: Tensor, h: Tensor) -> Tensor:
    """A GRU step from the pre-activations of its reset and update gates (r, z) and its
    candidate's input and hidden halves, kept apart because r scales only the hidden one."""
    r, z = torch.sigmoid(r), torch.sigmoid(z)
    n = torch.tanh(torch.addcmul(x_n, r, h_n))  # x_n + r * h_n
    return torch.addcmul(n, z, h - n)  # (1 - z) * n + z * h, in fewer ops: the inference loop is op-bound


class MyLinear(nn.Module):
    """y = x W^T + b for x of shape (..., input_size)."""

    def __init__(self, input_size: int, output_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.output_size = output_size
        self.weight = nn.Parameter(torch.empty(output_size, input_size))
        self.bias = nn.Parameter(torch.empty(output_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # torch.nn.Linear's default: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
        bound = 1.0 / math.sqrt(self.input_size)
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.matmul(x, self.weight.t()) + self.bias


class _Cell(nn.Module):
    """The parameters of a recurrent cell with `n_gates` gates, initialised as torch.nn's cells."""

    def __init__(self, input_size: int, hidden_size: int, n_gates: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(n_gates * hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(n_gates * hidden_size, hidden_size))
        self.bias_ih = nn.Parameter(torch.empty(n_gates * hidden_size))
        self.bias_hh = nn.Parameter(torch.empty(n_gates * hidden_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1.0 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            nn.init.uniform_(param, -bound, bound)


class MyLSTMCell(_Cell):
    """One LSTM step, as torch.nn.LSTMCell but called as forward(x, h, c) -> (h, c)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, 4)

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        gates = (
            torch.matmul(x, self.weight_ih.t())
            + self.bias_ih
            + torch.matmul(h, self.weight_hh.t())
            + self.bias_hh
        )
        return lstm_update(gates, c)


class MyGRUCell(_Cell):
    """One GRU step, as torch.nn.GRUCell but called as forward(x, h) -> h."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, 3)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        parts = [self.hidden_size] * 3
        x_r, x_z, x_n = (torch.matmul(x, self.weight_ih.t()) + self.bias_ih).split(parts, -1)
        h_r, h_z, h_n = (torch.matmul(h, self.weight_hh.t()) + self.bias_hh).split(parts, -1)
        return gru_update(x_r + h_r, x_z + h_z, x_n, h_n, h)


class _MotionRNN(nn.Module):
    """Shared body of the LSTM and GRU motion modules.

    The pure core is `rollout(state, n_frames) -> (codes, state)`: it keeps no Python-side
    state, so it scripts and exports. `state` is (B, state_size) = [cell state | next input];
    carrying it from one rollout to the next continues the same video.
    The assignment's stateful API (`initHidden`, `self.h`, `forward(inputs, n_frames)`) is a
    thin wrapper around it. Subclasses give `_cell_step(x, cell_state) -> (cell_state, h)`,
    `_hidden()` (the stored [h, c] or [h]) and `_store_cell_state(cell_state)`.
    """

    def __init__(
        self, input_size: int, hidden_size: int, motion_mode: str, n_cell_states: int, bn_eps: float = 1e-5
    ) -> None:
        super().__init__()
        if motion_mode not in MOTION_MODES:
            raise choice_error(ConfigError, "motion mode", motion_mode, MOTION_MODES)
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.feedback = motion_mode == "feedback"
        self.cell_state_size = n_cell_states * hidden_size
        self.linear = MyLinear(hidden_size, input_size)
        self.bn = nn.BatchNorm1d(input_size, affine=False, eps=bn_eps)
        self.h = torch.zeros(0)
        # Feedback mode: the fed-back output the next forward() call starts from, so that
        # consecutive calls continue one sequence; empty at the start of a sequence.
        self.next_input = torch.zeros(0)

    def initial_state(self, z_motion: Tensor) -> Tensor:
        return initial_state(z_motion, self.cell_state_size)

    def step(self, x: Tensor, cell_state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """One step of the recurrence: (cell state, the next step's input, the output before
        batch norm)."""
        cell_state, h = self._cell_step(x, cell_state)
        y = self.linear(h)
        return cell_state, y if self.feedback else x, y

    def rollout(self, state: Tensor, n_frames: int) -> tuple[Tensor, Tensor]:
        """(n_frames, B, input_size) motion codes and the state after the last step."""
        cell_state = state[:, : self.cell_state_size]
        x = state[:, self.cell_state_size :]
        codes = []
        for _ in range(n_frames):
            cell_state, x, y = self.step(x, cell_state)
            # Training normalises each step with its batch statistics, as the assignment does;
            # eval mode is one affine map, applied to all steps at once below.
            codes.append(self.bn(y) if self.training else y)
        stacked = torch.stack(codes)
        if not self.training:
            stacked = self._normalize_eval(stacked)
        return stacked, torch.cat([cell_state, x], 1)

    def _normalize_eval(self, y: Tensor) -> Tensor:
        # Written out rather than calling self.bn: the ONNX exporter cannot infer
        # BatchNorm1d's channel count inside a loop body.
        mean = self.bn.running_mean
        var = self.bn.running_var
        assert mean is not None and var is not None
        return (y - mean) * torch.rsqrt(var + self.bn.eps)

    # -- the assignment's interface -------------------------------------------------------

    def initWeight(self, init_forget_bias: float = 1) -> None:
        """Xavier-uniform weight matrices; zero biases except the gate slice [H:2H]
        (LSTM forget gate, GRU update gate) of both cell biases, set to init_forget_bias."""
        H = self.hidden_size
        with torch.no_grad():
            for name, param in self.named_parameters():
                if param.dim() == 2:
                    nn.init.xavier_uniform_(param)
                else:
                    param.zero_()
                    if name.endswith(("bias_ih", "bias_hh")):
                        param[H : 2 * H] = init_forget_bias

    def forward(self, inputs: Tensor, n_frames: int) -> Tensor:
        """Runs n_frames steps from the stored hidden state (see initHidden) and stores the
        final state back, as the assignment's module does, so consecutive calls continue one
        sequence. In feedback mode `inputs` is the first step's input of a sequence only;
        later calls go on from the last step's output, exactly as one longer call would.
        Returns (n_frames, B, input_size)."""
        if not torch.jit.is_scripting():
            self._check_call(inputs, n_frames)
        x = inputs
        if self.feedback and self.next_input.numel() > 0:
            x = self.next_input
        codes, state = self.rollout(torch.cat(self._hidden() + [x], 1), n_frames)
        self._store_cell_state(state[:, : self.cell_state_size])
        self.next_input = state[:, self.cell_state_size :]
        return codes

    @torch.jit.unused
    def _check_call(self, inputs: Tensor, n_frames: int) -> None:
        check_n_frames(n_frames)
        if inputs.dim() != 2 or inputs.size(1) != self.input_size:
            raise InputError(f"inputs must be (batch, {self.input_size}), got {tuple(inputs.shape)}")
        for held in self._hidden():
            if held.dim() != 2:
                raise InputError("no hidden state yet: call initHidden(batch_size) before forward")
            if held.shape != (inputs.size(0), self.hidden_size):
                raise InputError(
                    f"the hidden state is {tuple(held.shape)} but inputs hold {inputs.size(0)} sequences: "
                    f"call initHidden({inputs.size(0)})"
                )

    def initHidden(self, batch_size: int) -> None:
        """Zero state for batch_size sequences: the next forward() starts a new sequence."""
        self._store_cell_state(self.linear.weight.new_zeros(batch_size, self.cell_state_size))
        self.next_input = torch.zeros(0)


class LSTM(_MotionRNN):
    """The assignment's motion module: MyLSTMCell, then linear hidden->input, then BatchNorm."""

    def __init__(
        self, input_size: int, hidden_size: int, motion_mode: str = "same-input", bn_eps: float = 1e-5
    ) -> None:
        super().__init__(input_size, hidden_size, motion_mode, n_cell_states=2, bn_eps=bn_eps)
        self.lstm = MyLSTMCell(input_size, hidden_size)
        self.c = torch.zeros(0)

    def _cell_step(self, x: Tensor, cell_state: Tensor) -> tuple[Tensor, Tensor]:
        h, c = self.lstm(x, cell_state[:, : self.hidden_size], cell_state[:, self.hidden_size :])
        return torch.cat([h, c], 1), h

    def _hidden(self) -> list[Tensor]:
        return [self.h, self.c]

    def _store_cell_state(self, cell_state: Tensor) -> None:
        self.h = cell_state[:, : self.hidden_size]
        self.c = cell_state[:, self.hidden_size :]


class GRU(_MotionRNN):
    """DLHacks/mocogan's motion module with MyGRUCell; same interface as LSTM."""

    def __init__(
        self, input_size: int, hidden_size: int, motion_mode: str = "feedback", bn_eps: float = 1e-5
    ) -> None:
        super().__init__(input_size, hidden_size, motion_mode, n_cell_states=1, bn_eps=bn_eps)
        self.gru = MyGRUCell(input_size, hidden_size)

    def _cell_step(self, x: Tensor, cell_state: Tensor) -> tuple[Tensor, Tensor]:
        h = self.gru(x, cell_state)
        return h, h

    def _hidden(self) -> list[Tensor]:
        return [self.h]

    def _store_cell_state(self, cell_state: Tensor) -> None:
        self.h = cell_state
