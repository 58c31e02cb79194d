"""README.md and docs/*.md as users run them.

Every command of every ```bash block (and every ```python block) is run in document order
through the installed `vidsynth` entry point (PYTHONPATH: this checkout), with the defaults a
user gets, in one fresh working directory shared by all of them, and what the docs say it
prints or writes is checked. PLAN says what happens to each command: run and check, check
the line only (`pip install`), or skip it with the reason named. `test_every_documented_command_is_planned`
keeps PLAN and the docs in step, so a new command in the docs needs a plan here.

`vidsynth serve` (with the curl lines that talk to it) and `vidsynth batch` run inside
`unshare -n` (tests/readme_ray_cases.py through serve_support.run_scenarios). Run the module
whole: later commands use what earlier ones wrote, as in the docs.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from serve_support import REPO, run_scenarios

VIDSYNTH = shutil.which("vidsynth")
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TORCH_PIN = "torch==2.13.0"
DEFAULT_CATEGORIES = ["one-hand wave", "two-hand wave", "jumping jack", "bend"]
SERVER_URL = "http://127.0.0.1:8000"

# -- the commands of the docs ------------------------------------------------------------------


@dataclass(frozen=True)
class DocCommand:
    doc: str  # "README.md", "serving.md"
    line: int
    command: str  # one command, normalised with shlex; a python block: "python: <its first line>"
    code: str = ""  # a python block's code


FENCE = re.compile(r"^```(\w*)\s*$")


def doc_commands() -> list[DocCommand]:
    """Each command of the docs' bash blocks (`a && b` is two) and each python block, in order."""
    found = []
    for path in DOCS:
        lang, body = None, []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if lang is None:
                match = FENCE.match(line)
                if match:
                    lang, body = match.group(1), []
                continue
            if not line.startswith("```"):
                body.append((number, line))
                continue
            if lang == "bash":
                for at, text in body:
                    for words in _split_and(shlex.split(text, comments=True)):
                        found.append(DocCommand(path.name, at, shlex.join(words)))
            elif lang == "python":
                code = "\n".join(text for _, text in body)
                found.append(DocCommand(path.name, body[0][0], f"python: {body[0][1]}", code))
            lang = None
    return found


def _split_and(words: list[str]) -> list[list[str]]:
    parts: list[list[str]] = [[]]
    for word in words:
        if word == "&&":
            parts.append([])
        else:
            parts[-1].append(word)
    return [part for part in parts if part]


# -- running them ------------------------------------------------------------------------------


class Session:
    """The shared working directory and how a user's shell would run a command there."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.results: dict[str, dict] = {}  # what the Ray jobs returned, by command

    def env(self, *before: Path) -> dict[str, str]:
        path = [*map(str, before), str(REPO), os.environ.get("PYTHONPATH", "")]
        return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}

    def argv(self, command: str) -> list[str]:
        words = shlex.split(command)
        return [VIDSYNTH, *words[1:]] if words[0] == "vidsynth" else words

    def run(self, command: str, timeout: float = 900, env: dict | None = None) -> subprocess.CompletedProcess:
        result = subprocess.run(
            self.argv(command),
            cwd=self.dir,
            env=env or self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert result.returncode == 0, (
            f"{command} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
        return result

    def ray_job(self, server: str | None, commands: list[str], ready_timeout: float = 300) -> dict:
        """Runs the job in a private network namespace (tests/readme_ray_cases.py)."""
        result_file = self.dir / ".ray-job.json"
        result_file.unlink(missing_ok=True)
        job = {
            "dir": str(self.dir),
            "server": server,
            "ready_timeout": ready_timeout,
            "commands": commands,
            "result": str(result_file),
        }
        run_scenarios(
            "readme_ray_cases.py",
            timeout_s=ready_timeout + 900,
            extra_env={"VIDSYNTH_README_JOB": json.dumps(job)},
        )
        return json.loads(result_file.read_text())


@pytest.fixture(scope="module")
def session(tmp_path_factory) -> Session:
    if VIDSYNTH is None:
        pytest.skip("the vidsynth entry point is not installed: pip install torch==2.13.0 -e '.[cpu]'")
    return Session(tmp_path_factory.mktemp("readme"))


# -- what the docs say each writes ---------------------------------------------------------------


def mp4_facts(path: Path) -> tuple[int, tuple[int, int]]:
    """(frames, (width, height)) of an mp4, read back with ffmpeg."""
    import imageio_ffmpeg

    assert path.read_bytes()[4:8] == b"ftyp", f"{path} is not an mp4"
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    reader.close()
    frames, _ = imageio_ffmpeg.count_frames_and_secs(str(path))
    return frames, tuple(meta["size"])


def listed_paths(result: subprocess.CompletedProcess) -> list[str]:
    return result.stdout.split()


def check_videos(session: Session, result, out: str, count: int, frames: int, size: int) -> None:
    paths = listed_paths(result)
    assert paths == [f"{out}/video_{i:03d}.mp4" for i in range(count)], result.stdout
    for path in paths:
        assert mp4_facts(session.dir / path) == (frames, (size, size)), path


def check_export(session: Session, out: str, files: set[str], dtype: str) -> dict:
    from vidsynth.artifacts.manifest import read_manifest

    manifest = read_manifest(session.dir / out)  # every listed file matches its sha256
    assert set(manifest["files"]) == files and manifest["dtype"] == dtype
    assert {p.name for p in (session.dir / out).iterdir()} == files | {"manifest.json"}
    return manifest


TORCH_BLOCKER = """
import sys

