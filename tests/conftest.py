import os
import shutil
import signal
import tempfile
from pathlib import Path

import pytest
import torch

RUN_SLOW_ENV = "VIDSYNTH_RUN_SLOW"

# Tests send SIGINT as a terminal's Ctrl-C does. A suite started in the background of a
# non-interactive shell inherits SIGINT ignored, and every command it starts would ignore it too.
signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help=f"also run the tests marked slow (as does {RUN_SLOW_ENV}=1)",
    )


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        group_for_workers(items)
    if config.getoption("--run-slow") or os.environ.get(RUN_SLOW_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"slow: run with --run-slow or {RUN_SLOW_ENV}=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


LONGEST_FILE = "test_readme.py"  # the docs' commands, one after another


def group_for_workers(items: list[pytest.Item]) -> None:
    """A file's tests stay on one worker, in their order: module fixtures are built once, and
    the README's commands run in sequence. The longest file is queued first, so that no
    worker is left with it at the end."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group(item.path.name))
    items.sort(key=lambda item: item.path.name != LONGEST_FILE)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    from vidsynth.runtime.hardware import usable_cpus

    return usable_cpus()


def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "numprocesses", None) and not os.environ.get("PYTEST_XDIST_WORKER"):
        from serve_support import RESULTS_ENV

        # The xdist controller: the workers it starts find the scenarios' results here.
        os.environ[RESULTS_ENV] = tempfile.mkdtemp(prefix="vidsynth-scenarios-")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_node_collection_finished(node, ids: list[str]) -> None:
    from serve_support import BACKGROUND, RESULTS_ENV

    BACKGROUND.start_for_workers(ids, Path(os.environ[RESULTS_ENV]))


def pytest_collection_finish(session: pytest.Session) -> None:
    from serve_support import BACKGROUND

    if os.environ.get("PYTEST_XDIST_WORKER"):
        return  # the controller runs them (pytest_xdist_node_collection_finished)
    for item in session.items:
        marker = item.get_closest_marker("scenario")
        if marker is not None and not item.get_closest_marker("skip"):
            BACKGROUND.start(*marker.args, **marker.kwargs)


def pytest_unconfigure(config: pytest.Config) -> None:
    from serve_support import BACKGROUND, RESULTS_ENV

    BACKGROUND.stop()
    if BACKGROUND.results is not None:
        shutil.rmtree(os.environ[RESULTS_ENV], ignore_errors=True)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread per backend: on a small shared machine extra threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def small_tmpfs(tmp_path):
    """mount(name, size) -> a fresh tmpfs of `size` at tmp_path/name: a real full disk, or a
    real mount point / second filesystem. Everything mounted is unmounted in teardown."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs (real full-disk and cross-filesystem faults)")
    mounted = []

    def mount(name: str = "disk", size: str = "200k"):
        point = tmp_path / name
        point.mkdir(exist_ok=True)
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()}); needs root and mount(8)")
        mounted.append(point)
        return point

    yield mount
    for point in reversed(mounted):
        subprocess.run(["umount", "-l", str(point)], check=False)


@pytest.fixture
def dead_pid():
    """The PID of a process that has exited (for stale temp entries of a killed run)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid
