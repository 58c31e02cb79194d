"""Optional dependencies, imported on first use with an error that says what to install."""
from __future__ import annotations

import os
from types import ModuleType
from typing import Any, Sequence, Union

from vidsynth.errors import MissingDependencyError

ONNXRUNTIME_HINT = "pip install 'vidsynth[cpu]' (onnxruntime) or 'vidsynth[gpu]' (onnxruntime-gpu), not both"
CPU_PROVIDER = "CPUExecutionProvider"


def import_onnxruntime() -> ModuleType:
    try:
        import onnxruntime
    except ImportError:
        raise MissingDependencyError(f"onnxruntime is not installed: {ONNXRUNTIME_HINT}") from None
    return onnxruntime


def onnxruntime_session(
    model: Union[str, os.PathLike, bytes], providers: Sequence[str] = (CPU_PROVIDER,), threads: int = 0
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
