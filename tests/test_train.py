"""Training: data loading (both layouts, bad inputs), dry runs, exact resume, run export, the
command line, and the shipped default weights."""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from entry_point import NO_NATIVE_BF16, run_vidsynth
from safetensors.torch import load_file

from vidsynth.cli import cli
from vidsynth.errors import DataError, InputError, RuntimeBackendError
from vidsynth.train.checkpoint import LOSS_LOG, read_losses
from vidsynth.train.config import TrainConfig
from vidsynth.train.data import load_folder, read_clip, sniff_format, synthetic_dataset
from vidsynth.train.loop import build_trainer, export_run, resolve_device, train, train_step
from vidsynth.train.options import DRY_RUN_STEPS, TrainCommand, config_from_options
from vidsynth.train.sampler import ClipSampler
from vidsynth.weights import load_model

iio = pytest.importorskip("imageio.v3")

# A tiny model: every test here trains in a second or two.
TINY = dict(ngf=4, ndf=4, batch=2, clip_frames=4, frame_step=1, threads=1, sample_every=1000)


def _clip(n_frames: int, size: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n_frames, size, size, 3), dtype=np.uint8)


def _write_strip(path, clip: np.ndarray, alpha: bool = True) -> None:
    """MoCoGAN layout: frames side by side in one PNG (saved under whatever name is given)."""
    t, h, w, _ = clip.shape
    strip = clip.transpose(1, 0, 2, 3).reshape(h, t * w, 3)
    if alpha:
        strip = np.concatenate([strip, np.full((h, t * w, 1), 255, np.uint8)], axis=2)
    iio.imwrite(path, strip, extension=".png")


# -- data -------------------------------------------------------------------------------------


def test_strip_named_jpg_is_read_as_png_strip(tmp_path):
    clip = _clip(5)
    path = tmp_path / "clip.jpg"
    _write_strip(path, clip)
    assert sniff_format(path) == "png"
    frames = read_clip(path)
    assert frames.shape == (5, 16, 16, 3)
    np.testing.assert_array_equal(frames, clip)  # PNG is lossless: frames come back exactly


def test_gif_and_mp4_videos_are_read(tmp_path):
    clip = _clip(6)
    iio.imwrite(tmp_path / "a.gif", clip, extension=".gif", loop=0)
    frames = read_clip(tmp_path / "a.gif")
    assert frames.shape == (6, 16, 16, 3)
    pytest.importorskip("imageio_ffmpeg")
    smooth = np.repeat(np.linspace(0, 255, 6, dtype=np.uint8)[:, None, None, None], 3, axis=3)
    video = np.broadcast_to(smooth, (6, 32, 32, 3)).copy()
    _write_mp4_ffmpeg(tmp_path / "b.mp4", video)
    frames = read_clip(tmp_path / "b.mp4")
    assert frames.shape[1:] == (32, 32, 3) and frames.shape[0] >= 5
    assert abs(float(frames[-1].mean()) - 255) < 20  # lossy codec: close, not exact


def _write_mp4_ffmpeg(path, video: np.ndarray) -> None:
    import imageio.v2 as imageio_v2

    writer = imageio_v2.get_writer(str(path), format="FFMPEG", fps=10, macro_block_size=1)
    for frame in video:
        writer.append_data(frame)
    writer.close()


def test_folder_classes_are_subfolders_sorted_numerically(tmp_path):
    for name in ("10", "2"):
        (tmp_path / name).mkdir()
        _write_strip(tmp_path / name / "x.jpg", _clip(4, seed=int(name)))
    iio.imwrite(tmp_path / "2" / "y.gif", _clip(4), extension=".gif")
    data = load_folder(tmp_path)
    assert data.classes == ["2", "10"]
    assert sorted(data.labels.tolist()) == [0, 0, 1]
    assert data.frame_size == 16 and data.n_frames == 12


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "0").mkdir()
    with pytest.raises(DataError, match="holds no clips"):
        load_folder(tmp_path)


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_folder(tmp_path / "nope")


def test_unreadable_files_are_named(tmp_path):
    _write_strip(tmp_path / "good.jpg", _clip(4))
    (tmp_path / "notes.jpg").write_text("not an image")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    with pytest.raises(DataError) as info:
        load_folder(tmp_path)
    message = str(info.value)
    assert "2 unreadable" in message and "notes.jpg" in message and "broken.png" in message
    assert "good.jpg" not in message


