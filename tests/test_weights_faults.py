"""Weights, checkpoints and export under faults: sizes are checked before
anything is allocated, config files are read only when regular and small, bad values and
flipped bytes are refused on load, and a full disk or a damaged run is one clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from legacy_reference import AssignmentLSTM, Generator_I
from safetensors.torch import load_file, save_file

from vidsynth.checksums import write_sums
from vidsynth.cli import cli
from vidsynth.errors import InputError, StorageError, WeightsError
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.train.checkpoint import STATE_FILE, TENSOR_FILES
from vidsynth.train.config import TrainConfig
from vidsynth.train.loop import train
from vidsynth.weights.format import load_weights, save_weights
from vidsynth.weights.legacy import import_legacy

CHECKPOINT_FILES = (*TENSOR_FILES, STATE_FILE)

REPO = Path(__file__).resolve().parents[1]
CONFIG = ModelConfig(ngf=8, image_size=64)
TINY_RUN = dict(
    data=None, dry_run=True, ngf=4, ndf=4, batch=2, clip_frames=4, frame_step=1, threads=1, sample_every=1000
)


@pytest.fixture(scope="module")
def model():
    return build_model(CONFIG, seed=0).eval()


@pytest.fixture
def weights(model, tmp_path):
    return save_weights(model, tmp_path / "w")


def rewrite_tensors(directory: Path, change) -> None:
    """Edits model.safetensors and re-records its hash, as a tool that rewrites weights would."""
    state = load_file(str(directory / "model.safetensors"))
    change(state)
    save_file(state, str(directory / "model.safetensors"))
    write_sums(directory, ("model.safetensors", "config.json"))


def rewrite_config(directory: Path, **model_changes) -> None:
    record = json.loads((directory / "config.json").read_text())
    record["model"].update(model_changes)
    (directory / "config.json").write_text(json.dumps(record))
    write_sums(directory, ("model.safetensors", "config.json"))


def finishes(function, *args, timeout: float = 20.0) -> str:
    """The error message `function(*args)` raises, failing the test if it hangs."""
    outcome = []

    def call():
        try:
            function(*args)
            outcome.append("no error")
        except Exception as exc:  # noqa: BLE001 - the test inspects whatever came out
            outcome.append(f"{type(exc).__name__}: {exc}")

    worker = threading.Thread(target=call, daemon=True)
    worker.start()
    worker.join(timeout)
    assert not worker.is_alive(), f"{function.__name__} hung"
    return outcome[0]


# -- 6. memory bombs and hangs ------------------------------------------------------------------


@pytest.mark.parametrize("ngf", [10**5, 10**12])
def test_a_config_declaring_a_huge_model_is_refused_before_allocating(weights, ngf):
    rewrite_config(weights, ngf=ngf)
    message = finishes(load_weights, weights)
    assert message.startswith("WeightsError")
    assert "shape mismatch" in message or "cannot be built" in message


def test_a_config_json_fifo_or_device_link_is_refused_without_hanging(weights):
    config = weights / "config.json"
    config.unlink()
    os.mkfifo(config)
    assert "not a regular file" in finishes(load_weights, weights)
    config.unlink()
    config.symlink_to("/dev/zero")
    assert "not a regular file" in finishes(load_weights, weights)
    config.unlink()
    config.write_text(" " * (2 << 20))
    assert "at most" in finishes(load_weights, weights)


def test_a_legacy_checkpoint_declaring_huge_sizes_through_stride_0_is_refused(tmp_path):
    generator = Generator_I(ngf=8, nz=60, first_kernel=4).state_dict()
    generator["main.0.weight"] = torch.zeros(1).expand(60, 8 * 10**6, 4, 4)  # 7.7e9 elements, 4 bytes stored
    torch.save(generator, tmp_path / "g.model")
    torch.save(AssignmentLSTM(10, 100).state_dict(), tmp_path / "m.model")
    message = finishes(import_legacy, tmp_path / "g.model", tmp_path / "m.model")
    assert "WeightsError" in message and "more elements than the file stores" in message


# -- 7. silent corruption ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change,fragment",
    [
        (lambda s: s["image.main.0.weight"].__setitem__(0, float("nan")), "holds NaN or infinite"),
        (lambda s: s["motion.lstm.weight_ih"].__setitem__(0, float("inf")), "holds NaN or infinite"),
        (lambda s: s["image.main.1.running_var"].__setitem__(0, -1.0), "negative variances"),
        (
            lambda s: s.update({"image.main.1.weight": s["image.main.1.weight"].to(torch.int32)}),
            "dtype torch.int32",
        ),
        (lambda s: s.update({"image.main.1.weight": s["image.main.1.weight"] > 0}), "dtype torch.bool"),
        (
            lambda s: s.update({"image.main.1.weight": s["image.main.1.weight"].to(torch.complex64)}),
            "dtype torch.complex64",
        ),
    ],
)
def test_bad_weight_values_are_refused_on_load(weights, change, fragment):
    rewrite_tensors(weights, change)
    with pytest.raises(WeightsError, match=fragment):
        load_weights(weights)


def test_nan_in_a_legacy_checkpoint_is_refused_on_import(tmp_path):
    generator = Generator_I(ngf=8, nz=60, first_kernel=4).state_dict()
    generator["main.3.weight"][0, 0, 0, 0] = float("nan")
    torch.save(generator, tmp_path / "g.model")
    torch.save(AssignmentLSTM(10, 100).state_dict(), tmp_path / "m.model")
    with pytest.raises(WeightsError, match="image.main.3.weight holds NaN"):
        import_legacy(tmp_path / "g.model", tmp_path / "m.model")


def flip_byte_inside(path: Path, member_suffix: str) -> None:
    """Flips one byte in the middle of a zip member's data (not in a header)."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist() if i.filename.endswith(member_suffix))
    data = bytearray(path.read_bytes())
    name_length = int.from_bytes(data[info.header_offset + 26 : info.header_offset + 28], "little")
    extra_length = int.from_bytes(data[info.header_offset + 28 : info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_length + extra_length
    data[start + info.compress_size // 2] ^= 0x40
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_legacy_checkpoint_fails_its_zip_crc(tmp_path):
    generator = Generator_I(ngf=8, nz=60, first_kernel=4)
    torch.save(generator.state_dict(), tmp_path / "g.model")
    torch.save(AssignmentLSTM(10, 100).state_dict(), tmp_path / "m.model")
    with zipfile.ZipFile(tmp_path / "g.model") as archive:  # the largest tensor: main.3.weight's storage
        biggest = max(archive.infolist(), key=lambda i: i.file_size).filename
    flip_byte_inside(tmp_path / "g.model", biggest)
    with pytest.raises(WeightsError, match="fails its CRC check"):
        import_legacy(tmp_path / "g.model", tmp_path / "m.model")


def test_a_flipped_byte_in_model_safetensors_is_caught_by_its_sha256(weights):
    tensors = weights / "model.safetensors"
    data = bytearray(tensors.read_bytes())
    data[-100] ^= 0x01  # inside the last tensor's data: still a valid file
    tensors.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="does not match its sha256 in SHA256SUMS"):
        load_weights(weights)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run = tmp_path_factory.mktemp("hardening_run") / "run"
    train(TrainConfig(steps=1, checkpoint_every=1, **TINY_RUN), run, progress=False)
    return run


@pytest.fixture
def run(run_dir, tmp_path):
    import shutil

    return Path(shutil.copytree(run_dir, tmp_path / "run"))


def test_a_flipped_byte_in_a_training_checkpoint_is_refused_on_resume(run):
    networks = run / "checkpoint" / "networks.safetensors"
    data = bytearray(networks.read_bytes())
    data[-10] ^= 0x01
    networks.write_bytes(bytes(data))
    with pytest.raises(InputError, match="networks.safetensors does not match its sha256"):
        train(TrainConfig(steps=2, **TINY_RUN), run, resume=True, progress=False)


# -- 9. one clear error --------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["{not json", "[1, 2]", '{"step": "x"}', "\x00\xff binary"])
def test_resume_with_a_damaged_state_json_is_one_clear_error(run, damage):
    (run / "checkpoint" / "state.json").write_text(damage, errors="surrogateescape")
    write_sums(run / "checkpoint", CHECKPOINT_FILES)  # damaged before its hashes were recorded
    with pytest.raises(InputError, match="damaged|not a vidsynth checkpoint"):
        train(TrainConfig(steps=2, **TINY_RUN), run, resume=True, progress=False)


def test_resume_from_a_checkpoint_of_another_run_is_one_clear_error(run, tmp_path):
    other = tmp_path / "other"
    train(TrainConfig(steps=1, checkpoint_every=1, **{**TINY_RUN, "ngf": 8}), other, progress=False)
    folder = run / "checkpoint"
    (folder / "networks.safetensors").write_bytes(
        (other / "checkpoint" / "networks.safetensors").read_bytes()
    )
    with pytest.raises(InputError, match="does not match its sha256"):
        train(TrainConfig(steps=2, **TINY_RUN), run, resume=True, progress=False)
    write_sums(folder, CHECKPOINT_FILES)
    with pytest.raises(InputError, match="does not fit the run its state.json describes"):
        train(TrainConfig(steps=2, **TINY_RUN), run, resume=True, progress=False)


def test_weights_given_a_file_says_to_pass_its_directory(weights):
    result = CliRunner().invoke(cli, ["info", str(weights / "model.safetensors")])
    assert result.exit_code == 1
    assert "is a file; pass its directory" in result.output
    with pytest.raises(WeightsError, match="is a file; pass its directory"):
        load_weights(weights / "config.json")


def test_a_full_disk_while_writing_safetensors_is_one_clear_error(model, small_tmpfs):
    disk = small_tmpfs("disk", size="200k")
    with pytest.raises(StorageError, match="no space left on the device"):
        save_weights(model, disk / "w")
    assert list(disk.iterdir()) == []


def test_torchscript_on_a_full_disk_is_an_error_not_an_abort(model, tmp_path, small_tmpfs):
    disk = small_tmpfs("disk", size="200k")  # generator.pt (~1 MB) cannot fit
    save_weights(model, tmp_path / "w")
    child = subprocess.run(
        [
            sys.executable,
            "-m",
            "vidsynth",
            "export",
            "--weights",
            str(tmp_path / "w"),
            "--formats",
            "torchscript",
            "--out",
            str(disk / "art"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert child.returncode == 1, f"exit {child.returncode}: {child.stderr[-400:]}"  # not -6 (SIGABRT)
    assert "no space left on the device" in child.stderr
    assert list(disk.iterdir()) == []


# -- the command line as users run it ------------------------------------------------------------


@pytest.mark.parametrize(
    "damage, fragment",
    [
        (lambda state: state.pop("lstm.weight_hh"), "lstm.weight_hh missing"),
        (lambda state: state.update({"lstm.weight_ih": torch.zeros(400)}), "lstm.weight_ih (400,)"),
    ],
)
def test_an_incomplete_legacy_motion_checkpoint_is_one_error(tmp_path, damage, fragment):
    from entry_point import run_vidsynth

    torch.save(Generator_I(ngf=8, nz=60, first_kernel=4).state_dict(), tmp_path / "g.model")
    state = AssignmentLSTM(10, 100).state_dict()
    damage(state)
    torch.save(state, tmp_path / "m.model")
    result = run_vidsynth(
        "import", str(tmp_path / "g.model"), str(tmp_path / "m.model"), "--out", str(tmp_path / "w")
    )
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "is not a complete LSTM checkpoint" in lines[0] and fragment in lines[0]
    assert not (tmp_path / "w").exists()


def test_a_manifest_entry_for_a_huge_sparse_file_is_refused_before_hashing(model, tmp_path):
    from entry_point import run_vidsynth

    from vidsynth.export import export_artifacts

    out = tmp_path / "art"
    export_artifacts(model, out, formats=("torchscript",))
    os.truncate(out / "generator.pt", 1 << 40)  # 1 TiB, sparse: nothing on disk, 19 min to hash
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["generator.pt"]["bytes"] = 1 << 40
    (out / "manifest.json").write_text(json.dumps(manifest))
    result = run_vidsynth("generate", "--artifacts", str(out), "--out", str(tmp_path / "v"), timeout=120)
    assert result.returncode == 1
    assert "more than an export of its model can hold" in result.stderr, result.stderr
