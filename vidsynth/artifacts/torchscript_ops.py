"""A TorchScript file is code: before running a loaded generator.pt, check that its graphs use
only the operators the exporter recorded in the manifest, and never file or IO operators
(torch.from_file(..., shared=True) maps and writes an arbitrary file), even where a tampered
manifest lists them. The archive's code is scanned before torch.jit.load as well, because a
module's __setstate__ runs while it loads."""

from __future__ import annotations

import os
import re
import zipfile
from collections.abc import Iterable

import torch

from vidsynth.errors import RuntimeBackendError

ALLOWED_NAMESPACES = ("aten", "prim")
# Operator names that touch files, shared memory or serialization: refused whatever the manifest says.
_IO_OPERATOR = re.compile(
    r"file|save|load|storage|pickle|print|mmap|shm|shared|open|write|read|socket|system"
)
_IO_SOURCE = re.compile(r"__setstate__|from_file|\bsave\b|\bload\b|\bopen\b|_shm|storage")
_MAX_CODE_BYTES = 16 << 20


def _walk(block, kinds: set[str]) -> None:
    for node in block.nodes():
        kinds.add(node.kind())
        for inner in node.blocks():
            _walk(inner, kinds)


def graph_operators(module: torch.jit.ScriptModule) -> set[str]:
    """Every operator kind in every method of `module` and its submodules, with calls inlined."""
    kinds: set[str] = set()
    for _, sub in module.named_modules():
        for name in sub._c._method_names():
            graph = sub._c._get_method(name).graph.copy()
            torch._C._jit_pass_inline(graph)
            _walk(graph, kinds)
    return kinds


def refused_operators(operators: Iterable[str]) -> list[str]:
    """The operators no generator needs: outside aten/prim, or doing file/IO."""
    return sorted(
        op
        for op in operators
        if op.split("::", 1)[0] not in ALLOWED_NAMESPACES or _IO_OPERATOR.search(op.split("::", 1)[-1])
    )


def recorded_operators(module: torch.jit.ScriptModule) -> list[str]:
    """What the exporter writes into the manifest (torchscript_ops)."""
    operators = graph_operators(module)
    refused = refused_operators(operators)
    if refused:
        raise RuntimeBackendError(
            f"the scripted generator uses operators vidsynth refuses to ship: {refused}"
        )
    return sorted(operators)


def scan_archive(path: str | os.PathLike) -> None:
    """Refuses a TorchScript archive whose code does file/IO or runs on load, before loading it."""
    try:
        with zipfile.ZipFile(path) as archive:
            total = 0
            for info in archive.infolist():
                if "/code/" not in info.filename or not info.filename.endswith(".py"):
                    continue
                total += info.file_size
                if total > _MAX_CODE_BYTES:
                    raise RuntimeBackendError(
                        f"{path} holds more code than a generator needs; refusing to load it"
                    )
                match = _IO_SOURCE.search(archive.read(info).decode("utf-8", "replace"))
                if match:
                    raise RuntimeBackendError(
                        f"{path} contains code using {match.group(0)!r} (file IO or code run on load); "
                        "TorchScript files are code: refusing to load it"
                    )
    except (zipfile.BadZipFile, OSError) as exc:
        raise RuntimeBackendError(f"{path} is not a TorchScript archive: {exc}") from None


def check_operators(module: torch.jit.ScriptModule, recorded: list[str], path: str | os.PathLike) -> None:
    """Refuses `module` if it uses file/IO operators or any operator outside `recorded`."""
    operators = graph_operators(module)
    refused = refused_operators(operators)
    if refused:
        raise RuntimeBackendError(f"{path} uses file/IO or foreign operators {refused}; refusing to run it")
    unknown = sorted(operators - set(recorded))
    if unknown:
        raise RuntimeBackendError(
            f"{path} uses operators its export did not record {unknown[:10]}; refusing to run it"
        )


def load_torchscript(
    path: str | os.PathLike, device: str = "cpu"
) -> tuple[torch.jit.ScriptModule, dict[str, str]]:
    """torch.jit.load of a generator.pt, unchecked, with the extra files export writes as text."""
    extra = {"config.json": "", "vidsynth_version": ""}
    try:
        module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except (RuntimeError, ValueError, OSError) as exc:
        raise RuntimeBackendError(f"{path} is not a loadable TorchScript generator: {exc}") from None
    texts = {name: v.decode("utf-8", "replace") if isinstance(v, bytes) else v for name, v in extra.items()}
    return module.eval(), texts


def load_checked(
    path: str | os.PathLike, recorded: list[str], device: str = "cpu"
) -> tuple[torch.jit.ScriptModule, str]:
    """load_torchscript of an export's generator.pt, only after its code and operators pass;
    with the config.json text it carries (empty if none)."""
    scan_archive(path)
    module, extra = load_torchscript(path, device)
    check_operators(module, recorded, path)
    return module, extra["config.json"]
