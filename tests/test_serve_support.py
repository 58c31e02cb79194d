"""run_scenarios, the runner of every Ray scenario file: a failure beside a skip fails, and a
skip names its causes."""

import pytest
from serve_support import run_scenarios, scenario_outcome, unshare_problem


def outcome_of(case: str) -> tuple[str, str]:
    """("failed" | "skipped" | "passed", message) of run_scenarios on tests/support_cases.py."""
    problem = unshare_problem()
    if problem:
        pytest.skip(problem)
    try:
        run_scenarios("support_cases.py", timeout_s=300, extra_env={"VIDSYNTH_SUPPORT_CASE": case})
    except pytest.fail.Exception as exc:
        return "failed", str(exc)
    except pytest.skip.Exception as exc:
        return "skipped", str(exc)
    return "passed", ""


def test_a_failure_beside_a_skip_fails():
    outcome, message = outcome_of("fail")
    assert outcome == "failed", f"a failing scenario came out {outcome}: {message}"
    assert "failed on purpose" in message


def test_a_skip_names_its_causes():
    outcome, message = outcome_of("skip")
    assert outcome == "skipped"
    assert "no chromium here" in message and "no root" in message


@pytest.mark.parametrize(
    "returncode, stdout, outcome",
    [
        (0, "..\n2 passed in 1.0s", "passed"),
        (1, "F.\n1 failed, 1 passed in 1.0s", "failed"),
        (1, "Fs\n1 failed, 1 skipped in 1.0s", "failed"),
        (1, "E\n1 error in 1.0s", "failed"),
        (5, "no tests ran in 0.1s", "failed"),
        (0, "s\nSKIPPED [1] tests/x.py:3: no unshare\n1 skipped in 0.1s", "skipped"),
        (2, "Interrupted: 1 error during collection", "failed"),
    ],
)
def test_scenario_outcome(returncode, stdout, outcome):
    assert scenario_outcome(returncode, stdout)[0] == outcome
