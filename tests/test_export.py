"""Export: eager PyTorch = TorchScript = ONNX Runtime = OpenVINO on every model family and
shape, for the optimized graphs (the default) and the literal ones (--no-optimize); graphs
that loop instead of unrolling, streaming = one-shot, and self-describing artifacts.

Each model is exported once (module-scoped fixtures); every shape then runs against it.
The OpenVINO numbers need the openvino package (the dev extra installs it).
"""

import hashlib
import itertools
import json

import numpy as np
import onnx
import pytest
import torch

from vidsynth.artifacts.contract import ONNX_CHUNK_FILE, ONNX_FILE, TORCHSCRIPT_FILE, initial_state
from vidsynth.artifacts.torchscript_ops import load_torchscript
from vidsynth.export import export_artifacts, read_manifest
from vidsynth.export.onnx_export import RECURRENT_OPS, export_graph, op_types
from vidsynth.model.config import ModelConfig
from vidsynth.model.noise import sample_noise
from vidsynth.optional import onnxruntime_session
from vidsynth.weights.demo import demo_model

ATOL = 1e-4  # max abs pixel error, video in [-1, 1]
# (batch, frames): one frame, an odd length, a long video; none is the export's example shape.
SHAPES = ((1, 1), (3, 37), (8, 100))
FAMILIES = [
    dict(cell=cell, motion_mode=mode, image_size=size)
    for cell, mode, size in itertools.product(("lstm", "gru"), ("same-input", "feedback"), (64, 96))
]


pytestmark = pytest.mark.usefixtures("one_thread")


def family_id(family: dict) -> str:
    return f"{family['cell']}-{family['motion_mode']}-{family['image_size']}"


def small_model(**changes):
    # demo weights: batch-norm statistics calibrated, so videos have contrast and errors show
    return demo_model(ModelConfig(ngf=8, hidden_size=16, **changes))


def openvino_backend(directory):
    """OpenVINO over an export directory, one thread; skips with the reason when not installed."""
    pytest.importorskip(
        "openvino", reason="openvino is not installed (pip install 'vidsynth[openvino]'); CI installs it"
    )
    from vidsynth.runtime.backend import Artifacts
    from vidsynth.runtime.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(Artifacts(directory), threads=1)


class Exported:
    """One model exported once: its eager copy, the loaded TorchScript and ORT sessions."""

    def __init__(self, model, directory, optimize=True):
        self.model = model
        self.directory = directory
        self.manifest = export_artifacts(model, directory, optimize=optimize)
        self.scripted, self.extra = load_torchscript(directory / TORCHSCRIPT_FILE)
        self.whole = onnxruntime_session(directory / ONNX_FILE, threads=1)
        self.chunk = onnxruntime_session(directory / ONNX_CHUNK_FILE, threads=1)
        self._openvino = None

    @property
    def openvino(self):
        if self._openvino is None:
            self._openvino = openvino_backend(self.directory)
        return self._openvino

    def openvino_stream(self, noise, chunks):
        state = self.openvino.initial_state(noise)
        parts = []
        for n in chunks:
            video, state = self.openvino.generate_chunk(noise, state, n)
            parts.append(video)
        return np.concatenate(parts, axis=1), state

    def eager(self, noise, n_frames):
        category = None if noise.category is None else torch.from_numpy(noise.category)
        with torch.inference_mode():
            return self.model(
                torch.from_numpy(noise.z_content), torch.from_numpy(noise.z_motion), n_frames, category
            ).numpy()

    def torchscript(self, noise, n_frames):
        category = None if noise.category is None else torch.from_numpy(noise.category)
        with torch.inference_mode():
            return self.scripted(
                torch.from_numpy(noise.z_content), torch.from_numpy(noise.z_motion), n_frames, category
            ).numpy()

    def onnx(self, noise, n_frames):
        feed = {
            "z_content": noise.z_content,
            "z_motion": noise.z_motion,
            "n_frames": np.array(n_frames, np.int64),
        }
        if noise.category is not None:
            feed["category"] = noise.category
        return self.whole.run(["video"], feed)[0]

    def onnx_stream(self, noise, chunks):
        """Chunk by chunk through generator_chunk.onnx, first state built as the manifest says."""
        state = initial_state(noise.z_motion, self.manifest["streaming"]["state_size"])
        parts = []
        for n in chunks:
            feed = {"z_content": noise.z_content, "state": state, "n_frames": np.array(n, np.int64)}
            if noise.category is not None:
                feed["category"] = noise.category
            video, state = self.chunk.run(["video", "state_out"], feed)
            parts.append(video)
        return np.concatenate(parts, axis=1), state


