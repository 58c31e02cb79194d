"""Shared by the serving tests: small weights, loopback HTTP, and running Ray scenarios in a
private network namespace (Ray 2.60 rewrites 127.0.0.1 to the host's address; inside
`unshare -n` only loopback exists, so every connection stays on it)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NETNS_ENV = "VIDSYNTH_TEST_NETNS"  # set in the scenario subprocess


def small_weights(directory: Path, n_categories: int = 2) -> str:
    """64x64 ngf=8 conditional demo-style weights: fast, and with categories to check."""
    from vidsynth.model.config import ModelConfig
    from vidsynth.weights.demo import demo_model
    from vidsynth.weights.format import save_weights

    model = demo_model(ModelConfig(image_size=64, ngf=8, n_categories=n_categories))
    save_weights(model, directory, {"source": "test weights", "note": "seeded random, untrained"})
    return str(directory)


def http(
    method: str, url: str, body: bytes | str | None = None, timeout: float = 120
) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one loopback request; error statuses are returned, not raised."""
    assert url.startswith("http://127.0.0.1:"), url
    data = body.encode() if isinstance(body, str) else body
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def post_json(url: str, payload) -> tuple[int, dict, bytes]:
    return http("POST", url, json.dumps(payload))


def unshare_problem() -> str | None:
    """Why Ray scenarios cannot run here, or None."""
    for module in ("ray", "fastapi"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[serve,batch]')"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare/ip not found: Ray tests need a private network namespace (util-linux, iproute2)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        said = probe.stderr.strip() or "unshare -n failed"
        return f"cannot create a network namespace ({said}); run the tests as root"
    return None


SUMMARY_COUNT = re.compile(r"(\d+) (passed|failed|errors?|skipped|xfailed|xpassed)")
SKIP_REASON = re.compile(r"^SKIPPED \[\d+\] (.+)$", re.MULTILINE)


def scenario_outcome(returncode: int, stdout: str) -> tuple[str, str]:
    """("passed" | "skipped" | "failed", why) of a scenario run of pytest: a run passes only
    with no failure or error and at least one pass; it is skipped only when every test was
    skipped, and then `why` lists the reasons pytest printed (-rs)."""
    lines = stdout.strip().splitlines()
    counts: dict[str, int] = {}
    for number, word in SUMMARY_COUNT.findall(lines[-1] if lines else ""):
        counts[word.rstrip("s") if word.startswith("error") else word] = int(number)
    if returncode == 0 and counts.get("passed", 0) > 0:
        return "passed", ""
    bad = counts.get("failed", 0) + counts.get("error", 0)
    if returncode == 0 and not bad and counts.get("skipped", 0) > 0:
        return "skipped", "; ".join(dict.fromkeys(SKIP_REASON.findall(stdout))) or "no reason given"
    return "failed", f"pytest exited {returncode} ({lines[-1] if lines else 'no output'})"


def _scenario_run(case_file: str, extra_env: dict | None) -> dict:
    """Popen arguments that run tests/`case_file` with pytest in a private network namespace."""
    # xdist's variables stay out: the scenario's own pytest runs in one process (-n 0).
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST") and k != RESULTS_ENV},
        NETNS_ENV: "1",
        "RAY_USAGE_STATS_ENABLED": "0",
        **(extra_env or {}),
    }
    command = (
        f"ip link set lo up && exec {sys.executable} -m pytest -q -x -rs "
        f"-n 0 -p no:cacheprovider -p no:warnings tests/{case_file}"
    )
    return dict(
        args=["unshare", "-n", "sh", "-c", command],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _judge(case_file: str, returncode: int, stdout: str, stderr: str) -> None:
    """Fails if any test of the file failed; skips, naming the causes, only if all of them skipped."""
    output = stdout[-6000:] + stderr[-3000:]
    outcome, why = scenario_outcome(returncode, stdout)
    if outcome == "skipped":
        pytest.skip(f"{case_file}: every test skipped: {why}")
    if outcome == "failed":
        pytest.fail(f"{case_file} failed: {why}\n{output}")
    print(output)


def run_scenarios(case_file: str, timeout_s: float, extra_env: dict | None = None) -> None:
    """Runs tests/`case_file` with pytest in a private network namespace (loopback only) and
    judges it (see _judge)."""
    problem = unshare_problem()
    if problem:
        pytest.skip(problem)
    try:
        result = subprocess.run(**_scenario_run(case_file, extra_env), timeout=timeout_s)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"{case_file} ran past {timeout_s} s:\n{(exc.stdout or '')[-4000:]}")
    _judge(case_file, result.returncode, result.stdout, result.stderr)


