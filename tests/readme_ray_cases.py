"""The Ray commands of README.md and docs/ (`vidsynth serve` and the curl lines that talk to it,
`vidsynth batch`), run through the `vidsynth` entry point inside the private network namespace
of serve_support.run_scenarios. tests/test_readme.py hands the job over in $VIDSYNTH_README_JOB
and checks what came back in the job's result file.

A job: {"dir": working directory, "server": a command that serves until SIGTERM (or null),
"ready_timeout": seconds to wait for its URL, "commands": curl or vidsynth commands run in
order, "result": path of the JSON result}. curl lines are sent as curl sends them (urllib,
curl's content type for -d); their bodies go where -o says, or into the result. A curl line
piped into a player (`| ffplay -`) is read as a player reads it, for PLAYER_S seconds (an
endless stream never ends), into PLAYER_FILE.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from serve_support import REPO, require_netns

require_netns()

READY_LINE = "vidsynth serving "
STOP_TIMEOUT_S = 120
PLAYER_S = 5.0
PLAYER_FILE = "player-input.mp4"


def _env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path}


def _argv(command: str) -> list[str]:
    words = shlex.split(command)
    if words[0] == "vidsynth":
        words[0] = shutil.which("vidsynth") or "vidsynth"
    return words


def _net_namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def _others_in_this_namespace() -> list[int]:
    """Every process in this private namespace but this one: all of them were started here."""
    own, me = _net_namespace("self"), os.getpid()
    return [
        int(entry.name)
        for entry in Path("/proc").iterdir()
        if entry.name.isdigit() and int(entry.name) != me and _net_namespace(entry.name) == own
    ]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _curl(command: str, workdir: Path) -> dict:
    words = shlex.split(command)
    player = "|" in words
    if player:
        assert words[words.index("|") + 1 :] == ["ffplay", "-"], command
        words = words[: words.index("|")]
    output, data, url = PLAYER_FILE if player else None, None, None
    i = 1
    while i < len(words):
        if words[i] == "-o":
            output, i = words[i + 1], i + 2
        elif words[i] == "-d":
            data, i = words[i + 1], i + 2
        elif words[i].startswith("-"):
            i += 1  # -sN: quiet, unbuffered
        else:
            url, i = words[i], i + 1
    assert url and url.startswith("http://127.0.0.1:"), command
    headers = {"User-Agent": "curl/8", "Accept": "*/*"}
    if data is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"  # what curl -d sends
    request = urllib.request.Request(url, data=None if data is None else data.encode(), headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=300) as response:
            status, head = response.status, dict(response.headers)
            body = _play(response) if player else response.read()
    except urllib.error.HTTPError as error:
        status, head, body = error.code, dict(error.headers), error.read()
    record = {"command": command, "status": status, "headers": {k.lower(): v for k, v in head.items()}}
    if output is None:
        record["body"] = body.decode(errors="replace")
    else:
        (workdir / output).write_bytes(body)  # curl writes the body whatever the status
        record["file"] = output
    return record


def _play(response) -> bytes:
    """What a player reading the response gets in PLAYER_S seconds, then it hangs up."""
    data, deadline = [], time.monotonic() + PLAYER_S
    while time.monotonic() < deadline and (piece := response.read1(1 << 16)):
        data.append(piece)
    return b"".join(data)


def _run(command: str, workdir: Path) -> dict:
    result = subprocess.run(
        _argv(command), cwd=workdir, env=_env(), capture_output=True, text=True, timeout=1200
    )
    return {
        "command": command,
        "rc": result.returncode,
        "stdout": result.stdout[-4000:],
        "stderr": result.stderr[-4000:],
    }


def _serve(job: dict, workdir: Path, result: dict) -> None:
    server = subprocess.Popen(
        _argv(job["server"]),
        cwd=workdir,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(server.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + job["ready_timeout"]
        while time.monotonic() < deadline and server.poll() is None:
            if any(line.startswith(READY_LINE) for line in list(lines)):
                break
            time.sleep(0.2)
        result["ready_line"] = next(
            (line.strip() for line in list(lines) if line.startswith(READY_LINE)), None
        )
        result["ready"] = result["ready_line"] is not None
        if result["ready"]:
            result["commands"] = [
                _curl(command, workdir) if command.startswith("curl ") else _run(command, workdir)
                for command in job["commands"]
            ]
            server.send_signal(signal.SIGTERM)
            try:
                result["exit_after_sigterm"] = server.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                result["exit_after_sigterm"] = None
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        reader.join(timeout=10)
        result["server_output"] = "".join(lines)[-6000:]


def test_job():
    job = json.loads(os.environ["VIDSYNTH_README_JOB"])
    workdir = Path(job["dir"])
    result: dict = {}
    try:
        if job.get("server"):
            _serve(job, workdir, result)
        else:
            result["commands"] = [_run(command, workdir) for command in job["commands"]]
    finally:
        deadline = time.monotonic() + 30  # what the commands started has this long to leave
        while [pid for pid in _others_in_this_namespace() if _alive(pid)] and time.monotonic() < deadline:
            time.sleep(0.5)
        result["left_running"] = []
        for pid in [pid for pid in _others_in_this_namespace() if _alive(pid)]:
            try:
                result["left_running"].append(
                    Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")[:200]
                )
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass  # it left meanwhile
        Path(job["result"]).write_text(json.dumps(result, indent=2))
