"""Our weights format, the legacy importers, and every bad input they can meet."""

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from legacy_reference import AssignmentLSTM, DLHacksGRU, Generator_I, legacy_video, randomize_batchnorm

from vidsynth.checksums import write_sums
from vidsynth.cli import cli
from vidsynth.errors import InputError, WeightsError
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.weights import load_model
from vidsynth.weights.format import load_weights, save_weights
from vidsynth.weights.legacy import import_legacy

NGF = 8


def inputs(batch=2, d_content=50, d_motion=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, d_content, generator=g), torch.randn(batch, d_motion, generator=g)


@pytest.fixture(scope="module")
def legacy_files(tmp_path_factory):
    """Legacy checkpoints saved from the torch.nn originals: assignment (96 px, LSTM) and
    DLHacks (96 px, GRU), plus a 64 px generator."""
    root = tmp_path_factory.mktemp("legacy")
    torch.manual_seed(0)
    models = {
        "generator96": Generator_I(ngf=NGF, nz=60, first_kernel=6),
        "generator64": Generator_I(ngf=NGF, nz=60, first_kernel=4),
        "lstm": AssignmentLSTM(10, 100),
        "gru": DLHacksGRU(10, 100),
    }
    paths = {}
    for name, model in models.items():
        randomize_batchnorm(model, seed=len(name))
        model.eval()
        paths[name] = root / f"{name}.model"
        state = model.state_dict()
        if name == "gru":  # DLHacks' file predates BatchNorm's batch counter
            state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        torch.save(state, paths[name])
    return models, paths


@pytest.mark.parametrize(
    "generator,motion,size,cell,mode",
    [
        ("generator96", "lstm", 96, "lstm", "same-input"),
        ("generator96", "gru", 96, "gru", "feedback"),
        ("generator64", "lstm", 64, "lstm", "same-input"),
    ],
)
def test_legacy_import_reproduces_original_video(legacy_files, generator, motion, size, cell, mode):
    models, paths = legacy_files
    model = import_legacy(paths[generator], paths[motion])
    config = model.config
    assert (config.image_size, config.cell, config.motion_mode) == (size, cell, mode)
    assert (config.ngf, config.d_content, config.d_motion, config.hidden_size) == (NGF, 50, 10, 100)
    z_content, z_motion = inputs()
    with torch.no_grad():
        expected = legacy_video(models[generator], models[motion], z_content, z_motion, 6)
        torch.testing.assert_close(model(z_content, z_motion, 6), expected, atol=1e-5, rtol=1e-5)


def test_legacy_keys_without_batch_counters_and_with_nn_gru_suffixes(legacy_files, tmp_path):
    models, paths = legacy_files
    state = torch.load(paths["gru"], weights_only=True)
    assert "gru.weight_ih_l0" in state and not any("num_batches" in k for k in state)
    stripped = {
        k: v
        for k, v in torch.load(paths["generator96"], weights_only=True).items()
        if not k.endswith("num_batches_tracked")
    }
    torch.save(stripped, tmp_path / "old.model")
    model = import_legacy(tmp_path / "old.model", paths["gru"])
    assert (model.config.cell, model.config.motion_mode) == ("gru", "feedback")
    z_content, z_motion = inputs()
    with torch.no_grad():  # the missing counters change nothing: same video as the originals
        expected = legacy_video(models["generator96"], models["gru"], z_content, z_motion, 4)
        torch.testing.assert_close(model(z_content, z_motion, 4), expected, atol=1e-5, rtol=1e-5)


def test_save_load_round_trip(tmp_path):
    model = build_model(
        ModelConfig(ngf=NGF, cell="gru", motion_mode="feedback", n_categories=3), seed=2
    ).eval()
    save_weights(model, tmp_path / "w", {"source": "test", "training_data": "none", "steps": 0})
    loaded = load_weights(tmp_path / "w")
    assert loaded.config == model.config
    assert loaded.provenance["source"] == "test" and "vidsynth_version" in loaded.provenance
    z_content, z_motion = inputs()
    torch.testing.assert_close(loaded(z_content, z_motion, 3), model(z_content, z_motion, 3), atol=0, rtol=0)
    record = json.loads((tmp_path / "w" / "config.json").read_text())
    assert record["model"]["cell"] == "gru"
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == [
        "SHA256SUMS",
        "config.json",
        "model.safetensors",
    ]


def test_save_refuses_to_clobber_without_force(tmp_path):
    model = build_model(ModelConfig(ngf=NGF), seed=0)
    save_weights(model, tmp_path / "w")
    before = (tmp_path / "w" / "model.safetensors").read_bytes()
    with pytest.raises(InputError, match="already exists"):
        save_weights(build_model(ModelConfig(ngf=NGF), seed=1), tmp_path / "w")
    assert (tmp_path / "w" / "model.safetensors").read_bytes() == before
    save_weights(build_model(ModelConfig(ngf=NGF), seed=1), tmp_path / "w", force=True)
    assert (tmp_path / "w" / "model.safetensors").read_bytes() != before


def test_demo_weights_are_deterministic_and_not_flat():
    a, b = load_model("demo"), load_model("demo")
    z_content, z_motion = inputs()
    video = a(z_content, z_motion, 2)
    torch.testing.assert_close(video, b(z_content, z_motion, 2), atol=0, rtol=0)
    assert video.std() > 0.05  # calibrated batch norm: real contrast, not flat grey
    assert a.provenance["source"] == "demo"


def test_default_weights_load_with_their_provenance():
    model = load_model()
    assert not model.training
    assert model.config.image_size in (64, 96)
    assert model.provenance["source"] == "vidsynth train" and model.provenance["steps"] > 0


