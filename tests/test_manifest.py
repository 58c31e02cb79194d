"""A manifest cannot point outside its export directory or crash
the reader, and a generator.pt is code, checked against the operators its export recorded
before it runs."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from vidsynth.artifacts.manifest import file_record, read_manifest
from vidsynth.artifacts.torchscript_ops import check_operators, graph_operators, scan_archive
from vidsynth.cli import cli
from vidsynth.errors import RuntimeBackendError
from vidsynth.export import export_artifacts
from vidsynth.model.config import ModelConfig
from vidsynth.model.generator import build_model

CONFIG = ModelConfig(ngf=8, image_size=64)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hardening_artifacts")
    export_artifacts(build_model(CONFIG, seed=0).eval(), root / "art")
    return root / "art"


@pytest.fixture
def art(exported, tmp_path):
    """A private copy of the export to tamper with."""
    return Path(shutil.copytree(exported, tmp_path / "art"))


def edit_manifest(directory: Path, change) -> None:
    path = directory / "manifest.json"
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


# -- 3. escaping the artifacts directory ----------------------------------------------------------


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "..", "sub/generator.onnx", ".hidden"])
def test_manifest_names_outside_the_directory_are_refused_without_touching_them(art, name):
    outside = Path("/etc/passwd")
    edit_manifest(art, lambda m: m["files"].update({name: {"sha256": "0" * 64, "bytes": 1}}))
    with pytest.raises(RuntimeBackendError, match="not a plain name inside the export directory") as caught:
        read_manifest(art)
    assert str(outside.stat().st_size) not in str(caught.value)


def test_a_listed_file_that_links_outside_is_refused(art, tmp_path):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"s" * 1234)
    (art / "generator.onnx").unlink()
    (art / "generator.onnx").symlink_to(secret)
    edit_manifest(art, lambda m: m["files"].update({"generator.onnx": file_record(secret)}))
    with pytest.raises(RuntimeBackendError, match="not a regular file") as caught:
        read_manifest(art)
    assert "1234" not in str(caught.value)


@pytest.mark.parametrize(
    "content,fragment",
    [
        (lambda m: m.update(files=list(m["files"])), "files is not an object"),
        (lambda m: m["files"]["generator.onnx"].update(bytes=10**30), "bytes is not a size"),
        (lambda m: m["files"]["generator.onnx"].update(bytes=True), "bytes is not a size"),
        (lambda m: m["files"]["generator.onnx"].update(sha256=["x"]), "sha256 is not 64"),
        (lambda m: m.update(config="ngf=8"), "config is not an object"),
        (lambda m: m.update(format_version=10**400), "unknown version"),
    ],
)
def test_manifest_structure_errors_are_one_clear_error(art, content, fragment):
    edit_manifest(art, content)
    with pytest.raises(RuntimeBackendError, match=fragment):
        read_manifest(art)


@pytest.mark.parametrize(
    "raw,fragment",
    [
        (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
        (b'{"format_version": ' + b"9" * 20_000 + b"}", "number too large"),
        (b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary", "not text"),
        (b" " * (2 << 20), "at most"),
    ],
)
def test_hostile_manifest_bytes_are_one_clear_error(art, raw, fragment):
    (art / "manifest.json").write_bytes(raw)
    with pytest.raises(RuntimeBackendError, match=fragment):
        read_manifest(art)


def test_a_manifest_that_is_a_fifo_or_a_device_does_not_hang(art):
    (art / "manifest.json").unlink()
    os.mkfifo(art / "manifest.json")
    outcome = []
    reader = threading.Thread(target=lambda: outcome.append(_error_of(read_manifest, art)), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading a FIFO manifest hung"
    assert "not a regular file" in outcome[0]
    (art / "manifest.json").unlink()
    (art / "manifest.json").symlink_to("/dev/zero")
    assert "not a regular file" in _error_of(read_manifest, art)


def _error_of(function, *args) -> str:
    try:
        function(*args)
    except RuntimeBackendError as exc:
        return str(exc)
    return "no error"


# -- 4. TorchScript is code ----------------------------------------------------------------------


class WritesAFile(torch.nn.Module):
    """Looks like a generator; maps `victim` shared and overwrites it when run."""

    def __init__(self, victim: str) -> None:
        super().__init__()
        self.victim = victim

    def forward(self, z_content: torch.Tensor, z_motion: torch.Tensor, n_frames: int) -> torch.Tensor:
        mapped = torch.from_file(self.victim, shared=True, size=4, dtype=torch.uint8)
        mapped.fill_(0)
        return torch.zeros(z_content.shape[0], n_frames, 3, 64, 64) + mapped[0].float()


def plant(art: Path, module: torch.nn.Module, ops_too: bool) -> torch.jit.ScriptModule:
    """Replaces generator.pt with `module` and updates the manifest's hash (and, with
    `ops_too`, its operator record), as an attacker who can write the directory would."""
    scripted = torch.jit.script(module)
    torch.jit.save(scripted, str(art / "generator.pt"))

    def change(manifest):
        manifest["files"]["generator.pt"] = file_record(art / "generator.pt")
        if ops_too:
            manifest["torchscript_ops"] = sorted(set(manifest["torchscript_ops"]) | graph_operators(scripted))

    edit_manifest(art, change)
    return scripted


def test_export_records_the_generators_operators_without_any_io(exported):
    ops = read_manifest(exported)["torchscript_ops"]
    assert "aten::conv_transpose2d" in ops and "prim::Loop" in ops
    assert not [op for op in ops if "file" in op or "save" in op]


@pytest.mark.parametrize("ops_too", [False, True])
def test_a_generator_pt_that_writes_a_file_is_refused_before_it_runs(art, tmp_path, ops_too):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    plant(art, WritesAFile(str(victim)), ops_too)
    result = CliRunner().invoke(
        cli,
        [
            "generate",
            "--artifacts",
            str(art),
            "--backend",
            "torchscript",
            "--num-videos",
            "1",
            "--frames",
            "2",
            "--format",
            "png",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 1
    assert "from_file" in result.output and "refusing" in result.output
    assert victim.read_text() == "precious"
    assert not (tmp_path / "out").exists()


def test_a_manifest_listing_generator_pt_without_its_operators_is_refused(art):
    edit_manifest(art, lambda manifest: manifest.pop("torchscript_ops"))
    with pytest.raises(RuntimeBackendError, match="generator.pt without torchscript_ops"):
        read_manifest(art)


def test_file_operators_are_refused_even_when_the_manifest_lists_them(tmp_path):
    scripted = torch.jit.script(WritesAFile(str(tmp_path / "v")))
    listed = sorted(graph_operators(scripted))
    assert "aten::from_file" in listed
    with pytest.raises(RuntimeBackendError, match=r"file/IO or foreign operators \['aten::from_file'\]"):
        check_operators(scripted, listed, "generator.pt")


def test_operators_the_export_did_not_record_are_refused(exported):
    scripted = torch.jit.load(str(exported / "generator.pt"))
    recorded = [op for op in read_manifest(exported)["torchscript_ops"] if op != "aten::conv_transpose2d"]
    with pytest.raises(RuntimeBackendError, match="did not record.*conv_transpose2d"):
        check_operators(scripted, recorded, "generator.pt")
    check_operators(scripted, read_manifest(exported)["torchscript_ops"], "generator.pt")


class RunsOnLoad(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, bool]:
        return (self.weight, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, bool]) -> None:
        self.weight = state[0]
        self.training = state[1]


def test_an_archive_with_code_that_runs_on_load_is_refused_before_loading(tmp_path):
    torch.jit.save(torch.jit.script(RunsOnLoad()), str(tmp_path / "g.pt"))
    with pytest.raises(RuntimeBackendError, match="__setstate__"):
        scan_archive(tmp_path / "g.pt")
