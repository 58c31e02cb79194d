"""VideoGenerator: shapes, latent layout, scripting, streaming, conditioning."""

import json
import math

import pytest
import torch
from torch import nn

from vidsynth.errors import ConfigError, InputError
from vidsynth.model.config import PRESETS, ModelConfig, image_layers
from vidsynth.model.generator import ImageGenerator, VideoGenerator, build_model

SMALL = dict(ngf=8, hidden_size=16)


def small(**changes) -> ModelConfig:
    return ModelConfig(**{**SMALL, **changes})


@pytest.mark.parametrize("size", [64, 96])
@pytest.mark.parametrize(
    "cell,mode", [("lstm", "same-input"), ("gru", "feedback"), ("lstm", "feedback"), ("gru", "same-input")]
)
def test_video_shape_and_range(size, cell, mode):
    model = build_model(small(image_size=size, cell=cell, motion_mode=mode), seed=0).eval()
    video = model(torch.randn(3, 50), torch.randn(3, 10), 4)
    assert video.shape == (3, 4, 3, size, size)
    assert video.dtype == torch.float32
    assert video.abs().max() <= 1


def test_state_dict_keys_match_legacy_generator_layout():
    keys = {k.removeprefix("image.") for k in VideoGenerator(small()).state_dict() if k.startswith("image.")}
    convs = {f"main.{i}.weight" for i in (0, 3, 6, 9, 12)}
    norms = {
        f"main.{i}.{p}"
        for i in (1, 4, 7, 10)
        for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    }
    assert keys == convs | norms


@pytest.mark.parametrize("config", [ModelConfig(), small(image_size=64, n_categories=3)])
def test_image_layers_describe_the_image_generator(config):
    """What the memory plan and the FLOP count read (image_layers) is what the model builds."""
    with torch.device("meta"):
        image = ImageGenerator(config)
        seen = []
        for module in image.main:
            if isinstance(module, nn.ConvTranspose2d):
                module.register_forward_hook(lambda m, args, out: seen.append((m, args[0].shape, out.shape)))
        image(torch.empty(2, config.nz, 1, 1))
    described = [
        (m.in_channels, m.out_channels, m.kernel_size[0], inputs[-1], out[-1]) for m, inputs, out in seen
    ]
    assert described == [tuple(layer) for layer in image_layers(config)]
    assert image_layers(config)[-1].out_side == config.image_size


def test_frame_t_is_drawn_from_motion_then_content():
    torch.manual_seed(0)
    model = build_model(small(), seed=1).eval()
    z_content, z_motion = torch.randn(2, 50), torch.randn(2, 10)
    video = model(z_content, z_motion, 3)
    codes, _ = model.motion.rollout(model.initial_state(z_motion), 3)
    for step in range(3):
        z = torch.cat([codes[step], z_content], 1)[:, :, None, None]
        torch.testing.assert_close(video[:, step], model.image(z), atol=1e-6, rtol=1e-6)


def test_seeded_build_leaves_every_global_generator_alone(monkeypatch):
    """build_model(seed=...) draws its weights from a seeded CPU stream and puts the global CPU
    generator back; CUDA generators are not reseeded (torch.manual_seed would)."""
    reseeded = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: reseeded.append(seed))
    before = torch.get_rng_state()
    build_model(small(), seed=3)
    assert torch.equal(torch.get_rng_state(), before)
    assert reseeded == []


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_seeded_build_leaves_the_cuda_generator_alone():
    before = torch.cuda.get_rng_state()
    build_model(small(), seed=3)
    assert torch.equal(torch.cuda.get_rng_state(), before)


def test_seed_fixes_the_initial_weights():
    a, b = build_model(small(), seed=3), build_model(small(), seed=3)
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)
    c = build_model(small(), seed=4)
    assert not torch.equal(a.image.main[0].weight, c.image.main[0].weight)


@pytest.mark.parametrize(
    "config", [small(), small(cell="gru", motion_mode="feedback"), small(n_categories=4)]
)
def test_scripted_equals_eager(config):
    model = build_model(config, seed=0).eval()
    scripted = torch.jit.script(model)
    z_content, z_motion = torch.randn(2, 50), torch.randn(2, 10)
    for n_frames in (1, 5):
        torch.testing.assert_close(
            scripted(z_content, z_motion, n_frames), model(z_content, z_motion, n_frames)
        )


