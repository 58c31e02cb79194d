"""Serving pieces that need no Ray: request bodies, limits, batched rendering.
The Ray Serve app, the 2-node cluster and the page in a browser: test_serve_ray.py."""

from __future__ import annotations

import io
import json
import pickle
import threading
import zipfile
from dataclasses import replace

import pytest
from click.testing import CliRunner
from serve_support import small_weights

from vidsynth.batch.job import BatchJob
from vidsynth.cli import cli
from vidsynth.errors import InputError
from vidsynth.export import export_weights
from vidsynth.runtime.generate import generate_videos
from vidsynth.runtime.request import GenerateRequest
from vidsynth.runtime.sharing import shares_model_calls
from vidsynth.serve.body import BodyError, package, parse_body
from vidsynth.serve.options import LimitError, ServeLimits
from vidsynth.serve.render import Abandoned, render_requests

SERVER = GenerateRequest(weights="demo", backend="onnxruntime", device="cpu")


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    return small_weights(tmp_path_factory.mktemp("serve-unit") / "weights")


@pytest.fixture(scope="module")
def backend(weights, one_thread):
    from vidsynth.runtime.backend import open_backend

    return open_backend(
        GenerateRequest(weights=weights, backend="onnxruntime", device="cpu"), exporter=export_weights
    )


def test_a_body_becomes_the_servers_request_with_one_video_by_default():
    request = parse_body(b'{"seed": 5, "frames": 9, "format": "gif", "fix": "motion", "category": 1}', SERVER)
    assert request == replace(SERVER, seed=5, frames=9, format="gif", fix="motion", category=1, num_videos=1)
    assert parse_body(b"", SERVER).num_videos == 1


@pytest.mark.parametrize("raw", [b"{", b"[]", b"3", b"\xff"])
def test_a_body_that_is_not_a_json_object_is_a_body_error(raw):
    with pytest.raises(BodyError, match="JSON"):
        parse_body(raw, SERVER)


def test_fields_the_client_may_not_set_are_named():
    with pytest.raises(InputError) as caught:
        parse_body(b'{"weights": "/etc", "out": "/tmp/x"}', SERVER)
    assert caught.value.fields == ("out", "weights") and "expected some of" in str(caught.value)


def test_every_bad_field_is_named_in_one_error():
    with pytest.raises(InputError) as caught:
        parse_body(
            json.dumps(
                {"frames": 0, "fps": float("inf"), "seed": 1.5, "category": "x", "format": "avi"}
            ).encode(),
            SERVER,
        )
    assert set(caught.value.fields) == {"frames", "fps", "seed", "category", "format"}


def test_input_errors_keep_their_fields_when_pickled():
    error = pickle.loads(pickle.dumps(InputError("bad", fields=["frames"])))
    assert type(error) is InputError and error.fields == ("frames",) and str(error) == "bad"
    limit = pickle.loads(pickle.dumps(LimitError("big", fields=["num_videos"])))
    assert type(limit) is LimitError and limit.fields == ("num_videos",)


def test_limits_name_the_field_over_them():
    limits = ServeLimits(max_videos=4, max_total_frames=100)
    limits.check(replace(SERVER, num_videos=4, frames=25))
    with pytest.raises(LimitError) as caught:
        limits.check(replace(SERVER, num_videos=5, frames=25))
    assert set(caught.value.fields) == {"num_videos", "frames"} and "125" in str(caught.value)
    with pytest.raises(InputError, match="max_queued"):
        ServeLimits(max_queued=0).validate()


def test_several_files_are_zipped_in_order_without_dates():
    one = package({"video_000.mp4": b"a"})
    assert (one.filename, one.media_type, one.data) == ("video_000.mp4", "video/mp4", b"a")
    several = package({"video_000.gif": b"a", "video_001.gif": b"bb"})
    assert several.media_type == "application/zip"
    with zipfile.ZipFile(io.BytesIO(several.data)) as archive:
        assert (
            archive.namelist() == ["video_000.gif", "video_001.gif"]
            and archive.read("video_001.gif") == b"bb"
        )
    assert package({"video_000.gif": b"a", "video_001.gif": b"bb"}).data == several.data


def test_requests_sharing_model_calls_get_the_bytes_generate_writes(backend, weights, tmp_path):
    assert shares_model_calls(backend)  # onnxruntime on CPU: stacking videos changes no value
    requests = [
        replace(SERVER, weights=weights, seed=3, frames=10, format="mp4"),
        replace(SERVER, weights=weights, seed=4, frames=10, format="gif", num_videos=2, fix="content"),
        replace(SERVER, weights=weights, seed=5, frames=10, format="png", num_videos=3, category=0),
        replace(SERVER, weights=weights, seed=6, frames=7, format="mp4"),
        replace(SERVER, weights=weights, seed=7, frames=10, category=9),
    ]
    outcomes = render_requests(backend, requests)
    assert isinstance(outcomes[4], InputError) and outcomes[4].fields == ("category",)
    for number, (request, rendered) in enumerate(zip(requests[:4], outcomes)):
        assert files_of(rendered) == generated(request, tmp_path / str(number))


