"""`vidsynth serve`: start (or join) Ray, deploy the app, print the URL, and on Ctrl-C or
SIGTERM take down what this process started."""

from __future__ import annotations

import logging
import signal
import threading
import time
import urllib.request

from vidsynth.cluster import import_ray, import_serve, start_ray
from vidsynth.errors import VidsynthError

logger = logging.getLogger(__name__)

APP_NAME = "vidsynth"
READY_TIMEOUT_S = 600.0  # replicas load the model (and may export it to ONNX) before ready


def deploy(options, host: str, port: int, name: str = APP_NAME, route_prefix: str = "/") -> str:
    """Deploys the app on the running Ray instance; returns its URL once /healthz answers.
    Serve's HTTP options are set by the first app deployed on an instance."""
    from vidsynth.serve.app import build_app

    serve = import_serve()
    app = build_app(options)
    # No proxy timeout: a live stream may last for ever; /v1/videos keeps its own (limits.timeout_s).
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": None})
    serve.run(app, name=name, route_prefix=route_prefix, blocking=False)
    url = f"http://{host}:{port}{route_prefix.rstrip('/')}"
    wait_ready(url)
    return url


def wait_ready(url: str, timeout_s: float = READY_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise VidsynthError(f"the server at {url} did not become ready within {timeout_s:.0f} s")
        time.sleep(0.5)


def run_server(options, address: str | None, host: str, port: int) -> None:
    """Serves until SIGINT or SIGTERM, then shuts down Serve and (if it started it) Ray."""
    ray = import_ray()
    serve = import_serve()
    options.validate()
    stop = threading.Event()
    start_ray(address)
    # ray.init installs its own SIGTERM handler: ours goes in after it. A background job of a
    # non-interactive shell starts with SIGINT ignored, so SIGINT is set explicitly too.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        url = deploy(options, host, port)
        logger.info(
            "vidsynth serving %s (POST /v1/videos, POST /v1/streams, GET /v1/model, the page at /); "
            "Ctrl-C stops",
            url,
        )
        while not stop.wait(0.5):
            pass
        logger.info("stopping")
    finally:
        if address is None:
            serve.shutdown()
        else:  # a shared cluster: remove our app, leave Serve to whoever runs the cluster
            serve.delete(APP_NAME)
        ray.shutdown()
