"""The HTTP ingress (FastAPI on Ray Serve) and the application that ties it to VideoModel.

Routes: `POST /v1/videos` (a JSON body of CLIENT_FIELDS -> the encoded file, or a zip of
several), `POST /v1/streams` (the same body -> a live fragmented MP4, serve/live.py) and
`GET /v1/streams` (its counters), `GET /v1/model`, `GET /healthz`, and the web page at `/`.
Validation is the runtime's; this layer maps errors to status codes (refused_response, 503 a
full queue, 504 a timeout), every error body as JSON: {"error": message, "fields": [names]}."""

import asyncio
from dataclasses import replace
from importlib import resources
from typing import Any

from vidsynth.cluster import import_serve

serve = import_serve()

from fastapi import FastAPI, Request  # noqa: E402
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse  # noqa: E402
from ray.serve.exceptions import BackPressureError  # noqa: E402
from ray.serve.handle import DeploymentHandle  # noqa: E402

from vidsynth.errors import InputError, VidsynthError  # noqa: E402
from vidsynth.model.config import ModelConfig  # noqa: E402
from vidsynth.runtime.ffmpeg import STREAM_MEDIA_TYPE  # noqa: E402
from vidsynth.serve.body import BodyError, SlowBody, parse_body, read_body  # noqa: E402
from vidsynth.serve.live import LiveStreams, StreamsBusy  # noqa: E402
from vidsynth.serve.model import VideoModel  # noqa: E402
from vidsynth.serve.options import LimitError, ServeOptions  # noqa: E402

RETRY_AFTER_S = 1


def error_response(
    status: int, message: str, fields: tuple[str, ...] = (), retry_after_s: int | None = None
) -> JSONResponse:
    headers = None if retry_after_s is None else {"Retry-After": str(retry_after_s)}
    return JSONResponse({"error": message, "fields": list(fields)}, status_code=status, headers=headers)


def busy(why: str = "request queue full") -> JSONResponse:
    return error_response(503, f"the server is busy ({why}); retry shortly", retry_after_s=RETRY_AFTER_S)


class TooManyReading(Exception):
    """As many request bodies are arriving as the server reads at once (503)."""


REFUSED_REQUEST = (TooManyReading, InputError)


def refused_response(exc: Exception) -> JSONResponse:
    """The answer to a request refused while its body was read and checked (413: over the
    server's limits, the body's size too)."""
    if isinstance(exc, TooManyReading):
        return busy(str(exc))
    status = {BodyError: 400, SlowBody: 408, LimitError: 413}.get(type(exc), 422)
    return error_response(status, str(exc), exc.fields)


api = FastAPI(title="vidsynth", summary="MoCoGAN videos over HTTP")


@serve.deployment(name="Ingress")
@serve.ingress(api)
class Ingress:
    def __init__(self, model: DeploymentHandle, options: ServeOptions) -> None:
        self.model = model
        self.options = options
        self.page = resources.files("vidsynth.serve").joinpath("page.html").read_text()
        self.card: dict[str, Any] | None = None
        self.live = LiveStreams(options.live, lambda call: self.model.stream_chunk.remote(call))
        self.reading = asyncio.Semaphore(options.limits.max_reading)  # request bodies arriving now

    @api.get("/healthz")
    async def healthz(self) -> dict:
        await self._card()
        return {"status": "ready"}

    @api.get("/v1/model")
    async def model_info(self) -> dict:
        return {**await self._card(), "limits": vars(self.options.limits), "replicas": self.options.replicas}

    @api.get("/", response_class=HTMLResponse)
    async def page(self) -> str:
        return self.page

    @api.post("/v1/videos")
    async def videos(self, request: Request) -> Response:
        limits = self.options.limits
        try:
            generate = parse_body(await self._body(request), self.options.model)
            limits.check(generate)
        except REFUSED_REQUEST as exc:
            return refused_response(exc)
        response = self.model.generate.remote(generate)
        try:
            rendered = await asyncio.wait_for(response, timeout=limits.timeout_s)
        except BackPressureError:
            return busy()
        except asyncio.TimeoutError:
            response.cancel()  # the replica stops making what nobody waits for
            return error_response(
                504,
                f"the request took longer than the server's limit of {limits.timeout_s:g} s; ask for "
                "fewer frames or videos",
            )
        except VidsynthError as exc:  # raised in the replica: Ray wraps it, .cause is ours
            cause = getattr(exc, "cause", exc)
            status = 422 if isinstance(cause, InputError) else 500
            return error_response(status, str(cause), getattr(cause, "fields", ()))
        except Exception as exc:  # a replica that died or a bug: still one JSON answer
            return error_response(
                500, f"internal error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            )
        return Response(
            rendered.data,
            media_type=rendered.media_type,
            headers={
                "Content-Disposition": f'inline; filename="{rendered.filename}"',
                "X-Vidsynth-Replica": rendered.replica,
                "X-Vidsynth-Batch": str(rendered.batch),
            },
        )

    @api.post("/v1/streams")
    async def streams(self, request: Request) -> Response:
        try:
            config = ModelConfig.from_dict((await self._card())["config"])
            stream = self.live.open(await self._body(request), self.options.model, config)
        except StreamsBusy as exc:
            return error_response(503, str(exc), retry_after_s=self.options.live.retry_after_s)
        except REFUSED_REQUEST as exc:
            return refused_response(exc)
        return StreamingResponse(stream.body(), media_type=STREAM_MEDIA_TYPE, headers=stream.headers)

    @api.get("/v1/streams")
    async def streams_info(self) -> dict:
        return self.live.stats()

    async def _body(self, request: Request) -> bytes:
        """The request's body, bounded in size, in time and in how many arrive at once, so slow
        or oversized senders cannot hold the ingress."""
        limits = self.options.limits
        if self.reading.locked():
            raise TooManyReading(f"{limits.max_reading} request bodies arriving at once")
        async with self.reading:
            declared = request.headers.get("content-length")
            return await read_body(request.stream(), declared, limits.max_body_bytes, limits.body_timeout_s)

    async def _card(self) -> dict[str, Any]:
        if self.card is None:
            self.card = await self.model.info.remote()
        return self.card


def build_app(options: ServeOptions):
    """The Ray Serve application for `options` (validated first)."""
    options.validate()
    limits = options.limits
    threads = max(1, round(options.cpus_per_replica))  # intra-op threads matched to the replica's CPUs
    model = serve.deployment(
        VideoModel,
        name="VideoModel",
        num_replicas=options.replicas,
        ray_actor_options={"num_cpus": options.cpus_per_replica},
        max_ongoing_requests=limits.max_ongoing,
        max_queued_requests=limits.max_queued,
    ).bind(replace(options.model, threads=options.model.threads or threads), limits, threads)
    # The ingress only parses and forwards, so it reserves no CPU (every CPU is the replicas')
    # and holds many requests: the bounded queue that answers 503 in JSON is the model's, and
    # bodies still arriving are bounded apart (max_reading). Past the ingress's own bound (far
    # beyond both), Ray's proxy answers 503 in plain text.
    ingress_capacity = max(
        100, 4 * (options.replicas * limits.max_ongoing + limits.max_queued) + limits.max_reading
    )
    return Ingress.options(
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=ingress_capacity,
        max_queued_requests=ingress_capacity,
    ).bind(model, options)
