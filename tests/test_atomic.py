"""--force never deletes what vidsynth did not write; the
directory swap survives mount points, cross-filesystem links, failed renames and kills; SIGTERM
cleans up like SIGINT; stale temporaries of dead runs are swept. Faults are real: tmpfs mounts,
signals sent to real processes, real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import vidsynth.atomic as atomic
from vidsynth.artifacts.manifest import read_manifest
from vidsynth.atomic import current_umask, sweep_stale
from vidsynth.cli import cli
from vidsynth.errors import InputError, StorageError
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.train.config import TrainConfig
from vidsynth.train.loop import train
from vidsynth.weights.format import load_weights, save_weights

REPO = Path(__file__).resolve().parents[1]
TINY = ModelConfig(ngf=8, image_size=64)


@pytest.fixture(scope="module")
def tiny_model():
    return build_model(TINY, seed=0).eval()


def entries(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def project(directory: Path) -> Path:
    """A user's project directory: files vidsynth must never delete."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "README.md").write_text("my notes\n")
    (directory / "src").mkdir()
    (directory / "src" / "main.py").write_text("print('hi')\n")
    return directory


# -- 1. data loss ----------------------------------------------------------------------------


def test_force_refuses_a_directory_vidsynth_did_not_write(tmp_path, tiny_model):
    user = project(tmp_path / "project")
    save_weights(tiny_model, tmp_path / "w")
    result = CliRunner().invoke(
        cli, ["export", "--weights", str(tmp_path / "w"), "--out", str(user), "--force"]
    )
    assert result.exit_code == 1
    assert "refusing to replace" in result.output and "no valid manifest.json" in result.output
    with pytest.raises(InputError, match="has no config.json"):
        save_weights(tiny_model, user, force=True)
    (user / "config.json").write_text("{}")  # looks like weights, but holds more
    with pytest.raises(InputError, match="also holds README.md, src"):
        save_weights(tiny_model, user, force=True)
    assert entries(user) == ["README.md", "config.json", "src"]
    assert (user / "src" / "main.py").read_text() == "print('hi')\n"


def test_force_refuses_the_current_directory_even_when_it_looks_like_ours(tmp_path, tiny_model, monkeypatch):
    save_weights(tiny_model, tmp_path / "w")
    monkeypatch.chdir(tmp_path / "w")
    with pytest.raises(InputError, match="current directory"):
        save_weights(tiny_model, ".", force=True)
    assert entries(tmp_path / "w") == ["SHA256SUMS", "config.json", "model.safetensors"]


def test_force_replaces_weights_vidsynth_wrote_but_not_with_a_user_file_added(tmp_path, tiny_model):
    target = tmp_path / "w"
    save_weights(tiny_model, target, {"run": 1})
    save_weights(tiny_model, target, {"run": 2}, force=True)
    assert load_weights(target).provenance["run"] == 2
    (target / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="also holds notes.txt"):
        save_weights(tiny_model, target, {"run": 3}, force=True)
    assert (target / "notes.txt").read_text() == "mine"


def test_train_does_not_overwrite_a_weights_folder_it_did_not_make(tmp_path, tiny_model):
    run = tmp_path / "run"
    save_weights(tiny_model, run / "weights", {"source": "my import"})
    before = (run / "weights" / "model.safetensors").read_bytes()
    config = TrainConfig(data=None, dry_run=True, steps=1, ngf=4, ndf=4, batch=2, clip_frames=4, frame_step=1)
    with pytest.raises(InputError, match="weights already exists and is not from a run"):
        train(config, run, progress=False)
    assert (run / "weights" / "model.safetensors").read_bytes() == before
    assert not (run / "checkpoint").exists()


# -- 2. the directory swap ---------------------------------------------------------------------


def test_a_mount_point_is_replaced_in_place_without_leaking_temporaries(tmp_path, tiny_model, small_tmpfs):
    volume = small_tmpfs("volume", size="2m")  # a container volume: rename() on it fails with EBUSY
    save_weights(tiny_model, volume, {"run": 1})
    save_weights(tiny_model, volume, {"run": 2}, force=True)
    assert os.path.ismount(volume)
    assert load_weights(volume).provenance["run"] == 2
    assert entries(volume) == ["SHA256SUMS", "config.json", "model.safetensors"]
    assert entries(tmp_path) == ["volume"]


def test_a_symlinked_out_across_filesystems_keeps_the_link_and_replaces_its_target(
    tmp_path, tiny_model, small_tmpfs
):
    other = small_tmpfs("other", size="2m")
    save_weights(tiny_model, other / "w", {"run": 1})
    link = tmp_path / "link"
    link.symlink_to(other / "w")
    save_weights(tiny_model, link, {"run": 2}, force=True)
    assert link.is_symlink() and load_weights(link).provenance["run"] == 2
    assert entries(other) == ["w"] and entries(tmp_path) == ["link", "other"]