def test_mixed_frame_sizes_are_refused(tmp_path):
    _write_strip(tmp_path / "small.jpg", _clip(4, size=16))
    _write_strip(tmp_path / "large.jpg", _clip(4, size=32))
    with pytest.raises(DataError, match="mixed sizes.*16x16.*32x32|mixed sizes.*32x32.*16x16"):
        load_folder(tmp_path)


def test_strip_that_is_not_whole_frames_is_refused(tmp_path):
    iio.imwrite(tmp_path / "odd.png", np.zeros((16, 40, 3), np.uint8), extension=".png")
    with pytest.raises(DataError, match="odd.png.*not a multiple of 16"):
        load_folder(tmp_path)


def test_clips_shorter_than_a_training_clip_are_refused(tmp_path):
    _write_strip(tmp_path / "short.jpg", _clip(3))
    data = load_folder(tmp_path)
    with pytest.raises(DataError, match="short.jpg.*3 frames"):
        ClipSampler(data, 64, clip_frames=4, frame_step=1)


def test_sampler_takes_every_nth_frame_in_order(tmp_path):
    clip = np.zeros((10, 16, 16, 3), np.uint8)
    clip[:] = (np.arange(10) * 20)[:, None, None, None]  # frame k is uniformly 20k
    _write_strip(tmp_path / "ramp.jpg", clip)
    sampler = ClipSampler(load_folder(tmp_path), 16, clip_frames=4, frame_step=3)
    video, labels = sampler.videos(5, torch.Generator().manual_seed(0))
    assert video.shape == (5, 4, 3, 16, 16) and labels.tolist() == [0] * 5
    levels = ((video[:, :, 0, 0, 0] + 1) * 127.5).round() / 20  # frame indices
    assert torch.equal(levels[:, 1:] - levels[:, :-1], torch.full((5, 3), 3.0))


# -- training ---------------------------------------------------------------------------------


def _state(run_dir):
    return json.loads((run_dir / "checkpoint" / "state.json").read_text())


def test_dry_run_trains_and_writes_a_loadable_run(tmp_path):
    out = tmp_path / "run"
    args = [
        "--dry-run",
        "--out",
        str(out),
        "--ngf",
        "4",
        "--ndf",
        "4",
        "--batch",
        "2",
        "--clip-frames",
        "4",
        "--frame-step",
        "1",
        "--threads",
        "1",
        "--quiet",
    ]
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 0, result.output
    losses = read_losses(out)
    assert [row["step"] for row in losses] == [1, 2, 3]  # --dry-run without --steps: 3
    assert all(math.isfinite(row[name]) for row in losses for name in row)
    assert (out / "samples" / "step_000003.png").is_file()
    model = load_model(out / "weights")
    assert model.config.n_categories == 2 and model.provenance["steps"] == 3
    typed = " ".join(args).replace(str(out), out.name)  # as given, directories by name
    assert model.provenance["command"] == ["vidsynth train " + typed]
    video = model(torch.zeros(2, 50), torch.zeros(2, 10), 5, torch.tensor([0, 1]))
    assert video.shape == (2, 5, 3, 64, 64) and torch.isfinite(video).all()


