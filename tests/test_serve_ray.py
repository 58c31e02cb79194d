"""Ray Serve, Ray Data and the web page with real components, each scenario file run in a
private network namespace (see serve_support.run_scenarios); skipped with the reason where
Ray or `unshare -n` is not available. The files start in the background as soon as the suite
is collected (serve_support.BackgroundScenarios, started by conftest.py)."""

import pytest
from serve_support import BACKGROUND


def scenario(case_file: str, name: str, timeout_s: float = 900, **extra_env: str):
    marker = pytest.mark.scenario(case_file, timeout_s=timeout_s, extra_env=extra_env)
    return pytest.param(case_file, marks=marker, id=name)


# The longest first: it overlaps the most of the rest of the suite.
@pytest.mark.parametrize(
    "case_file",
    [
        scenario("batch_cli_cases.py", "batch_command", timeout_s=3000),
        scenario("ray_serve_cases.py", "serve_app"),
        scenario("ray_cli_cases.py", "serve_command_as_users_run_it", timeout_s=1200),
        scenario("live_cases.py", "live_streams"),
        scenario("ray_cluster_cases.py", "two_node_cluster", RAY_AUTH_MODE="token"),
    ],
)
def test_scenario_file(case_file, request):
    BACKGROUND.finish(case_file, **request.node.get_closest_marker("scenario").kwargs)