def test_a_failed_second_rename_rolls_back_to_the_previous_directory(tmp_path, tiny_model, monkeypatch):
    target = tmp_path / "w"
    save_weights(tiny_model, target, {"run": 1})
    monkeypatch.setattr(atomic, "_exchange", lambda a, b: False)  # a filesystem without RENAME_EXCHANGE
    real_rename, calls = os.rename, []

    def second_rename_fails(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise OSError(5, "Input/output error", str(dst))
        return real_rename(src, dst)

    monkeypatch.setattr(atomic.os, "rename", second_rename_fails)
    with pytest.raises(OSError):
        save_weights(tiny_model, target, {"run": 2}, force=True)
    monkeypatch.undo()
    assert load_weights(target).provenance["run"] == 1
    assert entries(tmp_path) == ["w"]


KILL_BETWEEN_RENAMES = """
import os, signal, sys
import vidsynth.atomic as atomic
from vidsynth.artifacts.manifest import read_manifest
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model
from vidsynth.weights.format import save_weights
atomic._exchange = lambda a, b: False
real_rename = os.rename
def rename(src, dst):
    real_rename(src, dst)
    if ".old-" in str(dst):
        os.kill(os.getpid(), signal.SIGKILL)
atomic.os.rename = rename
save_weights(build_model(ModelConfig(ngf=8, image_size=64), seed=0), sys.argv[1], {"run": 2}, force=True)
"""


def test_a_kill_between_the_two_renames_is_undone_by_the_next_run(tmp_path, tiny_model):
    target = tmp_path / "w"
    save_weights(tiny_model, target, {"run": 1})
    child = subprocess.run(
        [sys.executable, "-c", KILL_BETWEEN_RENAMES, str(target)], cwd=REPO, capture_output=True
    )
    assert child.returncode == -signal.SIGKILL
    assert not target.exists()  # the window the fallback path has; the next start closes it
    sweep_stale(tmp_path, "w")
    assert load_weights(target).provenance["run"] == 1
    assert entries(tmp_path) == ["w"]


def test_the_swap_is_one_atomic_exchange_where_the_filesystem_has_it(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "from_a").touch()
    if not atomic._exchange(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this filesystem has no RENAME_EXCHANGE; the two-rename fallback is tested above")
    assert entries(tmp_path / "b") == ["from_a"] and entries(tmp_path / "a") == []


def test_stale_entries_of_dead_runs_are_swept_and_live_ones_kept(tmp_path, tiny_model, dead_pid):
    target = tmp_path / "w"
    save_weights(tiny_model, target, {"run": 1})
    stale_tmp = tmp_path / f".w.tmp-{dead_pid}-abc123"
    stale_old = tmp_path / f".w.old-{dead_pid}"
    live_tmp = tmp_path / f".w.tmp-{os.getppid()}-xyz"
    for directory in (stale_tmp, stale_old, live_tmp):
        directory.mkdir()
        (directory / "partial.safetensors").write_bytes(b"\0" * 10)
    save_weights(tiny_model, target, {"run": 2}, force=True)
    assert entries(tmp_path) == sorted([live_tmp.name, "w"])


def test_umask_is_read_without_changing_it_and_all_files_share_one_mode(tmp_path, tiny_model, monkeypatch):
    previous = os.umask(0o027)
    try:

        def racy(mask):  # setting the umask to read it briefly made other threads' files world-writable
            raise AssertionError("os.umask called")

        monkeypatch.setattr(atomic.os, "umask", racy)
        assert current_umask() == 0o027
        save_weights(tiny_model, tmp_path / "w")
    finally:
        monkeypatch.undo()
        os.umask(previous)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "w").iterdir()}
    assert modes == {"SHA256SUMS": 0o640, "config.json": 0o640, "model.safetensors": 0o640}
    assert (tmp_path / "w").stat().st_mode & 0o777 == 0o750


def test_a_full_disk_leaves_the_previous_weights_and_no_temporaries(tmp_path, tiny_model, small_tmpfs):
    disk = small_tmpfs("disk", size="200k")  # an ngf=8 model is ~1 MB
    (disk / "keep.txt").write_text("x")
    with pytest.raises(StorageError, match="no space left"):
        save_weights(tiny_model, disk / "w")
    assert entries(disk) == ["keep.txt"]


# -- 8. SIGTERM ---------------------------------------------------------------------------------