def test_resume_continues_exactly(tmp_path):
    config = TrainConfig(data=None, dry_run=True, steps=4, checkpoint_every=2, **TINY)
    train(config, tmp_path / "whole", progress=False)
    train(config.replace(steps=2), tmp_path / "split", progress=False)
    resumed = train(config, tmp_path / "split", resume=True, progress=False)
    assert resumed["step"] == 4 and resumed["steps_this_call"] == 2
    assert [row["step"] for row in read_losses(tmp_path / "whole")] == [1, 2, 3, 4]
    assert read_losses(tmp_path / "split") == read_losses(tmp_path / "whole")
    a = load_file(str(tmp_path / "whole" / "checkpoint" / "networks.safetensors"))
    b = load_file(str(tmp_path / "split" / "checkpoint" / "networks.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_resume_on_another_device_seeds_the_noise_stream_afresh(tmp_path):
    """A generator's state belongs to its device type; a run moved to another device keeps the
    CPU draws (data, codes) and starts a fresh, seeded instance-noise stream."""
    from safetensors.torch import save_file

    from vidsynth.checksums import write_sums

    config = TrainConfig(data=None, dry_run=True, steps=3, checkpoint_every=1, **TINY)
    train(config.replace(steps=2), tmp_path / "a", progress=False)
    rng_file = tmp_path / "a" / "checkpoint" / "rng.safetensors"
    states = load_file(str(rng_file))
    assert set(states) == {"run.cpu", "noise.cpu"}
    states["noise.other"] = states.pop("noise.cpu")  # as if written on another device type
    save_file(states, str(rng_file))
    write_sums(
        rng_file.parent, ("networks.safetensors", "optimizers.safetensors", "rng.safetensors", "state.json")
    )
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    first = train(config, tmp_path / "a", resume=True, progress=False)
    second = train(config, tmp_path / "b", resume=True, progress=False)
    assert first["step"] == second["step"] == 3
    assert read_losses(tmp_path / "a") == read_losses(tmp_path / "b")  # the reseeded stream is seeded


def test_motion_norm_is_trained_as_deployed(tmp_path):
    """By default the motion codes are normalised in training exactly as in eval mode, so the
    stored statistics stay what training used; per-step batch statistics move them."""
    config = TrainConfig(data=None, dry_run=True, steps=2, **TINY)
    train(config, tmp_path / "frozen", progress=False)
    frozen = load_model(tmp_path / "frozen" / "weights")
    assert torch.equal(frozen.motion.bn.running_mean, torch.zeros(config.d_motion))
    assert torch.equal(frozen.motion.bn.running_var, torch.ones(config.d_motion))
    train(config.replace(per_step_motion_norm=True), tmp_path / "batch", progress=False)
    batch = load_model(tmp_path / "batch" / "weights")
    assert not torch.equal(batch.motion.bn.running_mean, torch.zeros(config.d_motion))


@pytest.mark.parametrize("frozen", [True, False])
def test_a_run_recorded_with_freeze_motion_norm_resumes_with_the_same_setting(frozen):
    recorded = TrainConfig(data=None, dry_run=True).to_dict()
    del recorded["per_step_motion_norm"]
    recorded["freeze_motion_norm"] = frozen
    assert TrainConfig.from_dict(recorded).per_step_motion_norm is not frozen


def test_the_shipped_weights_training_settings_read_back():
    from vidsynth.weights import DEFAULT_WEIGHTS_DIR
    from vidsynth.weights.format import read_config

    if not (DEFAULT_WEIGHTS_DIR / "model.safetensors").is_file():
        pytest.skip("this build ships no default weights")
    recorded = read_config(DEFAULT_WEIGHTS_DIR)[1]["train_config"]
    assert TrainConfig.from_dict(recorded) == TrainConfig.from_dict(
        {**recorded, "per_step_motion_norm": False}
    )


def test_seed_decides_the_run(tmp_path):
    config = TrainConfig(data=None, dry_run=True, steps=2, **TINY)
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        train(config.replace(seed=seed), tmp_path / name, progress=False)
    first, again, other = (read_losses(tmp_path / name) for name in "abc")
    assert first == again and first != other


def test_existing_run_needs_resume_and_resume_needs_a_run(tmp_path):
    config = TrainConfig(data=None, dry_run=True, steps=1, **TINY)
    train(config, tmp_path / "run", progress=False)
    with pytest.raises(InputError, match="--resume"):
        train(config, tmp_path / "run", progress=False)
    with pytest.raises(InputError, match="no checkpoint"):
        train(config, tmp_path / "empty", resume=True, progress=False)


def test_time_limit_stops_after_a_checkpoint(tmp_path):
    config = TrainConfig(data=None, dry_run=True, steps=50, checkpoint_every=100, **TINY)
    record = train(config, tmp_path / "run", max_minutes=1e-6, progress=False)
    assert record["stopped"] == "time limit" and record["step"] == 1
    assert json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["step"] == 1


SIGTERM_AT_STEP_2 = """
import json, os, signal, sys
from vidsynth.train.config import TrainConfig
from vidsynth.train.loop import train
before = signal.getsignal(signal.SIGTERM)
def terminate_at_step_2(step, losses):
    if step == 2:
        os.kill(os.getpid(), signal.SIGTERM)
config = TrainConfig(**json.loads(sys.argv[1]))
record = train(config, sys.argv[2], progress=False, on_step=terminate_at_step_2)
print(json.dumps({**record, "handler_restored": signal.getsignal(signal.SIGTERM) is before}))
"""


def test_sigterm_stops_after_a_checkpoint_and_puts_the_handler_back(tmp_path):
    # In a process of its own: the signal goes to the whole process, and the suite's process
    # holds native runtimes (OpenVINO's threads among them) that other tests started.
    settings = dict(data=None, dry_run=True, steps=50, checkpoint_every=100, **TINY)
    run = subprocess.run(
        [sys.executable, "-c", SIGTERM_AT_STEP_2, json.dumps(settings), str(tmp_path / "run")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    record = json.loads(run.stdout.strip().splitlines()[-1])
    assert record["stopped"] == "signal" and record["step"] == 2 and record["handler_restored"]
    assert json.loads((tmp_path / "run" / "checkpoint" / "state.json").read_text())["step"] == 2


def test_bad_settings_are_collected_in_one_error():
    with pytest.raises(InputError) as info:
        TrainConfig(data=None, batch=1, clip_frames=2)
    message = str(info.value)
    assert "batch" in message and "clip_frames" in message and "--data FOLDER is needed" in message


@pytest.mark.parametrize(
    "changes,message",
    [
        (dict(ngf="8"), "ngf must be an integer, got '8'"),
        (dict(batch=2.0), "batch must be an integer, got 2.0"),
        (dict(bf16="yes"), "bf16 must be true or false, got 'yes'"),
        (dict(data=3), "data must be a string or None, got 3"),
        (dict(lr=math.nan), "lr must be a finite number > 0, got nan"),
        (dict(beta1=1.0), r"beta1 must be in \[0, 1\), got 1.0"),
        (dict(instance_noise=-0.1), "instance_noise must be a finite number >= 0, got -0.1"),
    ],
)
def test_bad_setting_types_and_values_name_the_field(changes, message):
    with pytest.raises(InputError, match=message):
        TrainConfig(**{**dict(data=None, dry_run=True), **changes})


def test_devices_are_the_runtimes_choices():
    with pytest.raises(InputError, match="unknown device 'tpu'; expected one of: cpu, cuda, auto"):
        TrainConfig(data=None, dry_run=True, device="tpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeBackendError, match="--device cuda is not usable: torch sees no CUDA GPU"):
            resolve_device("cuda")


def _train_params(args: list[str]) -> dict:
    from vidsynth.cli import train_command

    assert isinstance(train_command, TrainCommand)
    return train_command.make_context("train", args).params


def test_command_line_flags_and_defaults():
    params = _train_params(["--data", "clips", "--out", "run"])
    run_options = {"run_dir": "run", "max_minutes": None, "resume": False, "quiet": False}
    assert {k: params.pop(k) for k in run_options} == run_options
    assert config_from_options(params) == TrainConfig(data="clips")
    params = _train_params(
        [
            "--dry-run",
            "--out",
            "r",
            "--per-step-motion-norm",
            "--bf16",
            "--image-size",
            "96",
            "--cell",
            "lstm",
            "--motion-mode",
            "same-input",
            "--ngf",
            "8",
            "--ndf",
            "4",
            "--batch",
            "3",
            "--clip-frames",
            "5",
            "--frame-step",
            "1",
            "--device",
            "cpu",
            "--seed",
            "7",
            "--threads",
            "1",
            "--checkpoint-every",
            "9",
            "--sample-every",
            "11",
        ]
    )
    for key in ("run_dir", "max_minutes", "resume", "quiet"):
        params.pop(key)
    assert config_from_options(params) == TrainConfig(
        data=None,
        dry_run=True,
        steps=DRY_RUN_STEPS,
        per_step_motion_norm=True,
        bf16=True,
        image_size=96,
        cell="lstm",
        motion_mode="same-input",
        ngf=8,
        ndf=4,
        batch=3,
        clip_frames=5,
        frame_step=1,
        seed=7,
        threads=1,
        checkpoint_every=9,
        sample_every=11,
    )


def test_state_file_does_not_grow_with_the_run(tmp_path):
    config = TrainConfig(data=None, dry_run=True, steps=2, checkpoint_every=1, **TINY)
    train(config, tmp_path / "run", progress=False)
    size_at_2 = len((tmp_path / "run" / "checkpoint" / "state.json").read_bytes())
    train(config.replace(steps=8), tmp_path / "run", resume=True, progress=False)
    state = _state(tmp_path / "run")
    assert state["step"] == 8 and "losses" not in state
    # The same fields with other numbers in them; six more steps of losses would be ~500 bytes.
    assert abs(len((tmp_path / "run" / "checkpoint" / "state.json").read_bytes()) - size_at_2) < 40
    assert [row["step"] for row in read_losses(tmp_path / "run")] == list(range(1, 9))


def test_resume_drops_log_lines_past_the_checkpoint(tmp_path):
    """A run killed between checkpoints has logged steps its checkpoint does not hold; the
    resumed run redoes those steps and logs each step once."""
    config = TrainConfig(data=None, dry_run=True, steps=4, **TINY)
    train(config, tmp_path / "whole", progress=False)
    train(config.replace(steps=2), tmp_path / "killed", progress=False)
    with (tmp_path / "killed" / LOSS_LOG).open("a") as log:
        log.write(json.dumps({"step": 3, "d_image": 99.0}) + "\n")
    train(config, tmp_path / "killed", resume=True, progress=False)
    assert read_losses(tmp_path / "killed") == read_losses(tmp_path / "whole")


def test_train_puts_the_torch_settings_back(tmp_path):
    before = torch.get_num_threads()
    other = 2 if before == 1 else 1
    seen = []
    config = TrainConfig(data=None, dry_run=True, steps=1, **{**TINY, "threads": other})
    train(
        config,
        tmp_path / "run",
        progress=False,
        on_step=lambda step, losses: seen.append(torch.get_num_threads()),
    )
    assert seen == [other] and torch.get_num_threads() == before


def test_bf16_autocasts_the_image_generator_but_not_the_motion_recurrence():
    """Exported artifacts run the recurrence in float32 at every precision; --bf16 training
    must too. (A bf16 matmul plus a float32 bias still returns float32, so the check is on
    values: each motion call equals the same call made again outside autocast.)"""
    config = TrainConfig(data=None, dry_run=True, bf16=True, **TINY)
    trainer = build_trainer(config, n_categories=2)
    sampler = ClipSampler(synthetic_dataset(n_categories=2, size=64, n_frames=8), 64, config.clip_frames, 1)
    same_as_fp32 = []

    def check(module, args, output):
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            same_as_fp32.append(output.dtype == torch.float32 and torch.equal(module.forward(*args), output))

    motion = trainer.generator.motion
    for module in (motion.gru, motion.linear):
        module.register_forward_hook(check)
    image_dtypes = set()
    trainer.generator.image.main[0].register_forward_hook(lambda m, a, output: image_dtypes.add(output.dtype))
    train_step(trainer, sampler)
    assert image_dtypes == {torch.bfloat16}
    assert same_as_fp32 == [True] * 2 * config.clip_frames


def test_training_on_strip_folder_learns_its_classes(tmp_path):
    for label in ("0", "3"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(2):
            _write_strip(tmp_path / "data" / label / f"{i}.jpg", _clip(6, size=32, seed=i + 10 * int(label)))
    config = TrainConfig(data=str(tmp_path / "data"), steps=1, **TINY)
    train(config, tmp_path / "run", progress=False)
    model = load_model(tmp_path / "run" / "weights")
    assert model.config.n_categories == 2 and model.config.image_size == 64  # 32 px data upsampled
    assert model.provenance["training_data"]["classes"] == ["0", "3"]
    assert model.config.category_names == ("0", "3")


def test_weights_name_the_categories_and_record_no_local_paths(tmp_path):
    """The class folders name the categories; the weights' provenance keeps the data folder's
    and run directory's names, not where they were on the training machine."""
    data = tmp_path / "clips" / "actions"
    for label in ("wave", "bend down"):
        (data / label).mkdir(parents=True)
        _write_strip(data / label / "a.png", _clip(6, size=32, seed=len(label)))
    run = tmp_path / "runs" / "run_b"
    args = ["--data", str(data), f"--out={run}", "--steps", "1", "--ngf", "4", "--ndf", "4"]
    args += ["--batch", "2", "--clip-frames", "4", "--frame-step", "1", "--threads", "1", "--quiet"]
    result = CliRunner().invoke(cli, ["train", *args])
    assert result.exit_code == 0, result.output
    config_text = (run / "weights" / "config.json").read_text()
    assert str(tmp_path) not in config_text
    model = load_model(run / "weights")
    assert model.config.category_names == ("bend down", "wave")
    provenance = model.provenance
    assert provenance["training_data"]["folder"] == "actions"
    assert provenance["train_config"]["data"] == "actions"
    assert provenance["command"] == [
        "vidsynth train --data actions --out=run_b --steps 1 --ngf 4 --ndf 4 --batch 2 --clip-frames 4 "
        "--frame-step 1 --threads 1 --quiet"
    ]
    info = CliRunner().invoke(cli, ["info", str(run / "weights")])
    assert info.exit_code == 0 and str(tmp_path) not in info.output
    assert "0 = bend down, 1 = wave" in info.output


def test_class_folders_that_cannot_name_categories_leave_them_numbered(tmp_path, caplog):
    data = tmp_path / "data"
    for label in ("a", "tab\there"):
        (data / label).mkdir(parents=True)
        _write_strip(data / label / "a.png", _clip(6, size=32))
    config = TrainConfig(data=str(data), steps=1, **TINY)
    with caplog.at_level("WARNING"):
        train(config, tmp_path / "run", progress=False)
    model = load_model(tmp_path / "run" / "weights")
    assert model.config.n_categories == 2 and model.config.category_names == ()
    assert "cannot name categories" in caplog.text


def test_export_run_copies_weights_with_provenance(tmp_path):
    config = TrainConfig(data=None, dry_run=True, steps=1, **TINY)
    train(config, tmp_path / "run", progress=False)
    export_run(tmp_path / "run", tmp_path / "weights")
    model = load_model(tmp_path / "weights")
    assert model.provenance["source"] == "vidsynth train" and model.provenance["steps"] == 1
    original = load_model(tmp_path / "run" / "weights")
    for (k, a), (_, b) in zip(model.state_dict().items(), original.state_dict().items()):
        assert torch.equal(a, b), k


def test_ship_default_evaluate_only_writes_the_runs_quality_figures(tmp_path):
    """The figures a run is shipped with can be measured where its checkpoint is."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    data = tmp_path / "data"
    for label in ("0", "1"):
        (data / label).mkdir(parents=True)
        for i in range(2):
            _write_strip(data / label / f"{i}.png", _clip(6, seed=i))
    config = TrainConfig(data=str(data), steps=2, **TINY)
    train(config, tmp_path / "run", progress=False)
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root)}  # the package, installed or not
    done = subprocess.run(
        [
            sys.executable,
            str(root / "scripts" / "ship_default.py"),
            "--evaluate-only",
            str(tmp_path / "run"),
            str(data),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert done.returncode == 0, done.stderr
    figures = json.loads((tmp_path / "run" / "quality.json").read_text())
    assert figures["steps"] == 2 and figures["frame_change_real"] > 0
    assert 0 <= figures["critic_category_accuracy_generated"] <= 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_dry_run_on_cuda(tmp_path):
    config = TrainConfig(data=None, dry_run=True, steps=2, device="cuda", **TINY)
    benchmark = torch.backends.cudnn.benchmark
    cuda_rng = torch.cuda.get_rng_state()
    train(config, tmp_path / "run", progress=False)
    assert all(math.isfinite(row[name]) for row in read_losses(tmp_path / "run") for name in row)
    assert torch.backends.cudnn.benchmark == benchmark  # autotuning was on for the run only
    assert torch.equal(torch.cuda.get_rng_state(), cuda_rng)  # the run drew from its own generators


# -- the shipped default weights ---------------------------------------------------------------


def test_default_weights_load_and_make_each_category():
    model = load_model()
    config = model.config
    assert config.n_categories > 0 and model.provenance["source"] == "vidsynth train"
    n = config.n_categories
    video = model(torch.randn(n, config.d_content), torch.randn(n, config.d_motion), 8, torch.arange(n))
    assert video.shape == (n, 8, 3, config.image_size, config.image_size)
    assert torch.isfinite(video).all() and video.abs().max() <= 1
    assert video[:, 1:].sub(video[:, :-1]).abs().mean() > 0  # frames change over time


def test_default_weights_export_like_any_model(tmp_path):
    export = pytest.importorskip("vidsynth.export")
    manifest = export.export_artifacts(load_model(), tmp_path / "export", formats=("torchscript",))
    assert manifest["config"] == load_model().config.to_dict()
    assert (tmp_path / "export" / "generator.pt").is_file()


# -- the command line as users run it ------------------------------------------------------------

TINY_ARGS = ["--ngf", "4", "--ndf", "4", "--batch", "2", "--clip-frames", "4", "--frame-step", "1"]


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A two-step dry run made by `vidsynth train`, with settings other than the CLI's defaults."""
    out = tmp_path_factory.mktemp("cli_run") / "run"
    result = run_vidsynth(
        "train",
        "--dry-run",
        "--out",
        str(out),
        *TINY_ARGS,
        "--threads",
        "1",
        "--steps",
        "2",
        "--sample-every",
        "1000",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def run_copy(cli_run, tmp_path):
    return Path(shutil.copytree(cli_run, tmp_path / "run"))


def test_resume_keeps_the_stored_settings_and_needs_no_data(run_copy):
    result = run_vidsynth("train", "--resume", "--out", str(run_copy), "--quiet")
    assert result.returncode == 0, result.stderr
    settings = _state(run_copy)["train_config"]
    assert settings["steps"] == 2 and settings["threads"] == 1 and settings["batch"] == 2
    assert settings["dry_run"] is True and settings["sample_every"] == 1000
    assert "step 2 (steps); 0 steps" in result.stdout


def test_resume_changes_only_the_typed_settings(run_copy):
    result = run_vidsynth("train", "--resume", "--out", str(run_copy), "--steps", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    settings = _state(run_copy)["train_config"]
    assert (settings["steps"], settings["threads"], settings["device"]) == (3, 1, "cpu")
    assert [row["step"] for row in read_losses(run_copy)] == [1, 2, 3]


def test_resume_refuses_a_setting_the_checkpoint_fixes(run_copy):
    result = run_vidsynth("train", "--resume", "--out", str(run_copy), "--ngf", "8")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "Error: a resumed run keeps its ngf (stored ngf=4); drop those options, "
        "or start a new run with another --out"
    ]
    assert _state(run_copy)["step"] == 2


def test_resume_logs_which_settings_changed(run_copy, caplog):
    from vidsynth.train.loop import resumed_config

    with caplog.at_level(logging.INFO, logger="vidsynth.train.loop"):
        train(resumed_config(run_copy, {"steps": 3}), run_copy, resume=True, progress=False)
    assert "resuming" in caplog.text and "changed: steps 2 -> 3" in caplog.text


def test_train_without_data_names_the_options(tmp_path):
    result = run_vidsynth("train", "--out", str(tmp_path / "run"))
    assert result.returncode != 0
    assert "--data FOLDER is needed (or --dry-run" in result.stderr and "unless dry_run" not in result.stderr


def _one_error_line(result) -> str:
    """The run failed with one `Error:` line, the last one (what it said before may precede it)."""
    lines = result.stderr.strip().splitlines()
    errors = [line for line in lines if line.startswith("Error: ")]
    assert result.returncode == 1 and errors == lines[-1:] and "Traceback" not in result.stderr, result.stderr
    return lines[-1]


def test_resume_after_a_crash_that_cut_the_last_loss_line(run_copy):
    with open(run_copy / LOSS_LOG, "a") as log:
        log.write('{"step": 3, "d_ima')  # the crash came mid-write
    result = run_vidsynth("train", "--resume", "--out", str(run_copy), "--steps", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    assert [row["step"] for row in read_losses(run_copy)] == [1, 2, 3]


def test_a_bad_rng_state_with_matching_sums_is_one_error(run_copy):
    from safetensors.torch import save_file

    from vidsynth.checksums import write_sums

    folder = run_copy / "checkpoint"
    save_file({"run.cpu": torch.zeros(3, dtype=torch.uint8)}, str(folder / "rng.safetensors"))
    write_sums(folder, ("networks.safetensors", "optimizers.safetensors", "rng.safetensors", "state.json"))
    line = _one_error_line(run_vidsynth("train", "--resume", "--out", str(run_copy), "--steps", "3"))
    assert "rng.safetensors holds no valid state for the run random generator" in line


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--seed", str(2**70)], "seed must be between 0 and 2**63-1"),
        (["--batch", "1000000"], "needs at least"),
        (["--ngf", "1000000"], "needs at least"),
        (["--threads", "100000"], "--threads 100000 is more than the"),
    ],
)
def test_settings_too_large_for_the_machine_are_one_error(tmp_path, args, fragment):
    out = tmp_path / "run"
    line = _one_error_line(run_vidsynth("train", "--dry-run", "--out", str(out), *TINY_ARGS, *args))
    assert fragment in line
    assert not out.exists()  # refused before anything was written


def _write_la_strip(path: Path, n_frames: int = 6, size: int = 16) -> None:
    from PIL import Image

    gray = _clip(n_frames, size)[..., 0].transpose(1, 0, 2).reshape(size, n_frames * size)
    Image.fromarray(np.stack([gray, np.full_like(gray, 255)], axis=-1), "LA").save(path, format="PNG")


def test_gray_and_alpha_strips_are_read_as_gray(tmp_path):
    _write_la_strip(tmp_path / "la.png")
    frames = read_clip(tmp_path / "la.png")
    assert frames.shape == (6, 16, 16, 3) and (frames[..., 0] == frames[..., 2]).all()


def test_training_on_gray_and_alpha_strips(tmp_path):
    (tmp_path / "data").mkdir()
    for name in ("a", "b"):
        _write_la_strip(tmp_path / "data" / f"{name}.png")
    result = run_vidsynth(
        "train",
        "--data",
        str(tmp_path / "data"),
        "--out",
        str(tmp_path / "run"),
        *TINY_ARGS,
        "--steps",
        "1",
        "--quiet",
    )
    assert result.returncode == 0, result.stderr


def test_a_16_bit_strip_is_scaled_not_clipped(tmp_path):
    from PIL import Image

    gray = np.full((16, 16 * 4), 32896, np.uint16)  # 50% gray at 16 bits: 128 at 8 bits
    Image.fromarray(gray).save(tmp_path / "deep.png")
    assert iio.imread(tmp_path / "deep.png").dtype == np.uint16
    frames = read_clip(tmp_path / "deep.png")
    assert frames.shape == (4, 16, 16, 3) and (frames == 128).all()


def test_a_full_disk_under_the_loss_log_is_one_error(tmp_path, small_tmpfs):
    disk = small_tmpfs("disk", size="16k")
    filler = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)  # full before the first step's losses
    try:
        while os.write(filler, b"x" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(filler)
    result = run_vidsynth(
        "train",
        "--dry-run",
        "--out",
        str(disk / "run"),
        *TINY_ARGS,
        "--steps",
        "100000",
        "--checkpoint-every",
        "100000",
        "--sample-every",
        "100000",
        "--quiet",
    )
    line = _one_error_line(result)
    assert "losses.jsonl (the disk is full)" in line


def _start_long_run(out: Path) -> subprocess.Popen:
    from entry_point import entry_point

    return subprocess.Popen(
        [
            *entry_point(),
            "train",
            "--dry-run",
            "--out",
            str(out),
            *TINY_ARGS,
            "--steps",
            "100000",
            "--checkpoint-every",
            "100000",
            "--sample-every",
            "100000",
            "--quiet",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_steps(out: Path, child: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and child.poll() is None:
        if (out / LOSS_LOG).is_file() and (out / LOSS_LOG).stat().st_size > 0:
            return
        time.sleep(0.2)
    child.kill()
    raise AssertionError(f"the run never logged a step: {child.communicate()[1]}")


def test_sigterm_checkpoints_and_exits_143(tmp_path):
    out = tmp_path / "run"
    child = _start_long_run(out)
    _wait_for_steps(out, child)
    child.send_signal(signal.SIGTERM)
    _, err = child.communicate(timeout=120)
    assert child.returncode == 143, err
    assert _state(out)["step"] >= 1 and (out / "weights" / "model.safetensors").is_file()


def test_a_second_run_into_the_same_out_is_refused_while_the_first_runs(tmp_path):
    out = tmp_path / "run"
    first = _start_long_run(out)
    try:
        _wait_for_steps(out, first)
        second = run_vidsynth("train", "--dry-run", "--out", str(out), *TINY_ARGS, "--steps", "2", "--quiet")
        assert "another vidsynth run is writing into" in _one_error_line(second)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 143 and _state(out)["step"] >= 1


def test_bf16_training_on_a_cpu_that_emulates_it_warns_with_the_cost(tmp_path):
    result = run_vidsynth(
        "train",
        "--dry-run",
        "--out",
        str(tmp_path / "run"),
        *TINY_ARGS,
        "--steps",
        "1",
        "--bf16",
        "--quiet",
        site=NO_NATIVE_BF16,
        scratch=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "--bf16 on a CPU without native bf16" in result.stderr and "x as long as fp32" in result.stderr