def test_default_weights_name_their_actions_and_record_no_local_paths():
    from vidsynth.weights import DEFAULT_WEIGHTS_DIR

    model = load_model()
    assert model.config.category_names == ("one-hand wave", "two-hand wave", "jumping jack", "bend")
    shipped = (DEFAULT_WEIGHTS_DIR / "config.json").read_text() + (
        DEFAULT_WEIGHTS_DIR / "MODEL_CARD.md"
    ).read_text()
    assert "/work/" not in shipped and "/tmp/" not in shipped and ".gpu" not in shipped
    assert model.provenance["training_data"]["folder"] == "actions"
    help_text = CliRunner().invoke(cli, ["generate", "--help"]).output
    assert "default weights: 0 = one-hand wave, 1 = two-hand wave, 2 = jumping jack, 3 = bend" in " ".join(
        help_text.split()
    )


# -- bad input ---------------------------------------------------------------------------------


def run_import(generator, motion, out):
    return CliRunner().invoke(cli, ["import", str(generator), str(motion), "--out", str(out)])


def assert_clean_failure(result, out: Path, *fragments):
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in lines[0]
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}")]


def test_import_cli_writes_weights_and_info_reads_them(legacy_files, tmp_path):
    _, paths = legacy_files
    result = run_import(paths["generator96"], paths["lstm"], tmp_path / "w")
    assert result.exit_code == 0, result.output
    info = CliRunner().invoke(cli, ["info", str(tmp_path / "w")])
    report = json.loads(info.output)
    assert report["config"]["cell"] == "lstm" and report["parameters"] > 0
    assert report["provenance"]["generator"] == "generator96.model"


def test_not_a_checkpoint(legacy_files, tmp_path):
    _, paths = legacy_files
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"this is not a checkpoint")
    assert_clean_failure(
        run_import(junk, paths["lstm"], tmp_path / "out"),
        tmp_path / "out",
        "junk.model is not a readable PyTorch checkpoint",
    )


def test_truncated_checkpoint(legacy_files, tmp_path):
    _, paths = legacy_files
    data = paths["generator96"].read_bytes()
    cut = tmp_path / "cut.model"
    cut.write_bytes(data[: len(data) // 2])
    assert_clean_failure(run_import(cut, paths["lstm"], tmp_path / "out"), tmp_path / "out", "cut.model")


def test_pickled_code_is_refused(legacy_files, tmp_path):
    _, paths = legacy_files
    evil = tmp_path / "evil.model"
    torch.save({"main.0.weight": torch.zeros(1), "payload": Generator_I}, evil)  # needs full unpickling
    assert_clean_failure(run_import(evil, paths["lstm"], tmp_path / "out"), tmp_path / "out", "evil.model")


def edited(paths, tmp_path, name, change):
    state = torch.load(paths[name], weights_only=True)
    change(state)
    path = tmp_path / f"edited-{name}.model"
    torch.save(state, path)
    return path


def test_missing_key(legacy_files, tmp_path):
    _, paths = legacy_files
    bad = edited(paths, tmp_path, "generator96", lambda s: s.pop("main.4.running_var"))
    assert_clean_failure(
        run_import(bad, paths["lstm"], tmp_path / "out"),
        tmp_path / "out",
        "missing keys ['image.main.4.running_var']",
    )


def test_unexpected_key(legacy_files, tmp_path):
    _, paths = legacy_files
    bad = edited(paths, tmp_path, "lstm", lambda s: s.update({"extra.weight": torch.zeros(2)}))
    assert_clean_failure(
        run_import(paths["generator96"], bad, tmp_path / "out"),
        tmp_path / "out",
        "unexpected keys ['motion.extra.weight']",
    )


def test_shape_mismatch_names_key_and_shapes(legacy_files, tmp_path):
    _, paths = legacy_files
    bad = edited(
        paths, tmp_path, "generator96", lambda s: s.update({"main.3.weight": torch.zeros(64, 16, 4, 4)})
    )
    assert_clean_failure(
        run_import(bad, paths["lstm"], tmp_path / "out"),
        tmp_path / "out",
        "shape mismatch at image.main.3.weight: expected (64, 32, 4, 4), found (64, 16, 4, 4)",
    )


def test_motion_that_does_not_fit_the_generator(legacy_files, tmp_path):
    _, paths = legacy_files
    wide = AssignmentLSTM(input_size=60, hidden_size=20)
    torch.save(wide.state_dict(), tmp_path / "wide.model")
    assert_clean_failure(
        run_import(paths["generator96"], tmp_path / "wide.model", tmp_path / "out"),
        tmp_path / "out",
        "does not fit",
    )


def test_generator_and_motion_swapped(legacy_files, tmp_path):
    _, paths = legacy_files
    assert_clean_failure(
        run_import(paths["lstm"], paths["generator96"], tmp_path / "out"),
        tmp_path / "out",
        "is not a Generator_I checkpoint",
    )


def test_bad_weights_directories(tmp_path):
    with pytest.raises(WeightsError, match="unknown weights 'nope'"):
        load_model("nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsError, match="no config.json"):
        load_weights(tmp_path / "empty")
    save_weights(build_model(ModelConfig(ngf=NGF), seed=0), tmp_path / "w")
    tensors = tmp_path / "w" / "model.safetensors"
    tensors.write_bytes(tensors.read_bytes()[:100])
    with pytest.raises(WeightsError, match="does not match its sha256 in SHA256SUMS"):
        load_weights(tmp_path / "w")
    write_sums(tmp_path / "w", ("model.safetensors", "config.json"))  # as a tool that rewrites weights would
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_weights(tmp_path / "w")
    (tmp_path / "w" / "SHA256SUMS").unlink()
    with pytest.raises(WeightsError, match="has no SHA256SUMS, so its files cannot be verified"):
        load_weights(tmp_path / "w")
