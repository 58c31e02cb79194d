#!/usr/bin/env bash
# On a CUDA machine: the CUDA-marked tests, then the CUDA benchmark, in under 8 minutes.
# Everything lands in $OUT (default bench/results/cuda):
#   device_check.json   exit codes, seconds, GPU and library versions
#   cuda-tests.xml/.log pytest -m cuda
#   bench/              results.json, results.md, latency.png of `vidsynth bench --device cuda`
# Run from the repository root:  OUT=/some/dir bash bench/device_check.sh
set -u
cd "$(dirname "$0")/.."
OUT="${OUT:-bench/results/cuda}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # vidsynth without an install
PY="${PYTHON:-python}"
start=$(date +%s)

"$PY" - > "$OUT/environment.json" 2>&1 <<'PYEOF'
import json, platform, subprocess
info = {"python": platform.python_version()}
try:
    import torch
    info.update(torch=torch.__version__, cuda=torch.version.cuda, cuda_available=torch.cuda.is_available(),
                gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
except ImportError as exc:
    info["torch"] = f"not importable: {exc}"
try:
    import onnxruntime
    info.update(onnxruntime=onnxruntime.__version__, ort_providers=onnxruntime.get_available_providers())
except ImportError as exc:
    info["onnxruntime"] = f"not importable: {exc}"
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total,clocks.max.sm,power.limit",
                                         "--format=csv,noheader"], capture_output=True, text=True, timeout=20).stdout.strip()
except (OSError, subprocess.SubprocessError) as exc:
    info["nvidia_smi"] = f"unavailable: {exc}"
print(json.dumps(info, indent=1))
PYEOF

# 1. CUDA-marked tests (at most 3 minutes).
tests_start=$(date +%s)
timeout 180 "$PY" -m pytest -q -m cuda -p no:cacheprovider --junitxml="$OUT/cuda-tests.xml" tests > "$OUT/cuda-tests.log" 2>&1
tests_rc=$?
tests_s=$(( $(date +%s) - tests_start ))

# 2. The CUDA benchmark (at most 4.5 minutes): every backend that runs on CUDA, fp32/fp16/bf16,
#    batch {1, 8, 32} x frames {16, 64, 256}, against the GPU's measured matmul peak.
bench_start=$(date +%s)
timeout 270 "$PY" -m vidsynth bench --device cuda --precision fp32 --precision fp16 --precision bf16 \
    --backend reference --backend eager --backend torchscript --backend onnxruntime --backend torch.compile \
    --threads "${THREADS:-4}" --out "$OUT/bench" > "$OUT/bench.log" 2>&1
bench_rc=$?
bench_s=$(( $(date +%s) - bench_start ))

cat > "$OUT/device_check.json" <<JSONEOF
{"cuda_tests": {"exit_code": $tests_rc, "seconds": $tests_s, "log": "cuda-tests.log", "junit": "cuda-tests.xml"},
 "cuda_bench": {"exit_code": $bench_rc, "seconds": $bench_s, "log": "bench.log", "results": "bench/results.json"},
 "total_seconds": $(( $(date +%s) - start )), "environment": "environment.json"}
JSONEOF
cat "$OUT/device_check.json"
tail -n 5 "$OUT/cuda-tests.log" "$OUT/bench.log"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
