"""Ray Serve, Ray Data and the web page with real components, each scenario file run in a
private network namespace (see serve_support.run_scenarios); skipped with the reason where
Ray or `unshare -n` is not available."""

from serve_support import run_scenarios


def test_serve_app():
    run_scenarios("ray_serve_cases.py", timeout_s=900)


def test_two_node_cluster():
    run_scenarios("ray_cluster_cases.py", timeout_s=900, extra_env={"RAY_AUTH_MODE": "token"})


def test_web_page_in_chromium():
    run_scenarios("browser_cases.py", timeout_s=900)


def test_serve_command_as_users_run_it():
    run_scenarios("ray_cli_cases.py", timeout_s=1200)


def test_live_streams():
    run_scenarios("live_cases.py", timeout_s=900)


def test_batch_command():
    run_scenarios("batch_cli_cases.py", timeout_s=3000)