def test_a_request_made_alone_streams_as_generate_does(backend, weights, tmp_path):
    request = replace(SERVER, weights=weights, seed=1, frames=40, chunk_frames=16, format="gif", num_videos=3)
    (rendered,) = render_requests(backend, [request], share_calls=False)
    assert files_of(rendered) == generated(request, tmp_path)


def test_a_render_stops_at_the_next_chunk_once_its_callers_are_gone(backend, weights, monkeypatch, tmp_path):
    gone, calls = threading.Event(), []
    make_chunk = backend.generate_chunk

    def first_call_then_gone(*args):
        calls.append(args)
        gone.set()  # the caller gives up while the first chunk is made
        return make_chunk(*args)

    monkeypatch.setattr(backend, "generate_chunk", first_call_then_gone)
    request = replace(SERVER, weights=weights, seed=1, frames=40, chunk_frames=16, format="gif")
    (outcome,) = render_requests(backend, [request], gone=[gone])
    assert isinstance(outcome, Abandoned) and len(calls) == 1

    # A request that shares the model calls with one still waited for is made whole.
    shared = replace(request, seed=2)
    outcomes = render_requests(backend, [request, shared], gone=[gone, threading.Event()])
    assert files_of(outcomes[1]) == generated(shared, tmp_path)


def generated(request: GenerateRequest, out) -> dict[str, bytes]:
    result = generate_videos(replace(request, out=str(out)), exporter=export_weights)
    return {path.name: path.read_bytes() for path in result.paths}


