"""vidsynth.model.inference: the inference copy makes the VideoGenerator's videos (fp32 up to float
rounding, bf16 within 35 dB PSNR), whole or streamed in chunks, for every model family; its
motion form follows the literal cells in few ops per step."""

import functools

import pytest
import torch

from vidsynth.errors import InputError
from vidsynth.export.precision import psnr_db
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.model.inference import InferenceMotion, optimize_for_inference
from vidsynth.model.noise import sample_noise
from vidsynth.weights.demo import demo_model

FAMILIES = [
    dict(cell="lstm", motion_mode="same-input"),
    dict(cell="gru", motion_mode="same-input"),
    dict(cell="lstm", motion_mode="feedback"),
    dict(cell="gru", motion_mode="feedback", image_size=64),
    dict(cell="lstm", motion_mode="same-input", n_categories=4),
]


@pytest.mark.parametrize("family", FAMILIES, ids=lambda f: "-".join(str(v) for v in f.values()))
@pytest.mark.parametrize("frame_chunk", [5, 64])
def test_fp32_matches_eager(family, frame_chunk):
    config = ModelConfig(ngf=8, **family)
    model = demo_model(config)
    fast = optimize_for_inference(model, "fp32", frame_chunk=frame_chunk)
    torch.manual_seed(0)
    z_content, z_motion = torch.randn(3, config.d_content), torch.randn(3, config.d_motion)
    extra = (torch.tensor([1, 0, 3]),) if config.n_categories else ()
    with torch.no_grad():
        expected = model(z_content, z_motion, 17, *extra)
        whole = fast(z_content, z_motion, 17, *extra)
        state = fast.initial_state(z_motion)
        first, state = fast.generate_chunk(z_content, state, 6, *extra)
        second, _ = fast.generate_chunk(z_content, state, 11, *extra)
    assert whole.dtype == torch.float32 and whole.shape == expected.shape
    assert torch.allclose(whole, expected, atol=1e-5)
    assert torch.allclose(torch.cat([first, second], 1), expected, atol=1e-5)


def test_bf16_stays_close_to_fp32():
    config = ModelConfig(ngf=16)
    model = demo_model(config)
    fast = optimize_for_inference(model, "bf16")
    torch.manual_seed(1)
    z_content, z_motion = torch.randn(2, config.d_content), torch.randn(2, config.d_motion)
    with torch.no_grad():
        expected = model(z_content, z_motion, 8)
        video = fast(z_content, z_motion, 8)
    assert video.dtype == torch.float32
    assert psnr_db(expected.numpy(), video.numpy()) >= 35.0


def test_leaves_the_model_unchanged():
    model = build_model(ModelConfig(ngf=8), seed=0).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    optimize_for_inference(model, "bf16")
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(precision="int8"), "unknown precision 'int8'"),
        (dict(frame_chunk=0), "frame_chunk must be a positive integer"),
    ],
)
def test_bad_options(kwargs, message):
    with pytest.raises(InputError, match=message):
        optimize_for_inference(build_model(ModelConfig(ngf=8), seed=0).eval(), **kwargs)


@pytest.mark.parametrize("in_channels, out_channels, side", [(8, 3, 6), (5, 7, 1), (16, 4, 11)])
def test_sub_pixel_equals_conv_transpose(in_channels, out_channels, side):
    from vidsynth.model.inference import LatentProjection, SubPixelConvTranspose

    torch.manual_seed(side)
    layer = torch.nn.ConvTranspose2d(in_channels, out_channels, 4, 2, 1, bias=True)
    x = torch.randn(3, in_channels, side, side)
    with torch.no_grad():
        expected = layer(x)
        assert torch.allclose(SubPixelConvTranspose(layer)(x), expected, atol=1e-5)
        assert torch.allclose(
            SubPixelConvTranspose(layer)(x.contiguous(memory_format=torch.channels_last)), expected, atol=1e-5
        )
        first = torch.nn.ConvTranspose2d(in_channels, out_channels, side, 1, 0, bias=False)
        z = torch.randn(4, in_channels, 1, 1)
        assert torch.allclose(LatentProjection(first)(z), first(z), atol=1e-5)


MOTION_FAMILIES = [(cell, mode) for cell in ("lstm", "gru") for mode in ("same-input", "feedback")]


@pytest.mark.parametrize("cell, mode", MOTION_FAMILIES)
def test_inference_motion_follows_the_literal_recurrence(cell, mode):
    model = demo_model(ModelConfig(ngf=8, hidden_size=16, cell=cell, motion_mode=mode))
    fast = torch.jit.script(InferenceMotion(model.motion, cell))
    z_motion = torch.from_numpy(sample_noise(model.config, 5, seed=2).z_motion)
    with torch.inference_mode():
        state = model.initial_state(z_motion)
        expected, expected_state = model.motion.rollout(state, 300)
        codes, final = fast.rollout(state, 300)
        # continuing from a carried state is the same as one long rollout
        first, middle = fast.rollout(state, 120)
        rest, _ = fast.rollout(middle, 180)
    # 300 steps of feedback compound rounding: the bound scales with the values (up to ~5)
    close = functools.partial(torch.testing.assert_close, rtol=1e-4, atol=1e-4)
    close(codes, expected)
    close(final, expected_state)
    close(torch.cat([first, rest]), expected)


def inlined(graph):
    graph = graph.copy()
    torch._C._jit_pass_inline(graph)
    return graph


def loop_bodies(graph) -> list[list[str]]:
    """The operator kinds of each prim::Loop body."""
    return [
        [inner.kind() for inner in block.nodes()]
        for node in graph.findAllNodes("prim::Loop")
        for block in node.blocks()
    ]


@pytest.mark.parametrize("cell, mode", MOTION_FAMILIES)
def test_the_optimized_recurrence_is_one_kernel_or_one_matrix_product_per_step(cell, mode):
    """Feedback models too: their loop folds the next input's projection into the recurrent
    weights instead of stepping the literal cells (three matrix products per step)."""
    fast = optimize_for_inference(demo_model(ModelConfig(ngf=8, cell=cell, motion_mode=mode)))
    graph = inlined(torch.jit.script(fast.motion).rollout.graph)
    bodies = loop_bodies(graph)
    if mode == "same-input":
        assert bodies == [] and len(graph.findAllNodes(f"aten::{cell}")) == 1
    else:
        [body] = bodies
        assert sum(kind in ("aten::addmm", "aten::matmul", "aten::mm", "aten::linear") for kind in body) == 1