@dataclass(frozen=True)
class Scenario:
    name: str
    case_file: str
    timeout_s: float = 900
    extra_env: dict = field(default_factory=dict)


# The Ray scenario files (tests/test_serve_ray.py), the longest first: it overlaps the most.
SCENARIOS = [
    Scenario("batch_command", "batch_cli_cases.py", timeout_s=3000),
    Scenario("batch_stopped", "batch_stop_cases.py", timeout_s=3000),
    Scenario("two_node_cluster", "ray_cluster_cases.py", extra_env={"RAY_AUTH_MODE": "token"}),
    Scenario("serve_app", "ray_serve_cases.py"),
    Scenario("serve_command_as_users_run_it", "ray_cli_cases.py", timeout_s=1200),
    Scenario("live_streams", "live_cases.py"),
]
RESULTS_ENV = "VIDSYNTH_SCENARIO_RESULTS"  # under xdist: where the controller's runs leave results


class _BackgroundRun:
    def __init__(self, case_file: str, timeout_s: float, extra_env: dict | None) -> None:
        self.case_file, self.timeout_s, self.extra_env = case_file, timeout_s, extra_env
        self.process: subprocess.Popen | None = None
        self.result: tuple[int, str, str] | None = None
        self.timed_out = False
        self.done = threading.Event()


