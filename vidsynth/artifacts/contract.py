"""The artifact ABI, defined here only and derived from the ModelConfig: file names, input and
output names, dtypes and shapes, dynamic axes, the first streaming state, opsets, precisions and
tolerances. Like optimum's OnnxConfig, every exporter, backend, benchmark and test reads it.
Torch-free: the ONNX Runtime and OpenVINO backends read it without torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidsynth.errors import ExportError, choice_error
from vidsynth.model.config import ModelConfig
from vidsynth.model.noise import Noise

Dim = int | str  # a fixed size, or the name of a dynamic axis

BATCH = "batch"  # dynamic axis: videos per call
FRAMES = "n_frames"  # dynamic axis: frames per video (or per streamed chunk)

EXPORT_FORMATS = ("torchscript", "onnx", "pt2")
DEFAULT_FORMATS = ("torchscript", "onnx")  # pt2 is opt-in: AOTInductor compiles C++ for minutes
DTYPES = ("fp32", "fp16", "bf16")

# ONNX opsets the TorchScript-based exporter handles for this graph: 13 is the first whose
# Loop body keeps tensor ranks known; 20 is that exporter's last opset.
MIN_OPSET = 13
MAX_OPSET = 20
DEFAULT_OPSET = 17  # read by every onnxruntime since 1.11

# Largest max-abs pixel error (video in [-1, 1]) allowed between eager PyTorch, TorchScript
# and ONNX Runtime at the same precision. Never relaxed into a warning.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 5e-2}
# Lower precisions must stay this close to the float32 model (PSNR over the [-1, 1] range).
MIN_PSNR_DB = 35.0

# The example inputs traced through while exporting, and the two shapes validated afterwards:
# disjoint, so validation proves nothing about the example shape was baked into a graph.
EXPORT_SHAPE = (2, 3)  # (batch, n_frames)
VALIDATION_SHAPES = ((1, 7), (4, 13))
VALIDATION_CHUNKS = (5, 8)  # streamed chunks adding up to the last shape's 13 frames, vs one call
VALIDATION_SEED = 20240  # first seed of the validation inputs; one more per shape

MANIFEST_FILE = "manifest.json"
TORCHSCRIPT_FILE = "generator.pt"
ONNX_FILE = "generator.onnx"  # one whole video per call
ONNX_CHUNK_FILE = "generator_chunk.onnx"  # streaming: the next frames from a carried state
PT2_MOTION_FILE = "generator_motion.pt2"  # AOTInductor: (state, n_frames) -> (codes, state_out)
PT2_IMAGE_FILE = "generator_image.pt2"  # AOTInductor: (B*T, nz, 1, 1) latents -> frames
FILES = {
    "torchscript": (TORCHSCRIPT_FILE,),
    "onnx": (ONNX_FILE, ONNX_CHUNK_FILE),
    "pt2": (PT2_MOTION_FILE, PT2_IMAGE_FILE),
}


def formats_in(manifest: dict) -> frozenset[str]:
    """The export formats whose files a manifest lists (a streaming-only ONNX graph is optional)."""
    listed = manifest.get("files", {})
    needed = {**FILES, "onnx": (ONNX_FILE,)}
    return frozenset(fmt for fmt, files in needed.items() if all(name in listed for name in files))


INITIAL_STATE_RULE = "zeros(B, state_size - d_motion) then z_motion"

# Inference rewrites an ONNX graph may carry (the manifest's "rewrites" lists those applied).
# Each computes the same video up to float rounding; a reader refuses a name it does not know.
GRAPH_REWRITES = {
    "fold-motion-bn": "the motion BatchNorm1d folded into the linear layer",
    "fold-image-bn": "each image BatchNorm2d folded into the ConvTranspose2d weights and bias before it",
    "fused-recurrence": "the same-input recurrence as ONNX's LSTM/GRU operator",
    "lean-feedback-loop": "the feedback recurrence as a Loop of one matrix product per step",
    "sub-pixel-last": "the last ConvTranspose2d as a 2x2 convolution and depth-to-space",
}


def initial_state(z_motion: np.ndarray, state_size: int) -> np.ndarray:
    """The state a streamed video starts from, as INITIAL_STATE_RULE says: a zero cell state,
    then z_motion as the first step's input. Every later chunk takes the previous state_out."""
    z_motion = np.asarray(z_motion, dtype=np.float32)
    zeros = np.zeros((z_motion.shape[0], state_size - z_motion.shape[1]), dtype=np.float32)
    return np.concatenate([zeros, z_motion], axis=1)


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # numpy/ONNX name: "float32" or "int64"
    shape: tuple[Dim, ...]

    def to_dict(self) -> dict:
        return {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ExportContract:
    """One graph's signature: what goes in, what comes out, which axes are dynamic."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @property
    def input_names(self) -> list[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {
            s.name: {i: d for i, d in enumerate(s.shape) if isinstance(d, str)}
            for s in self.inputs + self.outputs
        }
        return {name: dims for name, dims in axes.items() if dims}


def _video_spec(config: ModelConfig) -> TensorSpec:
    return TensorSpec("video", "float32", (BATCH, FRAMES, config.nc, config.image_size, config.image_size))


def _inputs(config: ModelConfig, recurrent: TensorSpec) -> tuple[TensorSpec, ...]:
    """z_content, the recurrence's input (z_motion or a carried state), n_frames [, category]."""
    content = TensorSpec("z_content", "float32", (BATCH, config.d_content))
    category = (TensorSpec("category", "int64", (BATCH,)),) if config.n_categories > 0 else ()
    return (content, recurrent, TensorSpec("n_frames", "int64", ())) + category


def generator_contract(config: ModelConfig) -> ExportContract:
    """generator.onnx and generator.pt's forward: one whole video per call."""
    inputs = _inputs(config, TensorSpec("z_motion", "float32", (BATCH, config.d_motion)))
    return ExportContract(inputs, (_video_spec(config),))


def chunk_contract(config: ModelConfig) -> ExportContract:
    """generator_chunk.onnx: the next n_frames frames from a carried recurrent state."""
    state = TensorSpec("state", "float32", (BATCH, config.state_size))
    outputs = (_video_spec(config), TensorSpec("state_out", "float32", (BATCH, config.state_size)))
    return ExportContract(_inputs(config, state), outputs)


def graph_inputs(contract: ExportContract, noise: Noise, n_frames: int) -> dict[str, np.ndarray]:
    """The inputs `contract` names, for `noise` and `n_frames`, each a C-contiguous array of the
    contract's dtype; all but a carried `state`, which the caller adds."""
    values = {**vars(noise), "n_frames": n_frames}  # Noise's fields are named as the inputs they feed
    return {
        spec.name: np.require(values[spec.name], spec.dtype, "C")
        for spec in contract.inputs
        if spec.name != "state"
    }


def streaming_record(config: ModelConfig, with_onnx: bool = True) -> dict:
    """The manifest's description of how to stream a long video chunk by chunk."""
    record = {
        "state_size": config.state_size,
        "initial_state": INITIAL_STATE_RULE,
        "torchscript_methods": ["initial_state(z_motion)", "generate_chunk(z_content, state, n_frames)"],
    }
    if not with_onnx:
        return record
    contract = chunk_contract(config)
    return {
        "file": ONNX_CHUNK_FILE,
        **record,
        "inputs": [spec.to_dict() for spec in contract.inputs],
        "outputs": [spec.to_dict() for spec in contract.outputs],
    }


def check_options(
    formats: tuple[str, ...] | list[str], opset: int | None, dtype: str
) -> tuple[tuple[str, ...], int | None]:
    """The requested formats (in order, without repeats) and the opset to use (None without
    onnx). Bad options are refused before anything is exported or written."""
    formats = tuple(dict.fromkeys(formats))
    if not formats:
        raise ExportError(f"no export format given; expected one or more of: {', '.join(EXPORT_FORMATS)}")
    for fmt in formats:
        if fmt not in EXPORT_FORMATS:
            raise choice_error(ExportError, "export format", fmt, EXPORT_FORMATS)
    if dtype not in DTYPES:
        raise choice_error(ExportError, "dtype", dtype, DTYPES)
    if dtype == "bf16" and "onnx" in formats:
        raise ExportError(
            "dtype bf16 is available for the torchscript format only: ONNX Runtime has no bfloat16 "
            "ConvTranspose kernel; use --formats torchscript with bf16, or --dtype fp16 for ONNX"
        )
    if dtype != "fp32" and "pt2" in formats:
        raise ExportError(
            f"the pt2 format is exported in fp32 only, got --dtype {dtype}; drop pt2 from --formats or "
            "use fp32"
        )
    if "onnx" not in formats:
        if opset is not None:
            raise ExportError(
                "--opset applies to the onnx format only; add onnx to --formats or drop --opset"
            )
        return formats, None
    if opset is None:
        opset = DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, int) or not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(
            f"unsupported ONNX opset {opset!r}; expected an integer from {MIN_OPSET} to {MAX_OPSET}"
        )
    return formats, opset