@pytest.fixture(scope="module", params=FAMILIES, ids=family_id)
def exported(request, tmp_path_factory):
    model = small_model(**request.param)
    return Exported(model, tmp_path_factory.mktemp(family_id(request.param)) / "art")


# --no-optimize: one family per cell and motion mode, the sizes alternating
LITERAL_FAMILIES = [
    family for family in FAMILIES if (family["cell"] == "lstm") == (family["image_size"] == 96)
]


@pytest.fixture(scope="module", params=LITERAL_FAMILIES, ids=family_id)
def literal_export(request, tmp_path_factory):
    model = small_model(**request.param)
    return Exported(
        model, tmp_path_factory.mktemp("literal-" + family_id(request.param)) / "art", optimize=False
    )


@pytest.fixture(scope="module")
def lstm_export(tmp_path_factory):
    return Exported(small_model(), tmp_path_factory.mktemp("lstm") / "art")


def max_abs(a, b):
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


# -- the equivalence matrix ---------------------------------------------------------------


@pytest.mark.parametrize("batch,n_frames", SHAPES)
def test_eager_torchscript_onnxruntime_agree(exported, batch, n_frames):
    noise = sample_noise(exported.model.config, batch, seed=1000 * batch + n_frames)
    size = exported.model.config.image_size
    eager = exported.eager(noise, n_frames)
    assert eager.shape == (batch, n_frames, 3, size, size)
    assert eager.std() > 0.01  # a flat video would make the comparison vacuous
    scripted = exported.torchscript(noise, n_frames)
    ort_video = exported.onnx(noise, n_frames)
    assert scripted.shape == ort_video.shape == eager.shape
    assert scripted.dtype == ort_video.dtype == np.float32
    assert max_abs(eager, scripted) <= ATOL
    assert max_abs(eager, ort_video) <= ATOL


@pytest.mark.parametrize("batch,n_frames", SHAPES)
def test_openvino_agrees_with_eager(exported, batch, n_frames):
    noise = sample_noise(exported.model.config, batch, seed=1000 * batch + n_frames)
    eager = exported.eager(noise, n_frames)
    video = exported.openvino.generate(noise, n_frames)
    assert video.shape == eager.shape and video.dtype == np.float32
    assert max_abs(eager, video) <= ATOL


@pytest.mark.parametrize("batch,n_frames", SHAPES)
def test_literal_graphs_agree_on_both_runtimes(literal_export, batch, n_frames):
    assert literal_export.manifest["rewrites"] == []
    noise = sample_noise(literal_export.model.config, batch, seed=1000 * batch + n_frames)
    eager = literal_export.eager(noise, n_frames)
    assert max_abs(eager, literal_export.onnx(noise, n_frames)) <= ATOL
    assert max_abs(eager, literal_export.openvino.generate(noise, n_frames)) <= ATOL


def test_literal_streaming_equals_one_shot(literal_export):
    noise = sample_noise(literal_export.model.config, 2, seed=8)
    chunks = (1, 6, 13)
    one_shot = literal_export.eager(noise, sum(chunks))
    assert max_abs(one_shot, literal_export.onnx_stream(noise, chunks)[0]) <= ATOL
    assert max_abs(one_shot, literal_export.openvino_stream(noise, chunks)[0]) <= ATOL


