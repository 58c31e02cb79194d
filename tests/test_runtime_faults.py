"""`vidsynth generate` under faults: ffmpeg's exit status, fps limits,
an all-or-nothing commit under a lock, the memory plan counting the noise codes, and the
manifest cross-checked against the graphs and the outputs. Real faults: a full tmpfs, a
directory in the way, a second process holding the lock, graphs from another export."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from PIL import Image

from vidsynth.artifacts.manifest import file_record
from vidsynth.cli import cli
from vidsynth.errors import InputError, StorageError
from vidsynth.export import export_artifacts
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.runtime.ffmpeg import FfmpegEncoder
from vidsynth.runtime.plan import plan_generation
from vidsynth.weights.format import save_weights

CONFIG = ModelConfig(ngf=8, image_size=64)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening_runtime")
    model = build_model(CONFIG, seed=0).eval()
    save_weights(model, root / "w")
    export_artifacts(model, root / "art64")
    export_artifacts(
        build_model(ModelConfig(ngf=8, image_size=96), seed=0).eval(), root / "art96", formats=("onnx",)
    )
    export_artifacts(
        build_model(ModelConfig(ngf=8, image_size=64, d_motion=12), seed=0).eval(),
        root / "art_dm12",
        formats=("onnx",),
    )
    return root


def generate(*args: str):
    return CliRunner().invoke(cli, ["generate", "--device", "cpu", "--num-videos", "1", *args])


def one_error(result, *fragments: str) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# -- 1. data loss: mp4 on a full disk, the commit -------------------------------------------------


def test_mp4_on_a_full_disk_is_an_error_and_keeps_the_earlier_videos(made, small_tmpfs):
    disk = small_tmpfs("disk", size="200k")
    assert generate("--weights", str(made / "w"), "--frames", "2", "--out", str(disk)).exit_code == 0
    good = (disk / "video_000.mp4").read_bytes()
    fill_leaving(disk, 4096)
    result = generate("--weights", str(made / "w"), "--frames", "400", "--seed", "1", "--out", str(disk))
    one_error(result, "no space left on the device")
    assert (disk / "video_000.mp4").read_bytes() == good
    assert sorted(p.name for p in disk.iterdir()) == ["filler", "video_000.mp4"]


def fill_leaving(disk: Path, free: int) -> None:
    """Fills the filesystem of `disk` until about `free` bytes are left."""
    stat = os.statvfs(disk)
    (disk / "filler").write_bytes(b"\0" * max(0, stat.f_bavail * stat.f_frsize - free))


def test_png_on_a_full_disk_is_one_clear_error(made, small_tmpfs):
    disk = small_tmpfs("disk", size="200k")
    fill_leaving(disk, 4096)
    one_error(
        generate("--weights", str(made / "w"), "--frames", "8", "--format", "png", "--out", str(disk)),
        "no space left on the device",
    )
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_an_encoder_ffmpeg_rejects_is_an_error_not_a_corrupt_file(tmp_path):
    encoder = FfmpegEncoder(tmp_path / "odd.mp4", 63, 8.0)  # yuv420p H.264 needs even sizes
    with pytest.raises(StorageError, match="ffmpeg could not write odd.mp4"):
        for _ in range(3):
            encoder.send(bytes(63 * 63 * 3))
        encoder.close()


def test_a_directory_in_the_way_commits_nothing(made, tmp_path):
    out = tmp_path / "out"
    assert generate("--weights", str(made / "w"), "--frames", "2", "--out", str(out)).exit_code == 0
    before = (out / "video_000.mp4").read_bytes()
    (out / "video_001.mp4").mkdir()
    one_error(
        generate(
            "--weights",
            str(made / "w"),
            "--frames",
            "2",
            "--num-videos",
            "2",
            "--seed",
            "5",
            "--out",
            str(out),
        ),
        "directories named like the output",
        "video_001.mp4",
    )
    assert (out / "video_000.mp4").read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["video_000.mp4", "video_001.mp4"]


HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(60)
"""


def test_a_second_run_into_the_same_directory_is_refused_while_the_first_writes(made, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        one_error(
            generate("--weights", str(made / "w"), "--frames", "2", "--out", str(out)),
            "another vidsynth run is writing into",
        )
        assert list(out.iterdir()) == []
    finally:
        holder.kill()
        holder.wait()
    assert generate("--weights", str(made / "w"), "--frames", "2", "--out", str(out)).exit_code == 0


def test_staging_left_by_a_killed_run_is_swept(made, tmp_path):
    out = tmp_path / "out"
    (out / ".vidsynth-tmp-4242-abc").mkdir(parents=True)
    (out / ".vidsynth-tmp-4242-abc" / "video_000.mp4").write_bytes(b"partial")
    assert generate("--weights", str(made / "w"), "--frames", "2", "--out", str(out)).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["video_000.mp4"]


# -- 9. fps ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fps,fmt,fragment",
    [
        ("inf", "mp4", "fps must be a finite number"),
        ("nan", "gif", "fps must be a finite number"),
        ("1e300", "mp4", "fps must be between 0.01 and 1000"),
        ("1e-300", "gif", "fps must be between 0.01 and 1000"),
        ("200", "gif", "at most 100 for gif"),
    ],
)
def test_fps_a_file_cannot_carry_is_one_clear_error(made, tmp_path, fps, fmt, fragment):
    one_error(
        generate("--weights", str(made / "w"), "--fps", fps, "--format", fmt, "--out", str(tmp_path / "o")),
        fragment,
    )
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("fps,delay_ms", [(100, 10), (60, 20), (8, 120)])
def test_gif_frame_delays_round_to_whole_centiseconds_never_zero(made, tmp_path, fps, delay_ms):
    result = generate(
        "--weights",
        str(made / "w"),
        "--frames",
        "3",
        "--format",
        "gif",
        "--fps",
        str(fps),
        "--out",
        str(tmp_path),
    )
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "video_000.gif") as gif:
        assert gif.info["duration"] == delay_ms


