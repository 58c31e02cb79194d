"""Export a generator to TorchScript and ONNX, validated against eager PyTorch.

Importing this package stays torch-free (the ONNX Runtime script reads manifests through
`vidsynth.artifacts.manifest`); the exporters load on first use.
"""

from vidsynth.artifacts.manifest import read_manifest

__all__ = ["export_artifacts", "read_manifest"]


def __getattr__(name: str):
    if name == "export_artifacts":
        from vidsynth.export import artifacts

        return getattr(artifacts, name)
    raise AttributeError(f"module 'vidsynth.export' has no attribute {name!r}")