class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "onnx", "safetensors"):
            raise ModuleNotFoundError(f"No module named {name!r} (a torch-free install)")
        return None

sys.meta_path.insert(0, _NoTorch())
"""


def write_legacy_checkpoints(directory: Path) -> None:
    """The two files the import example names, saved as the public scripts saved them
    (torch.nn modules' state dicts; ngf=8 for speed, the layout is read from the keys)."""
    import torch
    from legacy_reference import AssignmentLSTM, Generator_I, randomize_batchnorm

    torch.manual_seed(0)
    generator, motion = Generator_I(ngf=8, nz=60, first_kernel=6), AssignmentLSTM(10, 100)
    for seed, model in enumerate((generator, motion)):
        randomize_batchnorm(model, seed=seed)
        torch.save(model.eval().state_dict(), directory / ("Generator_I-100.model", "LSTM-100.model")[seed])


def write_action_clips(root: Path) -> None:
    """`path/to/actions`: two class folders of MoCoGAN-style strips (frames side by side)."""
    import imageio.v3 as iio

    rng = np.random.default_rng(0)
    for label in ("bend", "wave"):
        (root / label).mkdir(parents=True)
        for i in range(3):
            clip = rng.integers(0, 256, size=(32, 64, 64, 3), dtype=np.uint8)
            iio.imwrite(root / label / f"{i}.png", clip.transpose(1, 0, 2, 3).reshape(64, 32 * 64, 3))


def train_until_steps(session: Session, command: str, steps: int) -> subprocess.CompletedProcess:
    """Runs a `vidsynth train` command until losses.jsonl reaches `steps` lines, then stops it
    as a user would (SIGTERM: it checkpoints and leaves)."""
    log = session.dir / "runs/actions/losses.jsonl"
    process = subprocess.Popen(
        session.argv(command),
        cwd=session.dir,
        env=session.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 1200
        while time.monotonic() < deadline and process.poll() is None:
            if log.is_file() and len(log.read_text().splitlines()) >= steps:
                break
            time.sleep(1)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return subprocess.CompletedProcess(process.args, process.returncode, out.decode(), err.decode())


# -- the plan: what each command of the docs does here --------------------------------------------


@dataclass(frozen=True)
class Plan:
    doc: str
    command: str
    action: Callable[[Session, DocCommand], None] | None = None
    skip: str = ""  # why it does not run here (checked by the action when it has one)
    slow: str = ""  # runs only with --run-slow, for this reason


def pip_problem(command: str) -> str | None:
    """A `pip install` of this project with its dependencies must pin the torch that the
    README tests (torch==2.13.0), or pip may pull another build (gigabytes of CUDA torch)."""
    words = shlex.split(command)
    if words[:2] != ["pip", "install"] or "--no-deps" in words:
        return None
    project = [w for w in words[2:] if w == "." or w.startswith((".[", "vidsynth"))]
    if project and TORCH_PIN not in words:
        return f"`{command}` installs {project[0]} with its dependencies without pinning {TORCH_PIN}"
    return None


def pip_line(session: Session, doc: DocCommand) -> None:
    assert pip_problem(doc.command) is None, pip_problem(doc.command)


def main_job(session: Session, doc: DocCommand) -> None:
    result = session.run(doc.command)
    check_videos(session, result, "videos", count=4, frames=16, size=64)


def main_job_again(session: Session, doc: DocCommand) -> None:
    before = [(session.dir / f"videos/video_{i:03d}.mp4").read_bytes() for i in range(4)]
    result = session.run(doc.command)
    check_videos(session, result, "videos", count=4, frames=16, size=64)
    after = [(session.dir / f"videos/video_{i:03d}.mp4").read_bytes() for i in range(4)]
    assert after == before  # same seed and options, same files


def gif_clips(session: Session, doc: DocCommand) -> None:
    import imageio.v3 as iio

    result = session.run(doc.command)
    assert listed_paths(result) == [f"clips/video_{i:03d}.gif" for i in range(8)]
    for path in listed_paths(result):
        assert iio.imread(session.dir / path).shape[:3] == (32, 96, 96)  # demo: 96x96


def content_sheet(session: Session, doc: DocCommand) -> None:
    import imageio.v3 as iio

    result = session.run(doc.command)
    assert listed_paths(result) == ["videos/sheet.png"]
    sheet = iio.imread(session.dir / "videos/sheet.png")
    assert sheet.shape[:2] == (4 * 96, 16 * 96)  # a row per video, a column per frame
    rows = sheet.reshape(4, 96, 16 * 96, -1).astype(int)
    assert all(np.abs(rows[0] - rows[k]).max() > 0 for k in (1, 2, 3))  # each row its own motion


def export_demo(session: Session, doc: DocCommand) -> None:
    result = session.run(doc.command)
    assert "exported generator.pt, generator.onnx, generator_chunk.onnx (fp32) -> art" in result.stdout
    check_export(session, "art", {"generator.pt", "generator.onnx", "generator_chunk.onnx"}, "fp32")


def cuda_only(session: Session, doc: DocCommand) -> None:
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU (--device cuda), which this machine lacks")
    result = session.run(doc.command)
    assert len(listed_paths(result)) == 4


def long_video(session: Session, doc: DocCommand) -> None:
    result = session.run(doc.command, timeout=3600)
    assert listed_paths(result) == ["long/video_000.mp4"]
    assert mp4_facts(session.dir / "long/video_000.mp4")[0] == 10_000


def torch_free_generate(session: Session, doc: DocCommand) -> None:
    blocker = session.dir / ".torch-free"
    blocker.mkdir(exist_ok=True)
    (blocker / "sitecustomize.py").write_text(TORCH_BLOCKER)
    result = session.run(doc.command, env=session.env(blocker))
    check_videos(session, result, "torch-free", count=4, frames=64, size=96)


def export_default(session: Session, doc: DocCommand) -> None:
    session.run(doc.command)
    manifest = check_export(
        session, "art-default", {"generator.pt", "generator.onnx", "generator_chunk.onnx"}, "fp32"
    )
    assert manifest["config"]["category_names"] == DEFAULT_CATEGORIES


def export_fp16(session: Session, doc: DocCommand) -> None:
    result = session.run(doc.command)
    assert "PSNR vs fp32" in result.stdout
    check_export(session, "art16", {"generator.pt", "generator.onnx", "generator_chunk.onnx"}, "fp16")


def export_bf16(session: Session, doc: DocCommand) -> None:
    session.run(doc.command)
    check_export(session, "artbf", {"generator.pt"}, "bf16")


SERVED: list[str] = []  # the curl lines of README.md and docs/serving.md, sent to one server


def serve_and_curl(session: Session, doc: DocCommand) -> None:
    """`vidsynth serve` with its defaults, then every curl line of README.md and docs/ against
    it (one server for both docs: the same command), then SIGTERM, as the docs say."""
    job = session.ray_job(doc.command, SERVED, ready_timeout=600)
    for curl in job.get("commands", []):
        session.results[curl["command"]] = curl
    session.results[doc.command] = job
    check_server(job)
    # docs/serving.md: one replica per CPU ("--replicas 2 --cpus-per-replica 1" on 2 CPUs) is
    # the default, and the server says how many it starts.
    from vidsynth.runtime.hardware import usable_cpus

    assert f"starting {usable_cpus()} replica(s) x 1 CPU" in job["server_output"], job["server_output"]


def check_server(job: dict) -> None:
    assert job.get("ready"), f"vidsynth serve never said it was ready:\n{job.get('server_output')}"
    assert job["ready_line"].split()[2] == SERVER_URL
    assert job["exit_after_sigterm"] == 0, job["server_output"]
    assert not job["left_running"], f"still running after vidsynth serve left: {job['left_running']}"


def served_as_before(session: Session, doc: DocCommand) -> None:
    assert doc.command in session.results, "README.md's serve block did not run"
    check_server(session.results[doc.command])


def served(check: Callable[[Session, dict], None]) -> Callable[[Session, DocCommand], None]:
    def action(session: Session, doc: DocCommand) -> None:
        assert doc.command in session.results, "the server of README.md's serve block did not answer it"
        response = session.results[doc.command]
        assert response["status"] == 200, response
        check(session, response)

    return action


def served_video(session: Session, response: dict) -> None:
    """The response is the file `vidsynth generate` writes for the same options and seed."""
    assert response["headers"]["content-type"] == "video/mp4"
    assert mp4_facts(session.dir / "video.mp4") == (32, (64, 64))
    result = session.run(
        "vidsynth generate --seed 7 --frames 32 --category 2 --num-videos 1 --out served-check"
    )
    assert (session.dir / "served-check/video_000.mp4").read_bytes() == (
        session.dir / "video.mp4"
    ).read_bytes()
    assert listed_paths(result) == ["served-check/video_000.mp4"]


def streamed_to_player(session: Session, response: dict) -> None:
    """The endless live stream plays as it arrives: what a player got in its first seconds is
    the start of the fragmented MP4 `vidsynth generate --out -` writes for the same options."""
    assert response["headers"]["content-type"].startswith("video/mp4")  # with the codec, for browsers
    assert response["headers"]["x-vidsynth-frames"] == "endless"
    played = (session.dir / response["file"]).read_bytes()
    assert played[4:8] == b"ftyp" and len(played) > 10_000, len(played)
    piped = subprocess.run(
        [VIDSYNTH, "generate", "--seed", "7", "--category", "2", "--num-videos", "1", "--frames", "2000"]
        + ["--out", "-"],
        cwd=session.dir,
        env=session.env(),
        capture_output=True,
        timeout=900,
        check=True,
    ).stdout
    # A finite video's last fragments close it; all before them is the same stream.
    assert len(played) < len(piped) // 2 and piped.startswith(played)


def served_sheet(session: Session, response: dict) -> None:
    import imageio.v3 as iio

    assert response["headers"]["content-type"] == "image/png"
    assert iio.imread(session.dir / "sheet.png").shape[:2] == (64, 32 * 64)


def served_zip(session: Session, response: dict) -> None:
    assert response["headers"]["content-type"] == "application/zip"
    with zipfile.ZipFile(session.dir / "four.zip") as archive:
        assert archive.namelist() == [f"video_{i:03d}.mp4" for i in range(4)]


def served_model(session: Session, response: dict) -> None:
    card = json.loads(response["body"])
    assert card["config"]["category_names"] == DEFAULT_CATEGORIES
    assert {"backend", "device", "provenance"} <= set(card)


def served_health(session: Session, response: dict) -> None:
    assert json.loads(response["body"]) == {"status": "ready"}


def served_streams(session: Session, response: dict) -> None:
    counts = json.loads(response["body"])
    assert counts["active"] == 0 and counts["limits"]["max_streams"] == 8, counts


def batch_dataset(session: Session, doc: DocCommand) -> None:
    """32 videos and their index; run again, it resumes: nothing is made twice."""
    job = session.ray_job(None, [doc.command, doc.command])
    first, again = job["commands"]
    assert first["rc"] == 0, first
    assert first["stdout"].strip().splitlines()[-1] == "32 videos in dataset, listed in dataset/index.jsonl"
    dataset = session.dir / "dataset"
    videos = sorted(p.name for p in dataset.glob("video_*.mp4"))
    assert videos == [f"video_{i:06d}.mp4" for i in range(32)]
    index = [json.loads(line) for line in (dataset / "index.jsonl").read_text().splitlines()]
    assert sorted(row["id"] for row in index) == list(range(32))
    assert all({"id", "file", "seed", "category", "frames", "node"} <= set(row) for row in index)
    assert mp4_facts(dataset / "video_000007.mp4") == (16, (64, 64))
    assert again["rc"] == 0, again
    assert (dataset / "index.jsonl").read_text().count("\n") == 32  # nothing indexed twice
    assert not job["left_running"], job["left_running"]
    session.results[doc.command] = job


def batch_same_bytes(session: Session, doc: DocCommand) -> None:
    """Video i is the file `vidsynth generate --seed (seed + i) --num-videos 1` writes."""
    assert doc.command in session.results, "the batch block did not run"
    session.run("vidsynth generate --seed 7 --frames 16 --num-videos 1 --out batch-check")
    made = (session.dir / "dataset/video_000007.mp4").read_bytes()
    assert (session.dir / "batch-check/video_000.mp4").read_bytes() == made


def dry_run(session: Session, doc: DocCommand) -> None:
    result = session.run(doc.command)
    assert result.stdout.strip().splitlines()[-1] == "weights: dry-run/weights"
    assert len((session.dir / "dry-run/losses.jsonl").read_text().splitlines()) == 3
    from vidsynth.weights import load_model

    assert load_model(session.dir / "dry-run/weights").provenance["steps"] == 3


def train_on_actions(session: Session, doc: DocCommand) -> None:
    write_action_clips(session.dir / "path/to/actions")
    result = train_until_steps(session, doc.command, steps=1)
    session.results[doc.command] = {"rc": result.returncode, "stderr": result.stderr[-2000:]}
    assert result.returncode in (0, 143), result.stderr  # the status: train_stopped_by_sigterm
    assert (session.dir / "runs/actions/checkpoint/state.json").is_file()


def train_resume(session: Session, doc: DocCommand) -> None:
    done = len((session.dir / "runs/actions/losses.jsonl").read_text().splitlines())
    result = train_until_steps(session, doc.command, steps=done + 1)
    session.results[doc.command] = {"rc": result.returncode, "stderr": result.stderr[-2000:]}
    assert result.returncode in (0, 143), result.stderr  # the status: train_stopped_by_sigterm
    steps = [
        json.loads(line)["step"]
        for line in (session.dir / "runs/actions/losses.jsonl").read_text().splitlines()
    ]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > done  # continued, not restarted


def train_stopped_by_sigterm(session: Session, doc: DocCommand) -> None:
    """README's guarantees: SIGTERM checkpoints and exits 143."""
    runs = [session.results[plan.command] for plan in PLAN if plan.action in (train_on_actions, train_resume)]
    assert [run["rc"] for run in runs] == [143, 143], runs


def info_of_run(session: Session, doc: DocCommand) -> None:
    report = json.loads(session.run(doc.command).stdout)
    assert report["config"]["category_names"] == ["bend", "wave"]  # the class folders' names
    assert report["categories"] == "0 = bend, 1 = wave"
    assert str(session.dir) not in json.dumps(report)  # names, not this machine's paths
    assert report["provenance"]["training_data"]["folder"] == "actions"


def model_example(session: Session, doc: DocCommand) -> None:
    code = doc.code + "\nprint(tuple(video.shape))"
    result = session.run(shlex.join([sys.executable, "-c", code]))
    assert result.stdout.strip() == "(2, 16, 3, 96, 96)"


def import_legacy(session: Session, doc: DocCommand) -> None:
    write_legacy_checkpoints(session.dir)
    result = session.run(doc.command)
    assert result.stdout.strip() == "imported LSTM (same-input) 96x96 generator -> weights/assignment"


def info_legacy(session: Session, doc: DocCommand) -> None:
    report = json.loads(session.run(doc.command).stdout)
    assert (report["config"]["cell"], report["config"]["image_size"]) == ("lstm", 96)
    assert report["provenance"]["generator"] == "Generator_I-100.model"


def bench_quick(session: Session, doc: DocCommand) -> None:
    session.run(doc.command, timeout=3600)
    assert {"results.json", "results.md"} <= {p.name for p in (session.dir / "bench-quick").iterdir()}


def bench_full(session: Session, doc: DocCommand) -> None:
    session.run(doc.command, timeout=7200)
    assert (session.dir / "bench-results/results.json").is_file()


NO_CUDA = "needs a CUDA GPU, which this machine lacks"
SUITE = "the test suite itself, of which this module is part"

PLAYER = "pipes into ffplay, a player with a window (tests/test_live.py decodes `generate --out -`)"
STREAM_TO_PLAYER = (
    """curl -sN -d '{"seed": 7, "category": 2}' http://127.0.0.1:8000/v1/streams '|' ffplay -"""
)
PIPE_TO_PLAYER = "vidsynth generate --out - --num-videos 1 --frames 2000 '|' ffplay -"

PLAN: list[Plan] = [
    Plan("README.md", "pip install torch==2.13.0 -e '.[cpu]'", pip_line),
    Plan("README.md", "vidsynth generate", main_job),
    Plan("README.md", "pip install torch==2.13.0 -e '.[cpu,dev]'", pip_line),
    Plan("README.md", "python -m pytest -q", skip=SUITE),
    Plan("README.md", "vidsynth generate", main_job_again),
    Plan(
        "README.md",
        "vidsynth generate --weights demo --num-videos 8 --frames 32 --format gif --out clips",
        gif_clips,
    ),
    Plan("README.md", "vidsynth generate --weights demo --fix content --format png", content_sheet),
    Plan("README.md", "vidsynth export --weights demo --out art", export_demo),
    Plan(
        "README.md",
        "vidsynth generate --artifacts art --backend torchscript --device cuda --seed 3",
        cuda_only,
    ),
    Plan(
        "README.md",
        "vidsynth generate --artifacts art --frames 10000 --num-videos 1 --out long",
        long_video,
        slow="10,000 frames take minutes on a 2-CPU machine",
    ),
    Plan("README.md", PIPE_TO_PLAYER, skip=PLAYER),
    Plan("README.md", "pip install numpy onnxruntime imageio imageio-ffmpeg click tqdm", pip_line),
    Plan("README.md", "pip install --no-deps .", pip_line),
    Plan("README.md", "vidsynth generate --artifacts art --frames 64 --out torch-free", torch_free_generate),
    Plan("README.md", "pip install torch==2.13.0 -e '.[cpu]'", pip_line),
    Plan("README.md", "pip install torch==2.13.0 -e '.[gpu]'", pip_line),
    Plan("README.md", "vidsynth export --out art-default/", export_default),
    Plan("README.md", "vidsynth export --weights demo --out art16/ --dtype fp16", export_fp16),
    Plan(
        "README.md",
        "vidsynth export --weights demo --out artbf/ --dtype bf16 --formats torchscript",
        export_bf16,
    ),
    Plan("README.md", "pip install torch==2.13.0 -e '.[cpu,serve,batch]'", pip_line),
    Plan("README.md", "vidsynth serve", serve_and_curl),
    Plan(
        "README.md",
        """curl -o video.mp4 -d '{"seed": 7, "frames": 32, "category": 2}' http://127.0.0.1:8000/v1/videos""",
        served(served_video),
    ),
    Plan("README.md", STREAM_TO_PLAYER, served(streamed_to_player)),
    Plan("README.md", PIPE_TO_PLAYER, skip=PLAYER),
    Plan("README.md", "pip install torch==2.13.0 -e '.[bench]'", pip_line),
    Plan(
        "README.md",
        "vidsynth bench --quick --out bench-quick",
        bench_quick,
        slow="the quick benchmark takes minutes on a 2-CPU machine",
    ),
    Plan(
        "README.md",
        "vidsynth bench --out bench-results",
        bench_full,
        slow="the full benchmark matrix takes more than 10 minutes on a 2-CPU machine",
    ),
    Plan("README.md", "bash bench/device_check.sh", skip=NO_CUDA),
    Plan("README.md", "vidsynth train --dry-run --out dry-run --ngf 8 --ndf 8 --batch 4", dry_run),
    Plan(
        "README.md",
        "vidsynth train --data path/to/actions --out runs/actions --max-minutes 120",
        train_on_actions,
        slow="trains the CPU-sized model (ngf=32, batch 16) until SIGTERM after its first step",
    ),
    Plan(
        "README.md",
        "vidsynth train --out runs/actions --resume --steps 20000",
        train_resume,
        slow="resumes that run for one more step",
    ),
    Plan(
        "README.md", "vidsynth info runs/actions/weights", info_of_run, slow="reads the weights of that run"
    ),
    Plan("README.md", "python: import torch, vidsynth", model_example),
    Plan(
        "README.md",
        "vidsynth import Generator_I-100.model LSTM-100.model --out weights/assignment",
        import_legacy,
    ),
    Plan("README.md", "vidsynth info weights/assignment", info_legacy),
    Plan("serving.md", "pip install torch==2.13.0 -e '.[cpu,serve,batch]'", pip_line),
    Plan("serving.md", "vidsynth serve", served_as_before),
    Plan(
        "serving.md",
        """curl -o video.mp4 -d '{"seed": 7, "frames": 32, "category": 2}' http://127.0.0.1:8000/v1/videos""",
        served(served_video),
    ),
    Plan(
        "serving.md",
        """curl -o sheet.png -d '{"seed": 7, "frames": 32, "category": 2, "format": "png"}' """
        "http://127.0.0.1:8000/v1/videos",
        served(served_sheet),
    ),
    Plan(
        "serving.md",
        """curl -o four.zip -d '{"seed": 1, "num_videos": 4, "fix": "content"}' http://127.0.0.1:8000/v1/videos""",
        served(served_zip),
    ),
    Plan("serving.md", "curl http://127.0.0.1:8000/v1/model", served(served_model)),
    Plan("serving.md", "curl http://127.0.0.1:8000/healthz", served(served_health)),
    Plan("serving.md", STREAM_TO_PLAYER, served(streamed_to_player)),
    Plan(
        "serving.md",
        """curl -sN -d '{"seed": 7, "frames": 2000}' http://127.0.0.1:8000/v1/streams -o live.mp4""",
        skip="a 2,000-frame stream at 8 fps lasts about 4 minutes; tests/live_cases.py streams shorter ones",
    ),
    Plan("serving.md", "curl http://127.0.0.1:8000/v1/streams", served(served_streams)),
    Plan("serving.md", PIPE_TO_PLAYER, skip=PLAYER),
    Plan("serving.md", "vidsynth batch --out dataset --count 32 --frames 16", batch_dataset),
    Plan(
        "serving.md",
        "vidsynth batch --out big-dataset --count 100000 --address HEAD:6379",
        skip="needs a running Ray cluster at HEAD:6379 (ray start --head on other machines)",
    ),
    Plan("serving.md", "apt-get install -y chromium", skip="installs a system package (CI's .ci/run does)"),
    Plan("serving.md", "pip install torch==2.13.0 -e '.[cpu,dev,serve,batch,browser]'", pip_line),
    Plan("serving.md", "python -m pytest -q", skip=SUITE),
]

# What the docs say in prose of commands above, checked after the blocks.
EXTRA: list[Plan] = [
    # README.md, Guarantees: "Ctrl-C, SIGTERM (exit 143) ... leaves the previous contents"
    Plan(
        "README.md",
        "vidsynth train --out runs/actions --resume --steps 20000",
        train_stopped_by_sigterm,
        slow="reads the exit status of the two training runs above",
    ),
    # docs/serving.md: video i is "the same bytes as `vidsynth generate --seed (seed + i) --num-videos 1`"
    Plan("serving.md", "vidsynth batch --out dataset --count 32 --frames 16", batch_same_bytes),
]

# Each line once (README.md and docs/serving.md share some); a stream into a player last, so
# that GET /v1/streams counts no stream still closing.
_CURLS = dict.fromkeys(plan.command for plan in PLAN if plan.command.startswith("curl ") and not plan.skip)
SERVED.extend(sorted(_CURLS, key=lambda command: "'|'" in command))


def _param(plan: Plan, doc: DocCommand) -> object:
    return pytest.param(plan, doc, id=f"{plan.doc}:{doc.line or 'prose'}:{plan.command[:60]}")


def _params() -> list[object]:
    """Each plan with the command it stands for (line 0: not in a block, or not found: the
    guard test reports that)."""
    found, params, start = doc_commands(), [], 0
    for plan in PLAN:
        match = next(
            (
                i
                for i in range(start, len(found))
                if (found[i].doc, found[i].command) == (plan.doc, plan.command)
            ),
            None,
        )
        if match is None:
            params.append(_param(plan, DocCommand(plan.doc, 0, plan.command)))
        else:
            params.append(_param(plan, found[match]))
            start = match + 1
    return params + [_param(plan, DocCommand(plan.doc, 0, plan.command)) for plan in EXTRA]


def test_every_documented_command_is_planned():
    documented = [(doc.doc, doc.command) for doc in doc_commands()]
    planned = [(plan.doc, plan.command) for plan in PLAN]
    assert documented == planned, (
        "PLAN must list the docs' commands in order; "
        f"new in the docs: {[c for c in documented if c not in planned]}, "
        f"gone from them: {[c for c in planned if c not in documented]}"
    )


@pytest.mark.parametrize("plan, doc", _params())
def test_documented_command(plan: Plan, doc: DocCommand, session: Session, request) -> None:
    if plan.skip:
        pytest.skip(f"{doc.command}: {plan.skip}")
    run_slow = request.config.getoption("--run-slow") or os.environ.get("VIDSYNTH_RUN_SLOW") == "1"
    if plan.slow and not run_slow:
        pytest.skip(f"slow ({plan.slow}): run with --run-slow")
    assert plan.action is not None
    plan.action(session, doc)


# -- install lines and install hints -------------------------------------------------------------

PROJECT_INSTALL = re.compile(r"vidsynth\[|'\.\[|-e \.|\s\.(\s|$)")


def test_install_lines_pin_torch_and_hints_name_packages():
    """Every documented `pip install` of this project pins torch; the hints vidsynth prints
    name the packages themselves (an extra would reinstall vidsynth and pull torch into a
    torch-free install)."""
    problems = [
        f"{doc.doc}:{doc.line}: {pip_problem(doc.command)}"
        for doc in doc_commands()
        if pip_problem(doc.command)
    ]
    for path in [*DOCS, REPO / "bench/results/README.md"]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for hint in re.findall(r"pip install [^`\n]*", line):
                if PROJECT_INSTALL.search(hint) and "--no-deps" not in hint and TORCH_PIN not in hint:
                    problems.append(f"{path.name}:{number}: {hint}")
    for path in sorted((REPO / "vidsynth").rglob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for hint in re.findall(r"pip install [^\"\n]*", line):
                if PROJECT_INSTALL.search(hint):
                    problems.append(f"{path.relative_to(REPO)}:{number}: {hint}")
    assert not problems, "\n".join(problems)
    from vidsynth.optional import OPENVINO_HINT

    assert OPENVINO_HINT == "pip install openvino"