def _wait_for(predicate, timeout: float = 120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize("sig,status", [(signal.SIGTERM, 143), (signal.SIGINT, 1)])
def test_a_signal_during_export_removes_its_temporary_directory(
    tmp_path, tmp_path_factory, tiny_model, sig, status
):
    save_weights(tiny_model, tmp_path / "w")
    out = tmp_path / "art"
    # The export says when its files are written and waits a minute before validating them,
    # so the signal surely comes while it runs (a tiny model's export may otherwise end first).
    site = tmp_path_factory.mktemp("site")
    written = site / "written"
    (site / "sitecustomize.py").write_text(
        "import pathlib, time\n"
        "import vidsynth.export.validate as validate\n"
        "checked = validate.validate_export\n"
        "def held(*args, **kwargs):\n"
        f"    pathlib.Path({str(written)!r}).touch()\n"
        "    time.sleep(60)\n"
        "    return checked(*args, **kwargs)\n"
        "validate.validate_export = held\n"
    )
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    child = subprocess.Popen(
        [sys.executable, "-m", "vidsynth", "export", "--weights", str(tmp_path / "w"), "--out", str(out)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": path},
    )
    try:
        started = _wait_for(written.exists)
        assert started, "export never started writing"
        child.send_signal(sig)
        _, err = child.communicate(timeout=120)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == status, err.decode()[-500:]
    assert entries(tmp_path) == ["w"]


def test_temporaries_of_a_killed_export_are_swept_by_the_next_one(tmp_path, tiny_model):
    save_weights(tiny_model, tmp_path / "w")
    args = [
        sys.executable,
        "-m",
        "vidsynth",
        "export",
        "--weights",
        str(tmp_path / "w"),
        "--formats",
        "torchscript",
    ]
    child = subprocess.Popen([*args, "--out", str(tmp_path / "art")], cwd=REPO, stderr=subprocess.DEVNULL)
    assert _wait_for(lambda: any(p.name.startswith(".art.tmp-") for p in tmp_path.iterdir()))
    child.send_signal(signal.SIGKILL)  # cannot be handled: only a later run can clean up
    child.wait()
    assert any(p.name.startswith(".art.tmp-") for p in tmp_path.iterdir())
    subprocess.run([*args, "--out", str(tmp_path / "art")], cwd=REPO, check=True, capture_output=True)
    assert entries(tmp_path) == ["art", "w"]


# -- the command line as users run it: runs into one --out -------------------------------------


def _export_in_progress(tmp_path: Path) -> subprocess.Popen:
    """`vidsynth export` into tmp_path/art, stopped (SIGSTOP) once it has started writing."""
    from entry_point import entry_point

    child = subprocess.Popen(
        [
            *entry_point(),
            "export",
            "--weights",
            str(tmp_path / "w"),
            "--formats",
            "torchscript",
            "--out",
            str(tmp_path / "art"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started = _wait_for(lambda: any(p.name.startswith(".art.tmp-") for p in tmp_path.iterdir()))
    if not started:
        child.kill()
        raise AssertionError(f"export never started writing: {child.communicate()[1]}")
    child.send_signal(signal.SIGSTOP)
    return child


def test_a_second_export_into_the_same_out_is_refused_while_the_first_runs(tmp_path, tiny_model):
    from entry_point import run_vidsynth

    save_weights(tiny_model, tmp_path / "w")
    first = _export_in_progress(tmp_path)
    try:
        second = run_vidsynth("export", "--weights", str(tmp_path / "w"), "--out", str(tmp_path / "art"))
    finally:
        first.send_signal(signal.SIGCONT)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert second.returncode == 1 and "another vidsynth run is writing" in second.stderr, second.stderr
    assert entries(tmp_path) == ["art", "w"]
    assert set(read_manifest(tmp_path / "art")["files"]) == {"generator.pt"}


def test_a_directory_made_at_out_during_an_export_is_left_alone(tmp_path, tiny_model):
    save_weights(tiny_model, tmp_path / "w")
    child = _export_in_progress(tmp_path)
    try:
        project(tmp_path / "art")  # the user makes a directory there while the export runs
    finally:
        child.send_signal(signal.SIGCONT)
    _, err = child.communicate(timeout=300)
    assert child.returncode == 1 and "was created or changed by something else" in err, err
    assert entries(tmp_path / "art") == ["README.md", "src"]
    assert (tmp_path / "art" / "src" / "main.py").read_text() == "print('hi')\n"
    assert entries(tmp_path) == ["art", "w"]


def test_import_force_refuses_a_directory_whose_config_json_is_not_ours(tmp_path):
    import torch
    from entry_point import run_vidsynth
    from legacy_reference import AssignmentLSTM, Generator_I

    torch.save(Generator_I(ngf=8, nz=60, first_kernel=4).state_dict(), tmp_path / "g.model")
    torch.save(AssignmentLSTM(10, 100).state_dict(), tmp_path / "m.model")
    user = tmp_path / "settings"
    user.mkdir()
    (user / "config.json").write_text('{"theme": "dark"}\n')  # the user's own config.json
    result = run_vidsynth(
        "import", str(tmp_path / "g.model"), str(tmp_path / "m.model"), "--out", str(user), "--force"
    )
    assert result.returncode == 1 and "refusing to replace" in result.stderr, result.stderr
    assert (user / "config.json").read_text() == '{"theme": "dark"}\n'
