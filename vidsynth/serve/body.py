"""HTTP request bodies to GenerateRequests, and finished files to response bodies.

A body is a JSON object with some of the fields a client may set; everything else (weights,
backend, device, output directory) is the server's. Values are checked by
GenerateRequest.validate, the same check `vidsynth generate` runs."""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, replace

from vidsynth.errors import InputError
from vidsynth.runtime.request import GenerateRequest

CLIENT_FIELDS = ("seed", "frames", "fps", "format", "category", "fix", "num_videos")
DEFAULT_NUM_VIDEOS = 1  # a request is usually for one video to watch
MEDIA_TYPES = {"mp4": "video/mp4", "gif": "image/gif", "png": "image/png", "zip": "application/zip"}
ZIP_NAME = "videos.zip"


class BodyError(InputError):
    """A body that is not a JSON object (HTTP 400, before any field is looked at)."""


def parse_body(raw: bytes, server: GenerateRequest) -> GenerateRequest:
    """The validated request for `raw` (a JSON object of CLIENT_FIELDS) on top of the
    server's own settings. Raises BodyError or InputError naming the fields at fault."""
    try:
        payload = json.loads(raw or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BodyError(
            f'the request body is not valid JSON ({exc}); expected a JSON object such as {{"seed": 1}}'
        ) from None
    if not isinstance(payload, dict):
        raise BodyError(f"the request body must be a JSON object, got {type(payload).__name__}")
    unknown = sorted(set(payload) - set(CLIENT_FIELDS))
    if unknown:
        raise InputError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; expected some of: {', '.join(CLIENT_FIELDS)}",
            fields=unknown,
        )
    values = {"num_videos": DEFAULT_NUM_VIDEOS, **payload}
    return replace(server, **values).validate()


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
