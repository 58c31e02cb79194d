"""Optional dependencies, imported on first use with an error that says what to install."""
from __future__ import annotations

from types import ModuleType

from vidsynth.errors import MissingDependencyError

ONNXRUNTIME_HINT = "pip install 'vidsynth[cpu]' (onnxruntime) or 'vidsynth[gpu]' (onnxruntime-gpu), not both"


def import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(f"onnxruntime is not installed: {ONNXRUNTIME_HINT}") from None
    return onnxruntime


OPENVINO_HINT = "pip install 'vidsynth[openvino]' (openvino)"


def import_openvino() -> ModuleType:
    """The OpenVINO runtime (openvino.Core and friends) only: its model converter
    (openvino.tools.ovc), where the wheel's telemetry lives, is never imported."""
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError(f"openvino is not installed (--backend openvino needs it): {OPENVINO_HINT}") from None
    return openvino


def import_imageio_ffmpeg() -> ModuleType:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise MissingDependencyError(
            "imageio-ffmpeg is not installed (mp4 output needs it): pip install imageio-ffmpeg, "
            "or choose --format gif or png"
        ) from None
    return imageio_ffmpeg