@pytest.mark.parametrize("cell,mode", [("lstm", "same-input"), ("gru", "feedback")])
def test_chunks_continue_the_same_video(cell, mode):
    model = build_model(small(cell=cell, motion_mode=mode), seed=0).eval()
    z_content, z_motion = torch.randn(2, 50), torch.randn(2, 10)
    whole = model(z_content, z_motion, 7)
    state = model.initial_state(z_motion)
    assert state.shape == (2, model.config.state_size)
    parts = []
    for n in (3, 1, 3):
        chunk, state = model.generate_chunk(z_content, state, n)
        parts.append(chunk)
    torch.testing.assert_close(torch.cat(parts, 1), whole, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_one_first_state_for_every_form(cell):
    """The torch rule (model.layers.initial_state) and its numpy twin for the torch-free
    runtimes (artifacts.contract.initial_state) give the same state, and every torch form
    starts from it: zeros for the cell state, then z_motion."""
    from vidsynth.artifacts.contract import initial_state
    from vidsynth.model.inference import optimize_for_inference

    model = build_model(small(cell=cell, motion_mode="feedback"), seed=0).eval()
    z_motion = torch.randn(3, 10)
    expected = torch.cat([torch.zeros(3, model.config.state_size - 10), z_motion], 1)
    forms = {
        "model": model.initial_state(z_motion),
        "motion module": model.motion.initial_state(z_motion),
        "scripted": torch.jit.script(model).initial_state(z_motion),
        "optimized": optimize_for_inference(model).initial_state(z_motion),
        "numpy": torch.from_numpy(initial_state(z_motion.numpy(), model.config.state_size)),
    }
    for name, state in forms.items():
        assert torch.equal(state, expected), name


def test_category_changes_the_video_and_defaults_to_zero():
    model = build_model(small(n_categories=4), seed=0).eval()
    z_content, z_motion = torch.randn(2, 50), torch.randn(2, 10)
    zero = model(z_content, z_motion, 2, torch.tensor([0, 0]))
    torch.testing.assert_close(model(z_content, z_motion, 2), zero)
    assert not torch.allclose(model(z_content, z_motion, 2, torch.tensor([3, 3])), zero)
    assert model.image.main[0].weight.shape[0] == 10 + 50 + 4


def test_presets():
    assert PRESETS["assignment"].cell == "lstm" and PRESETS["assignment"].motion_mode == "same-input"
    assert PRESETS["dlhacks"].cell == "gru" and PRESETS["dlhacks"].motion_mode == "feedback"
    assert PRESETS["mocogan64"].image_size == 64
    assert ModelConfig.from_dict(PRESETS["dlhacks"].to_dict()) == PRESETS["dlhacks"]


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(cell="rnn"), "unknown cell 'rnn'; expected one of: lstm, gru"),
        (dict(motion_mode="x"), "unknown motion mode"),
        (dict(image_size=128), "unknown image size 128"),
        (dict(image_size=64.0), "image_size must be an integer, got 64.0"),
        (dict(ngf=0), "ngf must be a positive integer"),
        (dict(ngf=True), "ngf must be an integer, got True"),
        (dict(hidden_size="100"), "hidden_size must be an integer, got '100'"),
        (dict(n_categories=False), "n_categories must be an integer, got False"),
        (dict(cell=1), "cell must be a string, got 1"),
        (dict(bn_eps=-1), "bn_eps must be a finite number > 0, got -1"),
        (dict(bn_eps=0.0), "bn_eps must be a finite number > 0, got 0.0"),
        (dict(bn_eps=math.nan), "bn_eps must be a finite number > 0, got nan"),
        (dict(bn_eps=math.inf), "bn_eps must be a finite number > 0, got inf"),
        (dict(bn_eps="abc"), "bn_eps must be a number, got 'abc'"),
        (dict(bn_eps=True), "bn_eps must be a number, got True"),
        (dict(n_categories=2, category_names=("a",)), "name all 2 categories or none, got 1"),
        (dict(category_names=("a",)), "name all 0 categories or none"),
        (dict(n_categories=1, category_names=(" ",)), "printable names of 1 to 255"),
        (dict(n_categories=1, category_names=("a\nb",)), "printable names"),
        (dict(n_categories=2, category_names=("a", "a")), "must be distinct"),
        (dict(n_categories=1, category_names=(1,)), "category_names must be a list of strings"),
        (dict(n_categories=1, category_names="a"), "category_names must be a list of strings"),
    ],
)
def test_bad_config_is_refused(changes, message):
    with pytest.raises(ConfigError, match=message):
        ModelConfig(**changes)


def test_category_names_are_optional_and_survive_json():
    old = {k: v for k, v in PRESETS["mocogan64"].replace(n_categories=2).to_dict().items()}
    del old["category_names"]  # a config written before categories had names
    assert ModelConfig.from_dict(old).category_names == ()
    named = ModelConfig(n_categories=2, category_names=["wave", "bend"])
    assert named.category_names == ("wave", "bend")
    assert ModelConfig.from_dict(json.loads(json.dumps(named.to_dict()))) == named
    assert named.category_labels() == "0 = wave, 1 = bend"
    assert ModelConfig(n_categories=2).category_labels() == "0, 1"


def test_unknown_config_fields_are_refused():
    with pytest.raises(ConfigError, match=r"unknown config fields \['colour'\]"):
        ModelConfig.from_dict({"colour": 1})


def test_every_batch_norm_uses_the_configured_eps():
    model = build_model(small(bn_eps=0.125), seed=0)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == 5  # four in the image generator, one in the motion module
    assert [m.eps for m in norms] == [0.125] * 5


@pytest.mark.parametrize("n_frames", [0, -3])
def test_frame_count_below_one_is_a_clear_error(n_frames):
    model = build_model(small(), seed=0).eval()
    with pytest.raises(InputError, match=f"n_frames must be >= 1, got {n_frames}"):
        model(torch.randn(2, 50), torch.randn(2, 10), n_frames)
    with pytest.raises(InputError, match="n_frames must be >= 1"):
        model.generate_chunk(torch.randn(2, 50), model.initial_state(torch.randn(2, 10)), n_frames)
