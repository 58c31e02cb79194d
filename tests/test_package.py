"""Package-level promises: a light import and a working command line."""
import subprocess
import sys

from click.testing import CliRunner

from vidsynth.cli import cli


def test_import_vidsynth_does_not_import_torch():
    code = "import sys, vidsynth, vidsynth.config, vidsynth.noise, vidsynth.errors; print('torch' in sys.modules)"
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
