"""Optional dependencies, imported on first use with an error that says what to install."""
from __future__ import annotations

import sys
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
    """The openvino package, imported with its telemetry off.

    Importing openvino also imports its model converter (openvino.tools.ovc), which starts
    the openvino_telemetry client at import: it writes a client id under ~/intel and would
    send usage events from the converter (which vidsynth never calls). When openvino_telemetry
    cannot be imported the converter uses its own no-op stub, so it is hidden for the
    duration of that first import. `opt_in_out --opt_out` (docs.openvino.ai, "OpenVINO
    Telemetry") turns it off machine-wide for every OpenVINO tool.
    """
    hide = "openvino" not in sys.modules and "openvino_telemetry" not in sys.modules
    if hide:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # makes its import fail
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError(f"openvino is not installed (--backend openvino needs it): {OPENVINO_HINT}") from None
    finally:
        if hide:
            del sys.modules["openvino_telemetry"]
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
