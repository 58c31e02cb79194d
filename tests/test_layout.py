"""The folders are the stages and imports flow one way:
utilities -> model -> weights -> artifacts -> export / runtime -> serve, batch, train -> bench -> cli.

Every module of vidsynth/ is parsed (imports inside functions and TYPE_CHECKING blocks count,
and so do literal `importlib.import_module("vidsynth....")` calls) and each import is checked:
no stage imports a stage above it, stages of one rank do not import each other, vidsynth.cluster
serves only serve/batch/bench, and the top stages use only the public names of the stages below.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vidsynth"
UTILITIES = ("errors", "version", "files", "checksums", "atomic", "signals", "optional", "sweeper")
RANKS = {
    **dict.fromkeys(UTILITIES, 0),
    "model": 1,
    "weights": 2,
    "artifacts": 3,
    "export": 4,
    "runtime": 4,
    "serve": 5,
    "batch": 5,
    "train": 5,
    "bench": 6,
    "cli": 7,
    "__init__": 7,
    "__main__": 7,
}
CLUSTER = "cluster"  # Ray start-up: serving infrastructure, not a stage of the model's data
CLUSTER_USERS = ("serve", "batch", "bench")
TOP_STAGES = ("serve", "batch", "train", "bench")  # these use only the public names below them


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted ("vidsynth.serve.app")
    line: int
    target: str  # the imported module, dotted
    names: tuple[str, ...]  # the names taken from it ("from target import a, b"); () for "import target"


def stage(dotted: str) -> str:
    """The stage of a vidsynth module: its top-level folder or module under vidsynth/."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def is_module(dotted: str) -> bool:
    path = PACKAGE.parent.joinpath(*dotted.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def imports_of(path: Path) -> list[Import]:
    """Every vidsynth import in `path`, wherever it sits in the module."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [Import(name, node.lineno, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            # `from vidsynth.runtime import backend` imports the module vidsynth.runtime.backend
            modules = [alias.name for alias in node.names if is_module(f"{target}.{alias.name}")]
            found += [Import(name, node.lineno, f"{target}.{m}", ()) for m in modules]
            names = tuple(alias.name for alias in node.names if alias.name not in modules)
            if names:
                found.append(Import(name, node.lineno, target, names))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Import(name, node.lineno, node.args[0].value, ()))
    return [i for i in found if i.target == "vidsynth" or i.target.startswith("vidsynth.")]


def all_imports() -> list[Import]:
    return [i for path in sorted(PACKAGE.rglob("*.py")) for i in imports_of(path)]


def layering_error(i: Import) -> str | None:
    """Why `i` breaks the layering, or None."""
    source, target = stage(i.module), stage(i.target)
    if source == target:
        return None
    if target == CLUSTER:
        return None if source in CLUSTER_USERS else f"{CLUSTER} serves only {', '.join(CLUSTER_USERS)}"
    if source == CLUSTER:
        return None if RANKS.get(target) == 0 else f"{CLUSTER} may import only the utilities"
    if target not in RANKS or source not in RANKS:
        return f"{target if target not in RANKS else source} is not a known stage: add it to RANKS"
    if RANKS[source] == 0:
        return None if RANKS[target] == 0 else "the utilities import no stage"
    if RANKS[target] > RANKS[source]:
        return f"{source} (rank {RANKS[source]}) imports a higher stage {target} (rank {RANKS[target]})"
    if RANKS[target] == RANKS[source] and RANKS[source] != 7:
        return f"{source} and {target} sit side by side and never import each other"
    return None


def private_error(i: Import) -> str | None:
    """A top stage taking a private module or name from a stage below it."""
    source, target = stage(i.module), stage(i.target)
    if source not in TOP_STAGES or source == target:
        return None
    private = [part for part in i.target.split(".") if part.startswith("_") and not part.startswith("__")]
    private += [name for name in i.names if name.startswith("_")]
    return f"private {', '.join(private)}" if private else None


def describe(i: Import, why: str) -> str:
    return (
        f"{i.module}:{i.line} imports {i.target}{' (' + ', '.join(i.names) + ')' if i.names else ''}: {why}"
    )


def test_every_stage_is_ranked():
    named = {stage(module_name(path)) for path in PACKAGE.rglob("*.py")}
    assert named - set(RANKS) - {CLUSTER} == set()


def test_no_stage_imports_a_higher_or_a_sibling_stage():
    errors = [describe(i, why) for i in all_imports() if (why := layering_error(i))]
    assert not errors, "\n".join(errors)


def test_top_stages_use_only_public_names_below_them():
    errors = [describe(i, why) for i in all_imports() if (why := private_error(i))]
    assert not errors, "\n".join(errors)


def test_the_checks_can_fail(tmp_path, monkeypatch):
    """The checker finds an upward import hidden in a function, a sibling import, a private
    name and a misplaced use of vidsynth.cluster."""
    fake = tmp_path / "vidsynth"
    for folder, source in {
        "runtime": "def f():\n    from vidsynth.export.artifacts import export_artifacts\n",
        "model": "import importlib\nimportlib.import_module('vidsynth.weights.format')\n",
        "batch": (
            "from vidsynth.serve.render import x\n"
            "from vidsynth.runtime.backend import _TORCH\n"
            "import vidsynth.model._hidden\n"
        ),
        "train": "from vidsynth import cluster\n",
    }.items():
        (fake / folder).mkdir(parents=True)
        (fake / folder / "bad.py").write_text(source)
    (fake / "cluster.py").write_text("")
    monkeypatch.setattr(f"{__name__}.PACKAGE", fake)
    layering = sorted(stage(i.module) for i in all_imports() if layering_error(i))
    assert layering == ["batch", "model", "runtime", "train"]
    private = [(i.target, i.names) for i in all_imports() if private_error(i)]
    assert private == [("vidsynth.runtime.backend", ("_TORCH",)), ("vidsynth.model._hidden", ())]


@pytest.mark.parametrize(
    ("module", "target", "broken"),
    [
        ("vidsynth.errors", "vidsynth.model.config", True),
        ("vidsynth.atomic", "vidsynth.errors", False),
        ("vidsynth.export.artifacts", "vidsynth.runtime.backend", True),
        ("vidsynth.bench.run", "vidsynth.train.loop", False),
        ("vidsynth.cli", "vidsynth.bench.run", False),
        ("vidsynth.cli", "vidsynth.cluster", True),
        ("vidsynth.cluster", "vidsynth.runtime.request", True),
    ],
)
def test_ranks(module, target, broken):
    assert (layering_error(Import(module, 1, target, ())) is not None) == broken