def test_validation_figures_recorded_at_unseen_shapes(exported):
    validation = exported.manifest["validation"]
    export_shape = exported.manifest["export_shape"]
    shapes = [(s["batch"], s["n_frames"]) for s in validation["shapes"]]
    assert len(shapes) == 2
    for batch, n_frames in shapes:
        assert batch != export_shape["batch"] and n_frames != export_shape["n_frames"]
    assert validation["tolerance"]["max_abs"] == ATOL
    assert set(validation["max_abs"]) == {"torchscript", "onnx", "torchscript_streaming", "onnx_streaming"}
    assert all(0 <= error <= ATOL for error in validation["max_abs"].values())


# -- graphs -------------------------------------------------------------------------------


def graph_size(path) -> tuple[int, int]:
    """(nodes, initializer bytes): node and tensor names aside (the exporter prefixes them
    with the module scope on a module's first export only), what a graph holds."""
    graph = onnx.load(str(path)).graph
    return len(op_types(graph)), sum(len(tensor.raw_data) for tensor in graph.initializer)


@pytest.mark.parametrize("optimize", [False, True], ids=["literal", "optimized"])
@pytest.mark.parametrize("streaming", [False, True], ids=["whole", "chunk"])
def test_onnx_graph_loops_and_does_not_grow_with_frames(lstm_export, tmp_path, streaming, optimize):
    from vidsynth.export.rewrites import rewrite_for_export

    model = rewrite_for_export(lstm_export.model)[0] if optimize else lstm_export.model
    sizes = {}
    for batch, n_frames in ((1, 2), (4, 9), (2, 40)):
        path = tmp_path / f"g_{batch}_{n_frames}.onnx"
        export_graph(model, path, opset=17, streaming=streaming, example_shape=(batch, n_frames))
        ops = op_types(onnx.load(str(path)).graph)
        assert RECURRENT_OPS.intersection(ops)
        assert not {op for op in ops if op.startswith(("Random", "Bernoulli", "Multinomial"))}
        sizes[(batch, n_frames)] = graph_size(path)
    assert len(set(sizes.values())) == 1, sizes


def test_onnx_files_describe_themselves(lstm_export):
    config = lstm_export.model.config
    for name in ("generator.onnx", "generator_chunk.onnx"):
        model = onnx.load(str(lstm_export.directory / name))
        meta = {p.key: p.value for p in model.metadata_props}
        assert json.loads(meta["config"]) == config.to_dict()
        assert meta["vidsynth_version"] == lstm_export.manifest["vidsynth_version"]
        assert meta["rewrites"] == ",".join(lstm_export.manifest["rewrites"])
        video = next(o for o in model.graph.output if o.name == "video")
        dims = [d.dim_param or d.dim_value for d in video.type.tensor_type.shape.dim]
        assert dims == ["batch", "n_frames", 3, config.image_size, config.image_size]
    names = [i.name for i in lstm_export.whole.get_inputs()]
    assert names == ["z_content", "z_motion", "n_frames"]
    assert [i.type for i in lstm_export.whole.get_inputs()] == [
        "tensor(float)",
        "tensor(float)",
        "tensor(int64)",
    ]
    assert lstm_export.whole.get_inputs()[2].shape == []
    assert [i.name for i in lstm_export.chunk.get_inputs()] == ["z_content", "state", "n_frames"]
    assert [o.name for o in lstm_export.chunk.get_outputs()] == ["video", "state_out"]


def test_torchscript_file_loops_and_carries_config(lstm_export):
    scripted, extra = lstm_export.scripted, lstm_export.extra
    assert json.loads(extra["config.json"]) == lstm_export.model.config.to_dict()
    assert extra["vidsynth_version"] == lstm_export.manifest["vidsynth_version"]
    assert "prim::Loop" in str(scripted.motion.rollout.graph)
    graph = str(scripted.inlined_graph)
    assert "rand" not in graph and "bernoulli" not in graph


# -- streaming ----------------------------------------------------------------------------


STREAM_CHUNKS = (1, 7, 16, 13)


