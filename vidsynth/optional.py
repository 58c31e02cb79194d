"""Optional dependencies, imported on first use with an error that says what to install."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Any

from vidsynth.errors import MissingDependencyError

# Hints name the packages, not vidsynth's extras: installing an extra reinstalls vidsynth with
# its dependencies, torch among them, which a torch-free install must not pull in.
ONNXRUNTIME_HINT = "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA), not both"
CPU_PROVIDER = "CPUExecutionProvider"


def import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(f"onnxruntime is not installed: {ONNXRUNTIME_HINT}") from None
    return onnxruntime


OPENVINO_HINT = "pip install openvino"


def import_openvino() -> ModuleType:
    """The openvino package, with openvino_telemetry hidden during the first import: its model
    converter (imported with it) would otherwise start that client, which writes a client id
    under ~/intel and sends usage events; without the package it uses a no-op stub."""
    hide = "openvino" not in sys.modules and "openvino_telemetry" not in sys.modules
    if hide:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # makes its import fail
    try:
        import openvino
    except ImportError:
        raise MissingDependencyError(
            f"openvino is not installed (--backend openvino needs it): {OPENVINO_HINT}"
        ) from None
    finally:
        if hide:
            del sys.modules["openvino_telemetry"]
    return openvino


def onnxruntime_session(
    model: str | os.PathLike | bytes, providers: Sequence[str] = (CPU_PROVIDER,), threads: int = 0
) -> Any:
    """An onnxruntime InferenceSession of a file or serialized model: `threads` intra-op threads
    (0: onnxruntime's default). This session only logs errors: the graph optimiser's notes about
    a Loop body's shared initialisers are warnings that concern no user."""
    ort = import_onnxruntime()
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = threads
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=options, providers=list(providers))
