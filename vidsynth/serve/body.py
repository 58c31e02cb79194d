"""HTTP request bodies to GenerateRequests, and finished files to response bodies.

A body is a JSON object with some of the fields a client may set; everything else (weights,
backend, device, output directory) is the server's. Values are checked by
GenerateRequest.validate, the same check `vidsynth generate` runs."""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

from vidsynth.errors import InputError
from vidsynth.runtime.request import GenerateRequest
from vidsynth.serve.options import LimitError

CLIENT_FIELDS = ("seed", "frames", "fps", "format", "category", "fix", "num_videos")
DEFAULT_NUM_VIDEOS = 1  # a request is usually for one video to watch
MEDIA_TYPES = {"mp4": "video/mp4", "gif": "image/gif", "png": "image/png", "zip": "application/zip"}
ZIP_NAME = "videos.zip"


class BodyError(InputError):
    """A body that is not a JSON object (HTTP 400, before any field is looked at)."""


class SlowBody(InputError):
    """A body that did not arrive within the server's time (HTTP 408)."""


async def read_body(
    chunks: AsyncIterator[bytes], declared: str | None, max_bytes: int, timeout_s: float
) -> bytes:
    """The whole body from `chunks`, refused (LimitError) as soon as its declared length or
    what has arrived is over `max_bytes`, and (SlowBody) if it is not complete in `timeout_s`."""
    too_large = LimitError(
        f'the request body is over {max_bytes} bytes; expected a small JSON object such as {{"seed": 1}}'
    )
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise too_large

    async def collect() -> bytes:
        data = bytearray()
        async for chunk in chunks:
            data += chunk
            if len(data) > max_bytes:
                raise too_large
        return bytes(data)

    try:
        return await asyncio.wait_for(collect(), timeout_s)
    except asyncio.TimeoutError:
        raise SlowBody(f"the request body did not arrive within {timeout_s:g} s") from None


def parse_body(raw: bytes, server: GenerateRequest) -> GenerateRequest:
    """The validated request for `raw` (a JSON object of CLIENT_FIELDS) on top of the
    server's own settings. Raises BodyError or InputError naming the fields at fault."""
    try:
        payload = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(
            f'the request body is not valid JSON ({exc}); expected a JSON object such as {{"seed": 1}}'
        ) from None
    except (ValueError, RecursionError):  # an integer of thousands of digits; nesting too deep
        raise BodyError(
            "the request body holds a number too large or nesting too deep; "
            'expected a JSON object such as {"seed": 1}'
        ) from None
    if not isinstance(payload, dict):
        raise BodyError(f"the request body must be a JSON object, got {type(payload).__name__}")
    unknown = sorted(set(payload) - set(CLIENT_FIELDS))
    if unknown:
        raise InputError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; expected some of: {', '.join(CLIENT_FIELDS)}",
            fields=unknown,
        )
    return replace(server, **{"num_videos": DEFAULT_NUM_VIDEOS, **payload}).validate()


@dataclass(frozen=True)
class Rendered:
    """One response body: a single file, or a zip of several."""

    filename: str
    media_type: str
    data: bytes
    replica: str = ""  # node id/pid of the replica that made it (X-Vidsynth-Replica)
    batch: int = 1  # requests that shared its model calls (X-Vidsynth-Batch)


def package(files: dict[str, bytes]) -> Rendered:
    """One file as itself; several as an uncompressed zip (mp4/gif/png are compressed
    already) holding them under their `vidsynth generate` names, in order."""
    if len(files) == 1:
        ((name, data),) = files.items()
        return Rendered(name, MEDIA_TYPES[name.rsplit(".", 1)[1]], data)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return Rendered(ZIP_NAME, MEDIA_TYPES["zip"], buffer.getvalue())
