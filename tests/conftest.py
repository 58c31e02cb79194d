import pytest
import torch


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
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                                capture_output=True, text=True)
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
