#!/usr/bin/env bash
# Fake Spark GPU discovery script for tests (no GPU needed).
#
# Spark runs a worker's discovery script once when the worker starts.  In
# local-cluster mode every worker lives in the driver's JVM, so all of them
# run this script with the same environment.  To give each worker a
# DIFFERENT address, workers claim the next free address by creating a
# directory under $LIME_SPARK_FAKE_GPU_DIR (mkdir is atomic): the first worker
# gets "0", the second "1", and so on up to $LIME_SPARK_FAKE_GPU_COUNT
# (default 2).  Each claim directory records which address was handed out.
set -euo pipefail

claims="${LIME_SPARK_FAKE_GPU_DIR:?set LIME_SPARK_FAKE_GPU_DIR to a writable folder}"
count="${LIME_SPARK_FAKE_GPU_COUNT:-2}"
mkdir -p "$claims"
for ((i = 0; i < count; i++)); do
    if mkdir "$claims/gpu-$i" 2>/dev/null; then
        echo "{\"name\": \"gpu\", \"addresses\": [\"$i\"]}"
        exit 0
    fi
done
echo "fake_gpu_discovery.sh: all $count fake GPUs in $claims are taken" >&2
exit 1