# -- 6. memory ---------------------------------------------------------------------------------------


def test_the_memory_plan_counts_the_noise_codes_and_names_the_right_format():
    with pytest.raises(InputError, match="for the noise codes of 1000000000 video") as caught:
        plan_generation(CONFIG, 10**9, 16, "mp4", 64, host_available=16 * 2**30)
    assert "as mp4" in str(caught.value) and "--format mp4" not in str(caught.value)
    with pytest.raises(InputError, match="each gif until it is complete.*or --format mp4, which streams"):
        plan_generation(CONFIG, 1, 10_000_000, "gif", 64, host_available=16 * 2**30)


def test_a_billion_videos_are_refused_before_the_noise_is_drawn(made, tmp_path):
    one_error(
        generate("--weights", str(made / "w"), "--num-videos", str(10**9), "--out", str(tmp_path / "o")),
        "noise codes",
    )
    assert not (tmp_path / "o").exists()


# -- 5. cross-checks ----------------------------------------------------------------------------------


def copy_export(made, tmp_path) -> Path:
    return Path(shutil.copytree(made / "art64", tmp_path / "art"))


def set_manifest(art: Path, change) -> None:
    manifest = json.loads((art / "manifest.json").read_text())
    change(manifest)
    (art / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize("backend", ["onnxruntime", "torchscript"])
def test_an_edited_image_size_in_the_manifest_is_refused(made, tmp_path, backend):
    art = copy_export(made, tmp_path)
    set_manifest(art, lambda m: m["config"].update(image_size=96))
    one_error(
        generate("--artifacts", str(art), "--backend", backend, "--out", str(tmp_path / "o")),
        "exported for another model than manifest.json describes",
        "image_size: manifest 96, graph 64",
    )
    assert not (tmp_path / "o").exists()


def plant_graph(made, art: Path, source: str, claim_config: bool) -> None:
    """Copies another export's generator.onnx into `art` with its hash recomputed; with
    `claim_config` its metadata is also edited to claim art's config."""
    graph = onnx.load(str(made / source / "generator.onnx"))
    if claim_config:
        for prop in graph.metadata_props:
            if prop.key == "config":
                prop.value = json.dumps(CONFIG.to_dict(), sort_keys=True)
    onnx.save(graph, str(art / "generator.onnx"))
    set_manifest(art, lambda m: m["files"].update({"generator.onnx": file_record(art / "generator.onnx")}))


def test_another_exports_graph_is_refused_by_its_metadata(made, tmp_path):
    art = copy_export(made, tmp_path)
    plant_graph(made, art, "art96", claim_config=False)
    one_error(
        generate("--artifacts", str(art), "--backend", "onnxruntime", "--out", str(tmp_path / "o")),
        "image_size: manifest 64, graph 96",
    )


def test_a_graph_lying_about_its_config_is_caught_by_the_output_shape(made, tmp_path):
    art = copy_export(made, tmp_path)
    plant_graph(made, art, "art96", claim_config=True)
    one_error(
        generate(
            "--artifacts", str(art), "--backend", "onnxruntime", "--frames", "3", "--out", str(tmp_path / "o")
        ),
        "returned videos of shape (1, 3, 3, 96, 96), expected (1, 3, 3, 64, 64)",
    )
    assert not (tmp_path / "o").exists()


def test_onnxruntime_invalid_argument_is_one_clear_error(made, tmp_path):
    art = copy_export(made, tmp_path)
    plant_graph(made, art, "art_dm12", claim_config=True)  # expects z_motion of 12, is fed 10
    one_error(
        generate(
            "--artifacts", str(art), "--backend", "onnxruntime", "--frames", "3", "--out", str(tmp_path / "o")
        ),
        "onnxruntime refused to run the graph",
        "invalid dimensions for input: z_motion",
    )


# -- 8. SIGTERM during generate ------------------------------------------------------------------------


def test_sigterm_during_generate_removes_the_staging_and_keeps_earlier_videos(made, tmp_path):
    import signal
    import time

    out = tmp_path / "out"
    assert generate("--weights", str(made / "w"), "--frames", "2", "--out", str(out)).exit_code == 0
    before = (out / "video_000.mp4").read_bytes()
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vidsynth",
            "generate",
            "--weights",
            str(made / "w"),
            "--device",
            "cpu",
            "--num-videos",
            "1",
            "--frames",
            "100000",
            "--chunk-frames",
            "16",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not any((p / "video_000.mp4").exists() for p in out.glob(".vidsynth-tmp-*")):
            assert time.monotonic() < deadline and child.poll() is None, "generate never started writing"
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == 143, err.decode()[-400:]
    assert sorted(p.name for p in out.iterdir()) == ["video_000.mp4"]
    assert (out / "video_000.mp4").read_bytes() == before