@pytest.mark.parametrize("runtime", ["onnx", "openvino"])
def test_chunked_streaming_equals_one_shot(exported, runtime):
    noise = sample_noise(exported.model.config, 3, seed=7)
    one_shot = exported.eager(noise, sum(STREAM_CHUNKS))
    with torch.inference_mode():
        _, eager_state = exported.model.generate_chunk(
            torch.from_numpy(noise.z_content),
            exported.model.initial_state(torch.from_numpy(noise.z_motion)),
            sum(STREAM_CHUNKS),
        )
    video, state = getattr(exported, f"{runtime}_stream")(noise, STREAM_CHUNKS)
    assert video.shape == one_shot.shape
    assert max_abs(one_shot, video) <= ATOL
    assert max_abs(eager_state.numpy(), state) <= ATOL


def test_torchscript_streaming_equals_one_shot(exported):
    noise = sample_noise(exported.model.config, 3, seed=7)
    one_shot = exported.eager(noise, sum(STREAM_CHUNKS))
    parts = []
    with torch.inference_mode():
        state = exported.scripted.initial_state(torch.from_numpy(noise.z_motion))
        for n in STREAM_CHUNKS:
            part, state = exported.scripted.generate_chunk(torch.from_numpy(noise.z_content), state, n)
            parts.append(part.numpy())
    assert max_abs(one_shot, np.concatenate(parts, axis=1)) <= ATOL


# -- conditional models -------------------------------------------------------------------


def test_conditional_model_takes_category(tmp_path):
    exported = Exported(small_model(n_categories=4), tmp_path / "art")
    assert [i["name"] for i in exported.manifest["inputs"]] == [
        "z_content",
        "z_motion",
        "n_frames",
        "category",
    ]
    assert [i.name for i in exported.whole.get_inputs()][-1] == "category"
    assert [i.name for i in exported.chunk.get_inputs()][-1] == "category"
    noise = sample_noise(exported.model.config, 3, seed=3, category=1)
    other = sample_noise(exported.model.config, 3, seed=3, category=2)
    eager = exported.eager(noise, 9)
    assert max_abs(eager, exported.onnx(noise, 9)) <= ATOL
    assert max_abs(eager, exported.torchscript(noise, 9)) <= ATOL
    assert max_abs(eager, exported.onnx(other, 9)) > 10 * ATOL  # the category reaches the frames
    video, _ = exported.onnx_stream(noise, (4, 5))
    assert max_abs(eager, video) <= ATOL
    assert max_abs(eager, exported.openvino.generate(noise, 9)) <= ATOL
    assert max_abs(eager, exported.openvino_stream(noise, (4, 5))[0]) <= ATOL


# -- manifest -----------------------------------------------------------------------------


def test_manifest_follows_the_contract(lstm_export):
    manifest = read_manifest(lstm_export.directory)
    assert manifest == lstm_export.manifest
    config = lstm_export.model.config
    assert manifest["format_version"] == 1
    assert manifest["config"] == config.to_dict()
    assert manifest["dtype"] == "fp32" and manifest["opset"] == 17
    assert "dynamo=False" in manifest["onnx_exporter"]
    assert manifest["rewrites"] == ["fold-motion-bn", "fold-image-bn", "fused-recurrence", "sub-pixel-last"]
    assert manifest["torch_version"] == torch.__version__
    assert manifest["inputs"] == [
        {"name": "z_content", "dtype": "float32", "shape": ["batch", config.d_content]},
        {"name": "z_motion", "dtype": "float32", "shape": ["batch", config.d_motion]},
        {"name": "n_frames", "dtype": "int64", "shape": []},
    ]
    assert manifest["outputs"] == [
        {
            "name": "video",
            "dtype": "float32",
            "shape": ["batch", "n_frames", 3, config.image_size, config.image_size],
        }
    ]
    streaming = manifest["streaming"]
    assert streaming["file"] == "generator_chunk.onnx"
    assert streaming["state_size"] == config.state_size
    assert streaming["initial_state"] == "zeros(B, state_size - d_motion) then z_motion"


def test_manifest_hashes_match_the_files(lstm_export):
    files = lstm_export.manifest["files"]
    assert set(files) == {"generator.pt", "generator.onnx", "generator_chunk.onnx"}
    assert sorted(p.name for p in lstm_export.directory.iterdir()) == sorted([*files, "manifest.json"])
    for name, record in files.items():
        data = (lstm_export.directory / name).read_bytes()
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert record["bytes"] == len(data)