def files_of(rendered) -> dict[str, bytes]:
    if rendered.media_type != "application/zip":
        return {rendered.filename: rendered.data}
    with zipfile.ZipFile(io.BytesIO(rendered.data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


@pytest.mark.parametrize(
    "args, message",
    [
        (["serve", "--replicas", "0"], "replicas"),
        (["serve", "--fps-typo"], "No such option"),
        (["serve", "--max-queued", "0"], "max_queued"),
        (["serve", "--backend", "nope"], "unknown backend"),
        (["batch", "--out", "x", "--count", "2", "--format", "gif"], "unknown format"),
    ],
)
def test_bad_command_options_fail_before_ray_starts(args, message):
    result = CliRunner().invoke(cli, args)
    assert result.exit_code != 0 and message in result.output


def test_serve_and_batch_pass_every_option_through(monkeypatch):
    import vidsynth.batch.job
    import vidsynth.serve.server
    from vidsynth.serve.options import LiveLimits

    calls = {}
    monkeypatch.setattr(vidsynth.serve.server, "run_server", lambda *args, **kw: calls.update(serve=args))
    monkeypatch.setattr(vidsynth.batch.job, "run_batch", lambda *args, **kw: calls.update(batch=args) or [])
    model = ["--weights", "demo", "--backend", "onnxruntime", "--device", "cpu"]
    serve = ["serve", *model, "--address", "a:1", "--host", "h", "--port", "9", "--replicas", "2"]
    serve += ["--cpus-per-replica", "0.5", "--max-batch", "3", "--max-queued", "7", "--timeout", "9.5"]
    serve += ["--max-streams", "4", "--stream-max-frames", "900", "--stream-lead", "1.5"]
    batch = ["batch", *model, "--out", "o", "--count", "5", "--seed", "1", "--frames", "6", "--fps", "4"]
    batch += ["--format", "npy", "--videos-per-call", "2", "--workers", "3", "--cpus-per-worker", "2"]
    for args in (serve, batch + ["--address", "b:2"]):
        result = CliRunner().invoke(cli, args)
        assert result.exit_code == 0, result.output
    options, address, host, port = calls["serve"]
    request = GenerateRequest(weights="demo", backend="onnxruntime", device="cpu")
    assert (address, host, port, options.model) == ("a:1", "h", 9, request)
    assert (options.replicas, options.cpus_per_replica) == (2, 0.5)
    limits = ServeLimits(max_batch=3, max_ongoing=3, max_queued=7, timeout_s=9.5)
    assert options.limits == limits
    assert options.live == LiveLimits(max_streams=4, max_frames=900, lead_s=1.5)
    job, address = calls["batch"]
    assert address == "b:2" and job == BatchJob(
        out="o",
        count=5,
        model=request,
        seed=1,
        frames=6,
        fps=4.0,
        format="npy",
        videos_per_call=2,
        workers=3,
        cpus_per_worker=2.0,
    )


def test_the_model_card_reads_weights_and_artifacts_without_loading_them(backend, weights, tmp_path):
    from vidsynth.export.artifacts import export_artifacts
    from vidsynth.serve.card import model_card
    from vidsynth.weights import load_model

    def parameter_count(model):
        return sum(p.numel() for p in model.parameters())

    card = model_card(GenerateRequest(weights=weights), backend)
    assert card["parameters"] == parameter_count(load_model(weights))
    assert card["provenance"]["source"] == "test weights" and card["config"]["ngf"] == 8
    assert (card["backend"], card["device"]) == ("onnxruntime", "cpu")
    default = model_card(GenerateRequest(), backend)
    assert (
        default["parameters"] == parameter_count(load_model())
        and default["provenance"]["training_data"]["clips"] == 72
    )
    export_artifacts(weights, tmp_path / "artifacts", formats=("onnx",))
    exported = model_card(GenerateRequest(artifacts=str(tmp_path / "artifacts")), backend)
    assert (
        exported["provenance"]["dtype"] == "fp32" and "export artifacts" in exported["provenance"]["source"]
    )


@pytest.mark.parametrize(
    "raw",
    [b'{"seed": ' + b"9" * 5000 + b"}", b"[" * 100_000 + b"]" * 100_000],
    ids=["5000-digit-integer", "100k-deep-array"],
)
def test_a_huge_number_or_deep_nesting_is_a_body_error(raw):
    with pytest.raises(BodyError, match="too large or nesting too deep"):
        parse_body(raw, SERVER)


def test_a_body_is_read_within_its_size_and_time():
    import asyncio

    from vidsynth.serve.body import SlowBody, read_body

    async def chunks(*parts: bytes, stall: bool = False):
        for part in parts:
            yield part
        if stall:
            await asyncio.sleep(60)

    assert asyncio.run(read_body(chunks(b'{"seed"', b": 1}"), "11", 16, 1)) == b'{"seed": 1}'
    with pytest.raises(LimitError, match="over 16 bytes"):
        asyncio.run(read_body(chunks(b"{}"), str(64 << 20), 16, 1))
    with pytest.raises(LimitError, match="over 16 bytes"):
        asyncio.run(read_body(chunks(b"x" * 10, b"x" * 10), None, 16, 1))
    with pytest.raises(SlowBody, match="0.1 s"):
        asyncio.run(read_body(chunks(b'{"seed": ', stall=True), "100", 16 << 10, 0.1))


def test_replicas_default_to_what_fits_and_too_many_are_refused_naming_the_cpus():
    from vidsynth.errors import VidsynthError
    from vidsynth.serve.options import ServeOptions
    from vidsynth.serve.server import fit_replicas

    assert fit_replicas(ServeOptions(replicas=None), 2, "here").replicas == 2
    assert fit_replicas(ServeOptions(replicas=None, cpus_per_replica=0.5), 2, "here").replicas == 4
    assert fit_replicas(ServeOptions(replicas=2), 2, "here").replicas == 2
    with pytest.raises(VidsynthError, match=r"3 CPUs asked for, but here has 2 CPU\(s\) available"):
        fit_replicas(ServeOptions(replicas=3), 2, "here")
    with pytest.raises(VidsynthError, match="64 CPUs asked for.*lower --cpus-per-replica"):
        fit_replicas(ServeOptions(replicas=None, cpus_per_replica=64), 2, "here")
    # Two nodes of 3 CPUs hold one 2-CPU replica each, though the cluster has 6 CPUs.
    assert fit_replicas(ServeOptions(replicas=None, cpus_per_replica=2), 6, "here", [3, 3]).replicas == 2
    with pytest.raises(VidsynthError, match="on nodes of 3, 3 CPUs.*use --replicas 2 or fewer"):
        fit_replicas(ServeOptions(replicas=3, cpus_per_replica=2), 6, "here", [3, 3])


def test_the_model_card_names_the_weights_without_their_path(backend, weights, tmp_path):
    from vidsynth.serve.card import model_card

    card = model_card(GenerateRequest(weights=weights), backend)
    assert card["weights"] == "weights" and str(tmp_path.parent) not in json.dumps(card)


def test_what_serve_reports_while_deploying_comes_down_to_one_line():
    from vidsynth.serve.server import UNSCHEDULABLE, last_error_line

    notice = (
        "Deployment 'VideoModel' in application 'vidsynth' has 1 replicas that have taken more than 30s "
        "to be scheduled. This may be due to waiting for the cluster to auto-scale. Resources required "
        "for each replica: {'CPU': 1.0}, total resources available: {}. Use `ray status` for more details."
    )
    found = UNSCHEDULABLE.search(notice)
    assert (found["asked"], found["available"]) == ("{'CPU': 1.0}", "{}")
    traceback = "Traceback (most recent call last):\n  File 'x', line 1\nray.exceptions.RayTaskError: x\n"
    traceback += "vidsynth.errors.WeightsError: weights directory nope does not exist\n"
    assert last_error_line(traceback) == "vidsynth.errors.WeightsError: weights directory nope does not exist"
