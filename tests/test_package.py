"""Package-level promises: a light import and a working command line."""

import subprocess
import sys

from click.testing import CliRunner

from vidsynth.cli import cli


def test_import_vidsynth_does_not_import_torch():
    code = (
        "import sys, vidsynth, vidsynth.model.config, vidsynth.model.noise, vidsynth.errors; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_loading_weights_leaves_torch_dynamo_unimported():
    """Every command that runs a model loads weights first; torch._dynamo (the compiler) would
    add most of a second torch import to each of them."""
    code = (
        "import sys; from vidsynth.weights import load_model; "
        "from vidsynth.model.generator import parameter_count; "
        "load_model('demo'); load_model('default'); parameter_count(load_model('demo').config); "
        "print('torch._dynamo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_cli_help_lists_commands():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("import", "info"):
        assert command in result.output


def test_info_on_demo_weights():
    result = CliRunner().invoke(cli, ["info", "demo"])
    assert result.exit_code == 0
    assert '"parameters": 3909234' in result.output  # the assignment's 96x96 generator + LSTM


def test_missing_onnxruntime_names_the_extras():
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'onnxruntime': raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from vidsynth.optional import import_onnxruntime\n"
        "from vidsynth.errors import MissingDependencyError\n"
        "try:\n    import_onnxruntime()\nexcept MissingDependencyError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "pip install onnxruntime (CPU) or onnxruntime-gpu (CUDA)" in out
