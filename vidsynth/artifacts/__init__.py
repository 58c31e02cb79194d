"""What `vidsynth export` writes and every runtime reads: the contract (file names, inputs and
outputs, dynamic axes, the first streaming state), the manifest, and the checked loaders of the
code-carrying formats (TorchScript's operator set, AOTInductor packages).

Importing this package, contract.py and manifest.py stays torch-free.
"""
