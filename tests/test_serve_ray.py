"""Ray Serve, Ray Data and the web page with real components, each scenario file run in a
private network namespace (see serve_support.run_scenarios); skipped with the reason where
Ray or `unshare -n` is not available. The files start in the background as soon as the suite
is collected (serve_support.BackgroundScenarios, started by conftest.py)."""

import pytest
from serve_support import BACKGROUND


def _finish(request: pytest.FixtureRequest) -> None:
    marker = request.node.get_closest_marker("scenario")
    BACKGROUND.finish(*marker.args, **marker.kwargs)


# The longest first, so the lanes run out together.
@pytest.mark.scenario("batch_cli_cases.py", timeout_s=3000)
def test_batch_command(request):
    _finish(request)


@pytest.mark.scenario("ray_serve_cases.py", timeout_s=900)
def test_serve_app(request):
    _finish(request)


@pytest.mark.scenario("ray_cli_cases.py", timeout_s=1200)
def test_serve_command_as_users_run_it(request):
    _finish(request)


@pytest.mark.scenario("live_cases.py", timeout_s=900)
def test_live_streams(request):
    _finish(request)


@pytest.mark.scenario("ray_cluster_cases.py", timeout_s=900, extra_env={"RAY_AUTH_MODE": "token"})
def test_two_node_cluster(request):
    _finish(request)
