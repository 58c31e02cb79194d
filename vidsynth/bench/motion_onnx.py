"""A motion-only ONNX graph whose recurrence is ONNX's fused LSTM / GRU operator, built here
from a model's weights: what onnxruntime's recurrent kernels make of the motion generator.
(vidsynth.export writes the recurrence as an ONNX Loop of small ops; this graph is a
benchmark of the alternative, not an export artifact.) Same-input models only."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def _reorder(matrix: np.ndarray, hidden: int, order: list[int]) -> np.ndarray:
    blocks = [matrix[i * hidden : (i + 1) * hidden] for i in range(len(order))]
    return np.concatenate([blocks[i] for i in order], 0)


def motion_graph(model: Any):
    """onnx ModelProto: inputs z_motion (B, d_motion) f32, n_frames int64 scalar -> codes (T, B, d_motion)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    config = model.config
    if config.motion_mode != "same-input":
        raise ValueError("the fused ONNX recurrent operators take one input per step, given in advance: same-input models only")
    motion = model.motion
    hidden = config.hidden_size
    is_lstm = config.cell == "lstm"
    cell = motion.lstm if is_lstm else motion.gru
    # torch gate order -> ONNX gate order: LSTM i,f,g,o -> i,o,f,c; GRU r,z,n -> z,r,h.
    order = [0, 3, 1, 2] if is_lstm else [1, 0, 2]
    w = _reorder(cell.weight_ih.detach().numpy(), hidden, order)[None]
    r = _reorder(cell.weight_hh.detach().numpy(), hidden, order)[None]
    b = np.concatenate([_reorder(cell.bias_ih.detach().numpy(), hidden, order),
                        _reorder(cell.bias_hh.detach().numpy(), hidden, order)])[None]
    scale = 1.0 / np.sqrt(motion.bn.running_var.numpy() + motion.bn.eps)
    out_w = (motion.linear.weight.detach().numpy() * scale[:, None]).T.astype(np.float32)
    out_b = ((motion.linear.bias.detach().numpy() - motion.bn.running_mean.numpy()) * scale).astype(np.float32)
    inits = [numpy_helper.from_array(a.astype(np.float32), n) for a, n in ((w, "W"), (r, "R"), (b, "B"), (out_w, "out_w"), (out_b, "out_b"))]
    inits += [numpy_helper.from_array(np.array([0], np.int64), "axis0"), numpy_helper.from_array(np.array([1], np.int64), "axis1"),
              numpy_helper.from_array(np.array([1], np.int64), "one")]
    nodes = [
        helper.make_node("Shape", ["z_motion"], ["bd"]),
        helper.make_node("Reshape", ["n_frames", "one"], ["t"]),
        helper.make_node("Concat", ["t", "bd"], ["tbd"], axis=0),
        helper.make_node("Unsqueeze", ["z_motion", "axis0"], ["z1"]),
        helper.make_node("Expand", ["z1", "tbd"], ["x"]),
        helper.make_node("LSTM" if is_lstm else "GRU", ["x", "W", "R", "B"], ["y"], hidden_size=hidden,
                         **({} if is_lstm else {"linear_before_reset": 1})),
        helper.make_node("Squeeze", ["y", "axis1"], ["h"]),
        helper.make_node("MatMul", ["h", "out_w"], ["lin"]),
        helper.make_node("Add", ["lin", "out_b"], ["codes"]),
    ]
    graph = helper.make_graph(
        nodes, "motion",
        [helper.make_tensor_value_info("z_motion", TensorProto.FLOAT, ["batch", config.d_motion]),
         helper.make_tensor_value_info("n_frames", TensorProto.INT64, [])],
        [helper.make_tensor_value_info("codes", TensorProto.FLOAT, ["n_frames", "batch", config.d_motion])],
        inits,
    )
    graph_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(graph_model)
    return graph_model


def ort_motion(model: Any, threads: int) -> Callable[[Any, int], np.ndarray]:
    """(z_motion tensor, n_frames) -> codes, through onnxruntime."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(motion_graph(model).SerializeToString(), options, providers=["CPUExecutionProvider"])

    def run(z_motion: Any, n_frames: int) -> np.ndarray:
        feeds = {"z_motion": z_motion.numpy(), "n_frames": np.array(n_frames, dtype=np.int64)}
        return session.run(["codes"], feeds)[0]

    return run
