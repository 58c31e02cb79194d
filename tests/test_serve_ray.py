"""Ray Serve, Ray Data and the web page with real components, each scenario file run in a
private network namespace (see serve_support.run_scenarios); skipped with the reason where
Ray or `unshare -n` is not available. The files start in the background as soon as the suite
is collected (serve_support.BackgroundScenarios, started by conftest.py: in this process, or
under xdist in the controller)."""

import pytest
from serve_support import BACKGROUND, SCENARIOS


@pytest.mark.parametrize(
    "case_file",
    [
        pytest.param(
            s.case_file,
            marks=pytest.mark.scenario(s.case_file, timeout_s=s.timeout_s, extra_env=s.extra_env),
            id=s.name,
        )
        for s in SCENARIOS
    ],
)
def test_scenario_file(case_file, request):
    BACKGROUND.finish(case_file, **request.node.get_closest_marker("scenario").kwargs)
