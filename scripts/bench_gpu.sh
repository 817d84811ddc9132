#!/usr/bin/env bash
# The GPU benchmark: the explanation job (ResNet50 at 224, random weights, 64
# generated 640x480 photos) on one NVIDIA GPU against the model-only floor, with
# the GPU's utilisation from nvidia-smi; under 5 minutes, setup included once
# .venv exists. Without an NVIDIA GPU it says so and exits 0 before any setup.
#   scripts/bench_gpu.sh                          # the benchmark (prints key: value lines)
#   scripts/bench_gpu.sh --json out/bench.json    # the results as JSON too
#   scripts/bench_gpu.sh --cpu-dry-run            # the whole flow on the CPU, tiny (no GPU)
#   scripts/bench_gpu.sh --help                   # every option (scripts/bench_gpu.py)
set -euo pipefail

needs_gpu=1
for arg in "$@"; do
    case "$arg" in --cpu-dry-run|-h|--help) needs_gpu=0 ;; esac
done
if [ "$needs_gpu" = 1 ]; then
    if ! command -v nvidia-smi >/dev/null 2>&1; then
        echo "bench-gpu: no NVIDIA GPU here (nvidia-smi not found on PATH): nothing to measure"
        exit 0
    fi
    if ! nvidia-smi -L 2>/dev/null | grep -q '^GPU '; then
        echo "bench-gpu: no NVIDIA GPU here (nvidia-smi -L lists no GPU): nothing to measure"
        exit 0
    fi
fi

source "$(dirname "$0")/_setup.sh"
check_java                  # Spark needs Java 17+
setup_venv demo             # the demo's dependencies suffice: no test tools, no S3A jars
exec "$VENV/bin/python" "$REPO/scripts/bench_gpu.py" "$@"
