"""vidsynth's benchmarks: every backend against the code users run today and against the
machine's measured matmul peak. Run with `vidsynth bench` (see run.py)."""
