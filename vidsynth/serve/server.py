"""`vidsynth serve`: check what will be deployed, start (or join) Ray sized to it, deploy the
app, print the URL, and on Ctrl-C or SIGTERM take down what this process started."""

from __future__ import annotations

import logging
import re
import socket
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import replace

from vidsynth.cluster import fitting, import_ray, import_serve, node_cpus, start_ray
from vidsynth.errors import VidsynthError
from vidsynth.runtime.hardware import usable_cpus
from vidsynth.runtime.request import GenerateRequest
from vidsynth.serve.options import ServeOptions
from vidsynth.signals import stop_signals_raise

logger = logging.getLogger(__name__)

APP_NAME = "vidsynth"
READY_TIMEOUT_S = 600.0  # replicas load the model (and may export it to ONNX) before ready
POLL_S = 0.5
UNSCHEDULABLE = re.compile(
    r"to be scheduled.*Resources required for each replica: (?P<asked>.*?), "
    r"total resources available: (?P<available>.*?)\. ",
    re.S,
)


def deploy(options: ServeOptions, host: str, port: int, name: str = APP_NAME, route_prefix: str = "/") -> str:
    """Deploys the app on the running Ray instance; returns its URL once /healthz answers 200,
    and raises as soon as Serve says the app failed to deploy or a replica cannot be scheduled.
    Serve's HTTP options are set by the first app deployed on an instance."""
    from ray.serve.api import RunTarget

    from vidsynth.serve.app import build_app

    serve = import_serve()
    app = build_app(options)
    # No proxy timeout: a live stream may last for ever; /v1/videos keeps its own (limits.timeout_s).
    serve.start(http_options={"host": host, "port": port, "request_timeout_s": None})
    serve.run_many(
        [RunTarget(app, name=name, route_prefix=route_prefix)], wait_for_applications_running=False
    )
    url = f"http://{host}:{port}{route_prefix.rstrip('/')}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        check_deployment(name)
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=10) as response:
                if response.status == 200:
                    return url
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise VidsynthError(f"the server at {url} did not become ready within {READY_TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def check_deployment(name: str) -> None:
    """Raises as soon as Serve's status says app `name` will not become ready."""
    status = import_serve().status().applications.get(name)
    if status is None:
        return
    if status.status in ("DEPLOY_FAILED", "UNHEALTHY"):
        raise VidsynthError(f"the {name} app failed to deploy: {last_error_line(status.message)}")
    for deployment, info in status.deployments.items():
        found = UNSCHEDULABLE.search(info.message)  # Serve's notice after 30 s without resources
        if found:
            raise VidsynthError(
                f"the {deployment} replicas cannot be scheduled: each asks for {found['asked']}, "
                f"the cluster has {found['available']} available; use fewer --replicas or --cpus-per-replica"
            )


def last_error_line(message: str) -> str:
    """The exception line of a traceback Serve reports (its last `SomeError: ...` line)."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    errors = [
        line for line in lines if line.split(":", 1)[0].rsplit(".", 1)[-1].endswith(("Error", "Exception"))
    ]
    return (errors or lines or ["no reason given"])[-1][:500]


def fit_replicas(options: ServeOptions, cpus: float, where: str, nodes: Sequence[float] = ()) -> ServeOptions:
    """`options` with replicas set to as many as fit `cpus` when not given; raises when the
    replicas asked for (or a single one) do not fit. With `nodes` (each node's CPUs), they
    must also fit node by node: a replica runs on one node."""
    per = options.cpus_per_replica
    fit = fitting([cpus], per)
    packed = f"{cpus:g} CPU(s) available"
    by_node = fitting(nodes, per)
    if nodes and by_node < fit:
        fit = by_node
        packed += f" on nodes of {', '.join(f'{n:g}' for n in nodes)} CPUs (a replica runs on one node)"
    replicas = options.replicas if options.replicas is not None else max(fit, 1)
    if replicas > fit:
        hint = f"use --replicas {fit} or fewer" if fit >= 1 else "lower --cpus-per-replica"
        raise VidsynthError(
            f"{replicas} replica(s) x {per:g} CPU(s) = {replicas * per:g} CPUs asked for, but {where} has "
            f"{packed}; {hint}"
        )
    return replace(options, replicas=replicas)


def check_model_source(model: GenerateRequest) -> None:
    """Opens the weights (checksums, config, tensor shapes) or checks the export's manifest and
    hashes here, so a bad source fails with its own message before anything is deployed."""
    if model.artifacts is not None:
        from vidsynth.runtime.backend import Artifacts

        Artifacts(model.artifacts)
    else:
        from vidsynth.weights import load_model

        load_model(model.weights)


def check_port_free(host: str, port: int) -> None:
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            # As the server will bind: connections of an earlier server still closing do not count.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise VidsynthError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another --port"
        ) from None


def run_server(options: ServeOptions, address: str | None, host: str, port: int) -> None:
    """Serves until SIGINT or SIGTERM, then takes down the app and (if it started it) Ray.
    What can be checked without Ray (options, weights or artifacts, port, CPUs) is checked first."""
    options.validate()
    fitted = options.replicas is None
    cpus: float | None = None
    if address is None:
        check_port_free(host, port)
        cpus = usable_cpus()
        options = fit_replicas(options, cpus, "this machine")
    check_model_source(options.model)
    ray = import_ray()
    serve = import_serve()
    with stop_signals_raise():
        try:
            start_ray(address, num_cpus=cpus)
            with stop_signals_raise():  # again: ray.init installs its own SIGTERM handler
                if address is not None:
                    cpus = ray.available_resources().get("CPU", 0.0)
                    options = fit_replicas(options, cpus, f"the Ray cluster at {address}", node_cpus())
                fit = f" (as many as fit {cpus:g} CPUs; --replicas sets another number)" if fitted else ""
                logger.info(
                    "starting %d replica(s) x %g CPU%s", options.replicas, options.cpus_per_replica, fit
                )
                url = deploy(options, host, port)
                logger.info(
                    "vidsynth serving %s (POST /v1/videos, POST /v1/streams, GET /v1/model, the page at /); "
                    "Ctrl-C stops",
                    url,
                )
                while True:
                    time.sleep(POLL_S)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM (Terminated): a server's normal way to stop
            logger.info("stopping")
        finally:
            if ray.is_initialized():
                if address is not None and APP_NAME in serve.status().applications:
                    serve.delete(APP_NAME)  # a shared cluster: remove our app, leave Serve to its owner
                # A local Ray goes down whole with ray.shutdown; Serve's own shutdown would only
                # add Ray's complaints about the controller it kills.
                ray.shutdown()