class BackgroundScenarios:
    """Scenario files started as soon as the suite is collected, LANES at a time, so that
    their waits on Ray and servers overlap the rest of the suite; the test of each file waits
    for its result. Every file runs in its own network namespace, so runs cannot meet.

    Under xdist the controller runs them (conftest.py), as it lives as long as the suite, and
    leaves each result in $VIDSYNTH_SCENARIO_RESULTS for the worker whose test judges it."""

    LANES = 2
    NICENESS = 10
    STOP_GRACE_S = 60

    def __init__(self) -> None:
        self.runs: dict[str, _BackgroundRun] = {}
        self.lanes = threading.Semaphore(self.LANES)
        self.stopping = threading.Event()
        self.problem: str | None = None
        self.results: Path | None = None  # where results are left for xdist workers

    def start(self, case_file: str, timeout_s: float, extra_env: dict | None = None) -> None:
        if not self.runs:
            self.problem = unshare_problem()
        if self.problem or case_file in self.runs:
            return
        run = self.runs[case_file] = _BackgroundRun(case_file, timeout_s, extra_env)
        threading.Thread(target=self._run, args=(run,), daemon=True).start()

    def start_for_workers(self, ids: list[str], results: Path) -> None:
        """In the xdist controller: starts the scenarios among the workers' collected `ids`."""
        self.results = results
        for scenario in SCENARIOS:
            if any(f"::test_scenario_file[{scenario.name}]" in test_id for test_id in ids):
                self.start(scenario.case_file, scenario.timeout_s, scenario.extra_env)

    def _run(self, run: _BackgroundRun) -> None:
        try:
            with self.lanes:
                if self.stopping.is_set():
                    return
                # Its own session: stop() and a timeout end this run's processes and no other.
                # Niced, though where the kernel groups each session for scheduling
                # (kernel.sched_autogroup_enabled) sessions share the CPU evenly whatever
                # their nice values.
                arguments = _scenario_run(run.case_file, run.extra_env)
                arguments["args"] = ["nice", "-n", str(self.NICENESS), *arguments["args"]]
                run.process = subprocess.Popen(**arguments, start_new_session=True)
                try:
                    stdout, stderr = run.process.communicate(timeout=run.timeout_s)
                except subprocess.TimeoutExpired:
                    run.timed_out = True
                    self._end(run.process)
                    stdout, stderr = run.process.communicate()
                run.result = (run.process.returncode, stdout, stderr)
        finally:
            run.done.set()
            if self.results is not None:
                staged = self.results / f".{run.case_file}.json"
                staged.write_text(json.dumps({"result": run.result, "timed_out": run.timed_out}))
                staged.rename(self.results / f"{run.case_file}.json")

    def _end(self, process: subprocess.Popen) -> None:
        """Ctrl-C first, so the scenario's fixtures stop what they started; then SIGKILL."""
        for sig in (signal.SIGINT, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
                process.wait(self.STOP_GRACE_S)
                return
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue

    def finish(self, case_file: str, timeout_s: float, extra_env: dict | None = None) -> None:
        """Judges the background run of `case_file` (this process's, or the xdist controller's),
        or runs it now where none was started."""
        shared = os.environ.get(RESULTS_ENV)
        if shared and case_file not in self.runs:
            problem = unshare_problem()
            if problem:
                pytest.skip(problem)
            result, timed_out = _left_result(Path(shared) / f"{case_file}.json")
        else:
            if self.problem:
                pytest.skip(self.problem)
            run = self.runs.get(case_file)
            if run is None:
                run_scenarios(case_file, timeout_s, extra_env)
                return
            run.done.wait()
            result, timed_out = run.result, run.timed_out
        if result is None:
            pytest.fail(f"{case_file} did not run (the suite was stopping)")
        if timed_out:
            pytest.fail(f"{case_file} ran past {timeout_s} s:\n{result[1][-4000:]}")
        _judge(case_file, *result)

    def stop(self) -> None:
        self.stopping.set()
        for run in self.runs.values():
            if run.process is not None and run.process.poll() is None:
                self._end(run.process)


BACKGROUND = BackgroundScenarios()
CONTROLLER = os.getppid()  # in an xdist worker: the controller, which runs the scenarios


def _left_result(path: Path) -> tuple[tuple[int, str, str] | None, bool]:
    """(result, timed out) that the xdist controller left at `path`, once it is there."""
    while not path.exists():
        if os.getppid() != CONTROLLER:
            pytest.fail(f"the controller ended before {path.name} was written")
        time.sleep(1)
    left = json.loads(path.read_text())
    return (tuple(left["result"]) if left["result"] else None), left["timed_out"]


def require_netns() -> None:
    """Scenario files run only inside run_scenarios's namespace."""
    if os.environ.get(NETNS_ENV) != "1":
        pytest.skip("run through tests/test_serve_ray.py (private network namespace)")


VIDSYNTH = shutil.which("vidsynth")


def vidsynth(*args: str) -> list[str]:
    assert VIDSYNTH, "the vidsynth entry point is not installed (pip install -e .)"
    return [VIDSYNTH, *args]


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class Serve:
    """`vidsynth serve ...` in its own session (so a "Ctrl-C" reaches its whole process group,
    as at a terminal), its merged stdout and stderr collected line by line."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            vidsynth("serve", *args),
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, prefix: str, timeout_s: float = 600) -> str:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            found = [line for line in self.lines if line.startswith(prefix)]
            if found:
                return found[0]
            assert self.process.poll() is None, f"vidsynth serve exited early:\n{self.output()}"
            time.sleep(0.2)
        raise AssertionError(f"no {prefix!r} line within {timeout_s} s:\n{self.output()}")

    def stop(self, signum: int, group: bool, timeout_s: float = 120) -> int:
        """Sends `signum` (to the process group: a terminal's Ctrl-C) and waits for the exit;
        then every process it started must be gone."""
        started = descendants(self.process.pid)
        if group:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        try:
            status = self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"still running {timeout_s} s after signal {signum}:\n{self.output()}"
            ) from None
        self.reader.join(10)
        deadline = time.monotonic() + 30
        while any(alive(pid) for pid in started) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not [pid for pid in started if alive(pid)], "processes left running after the server stopped"
        return status

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
