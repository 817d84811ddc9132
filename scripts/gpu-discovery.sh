#!/usr/bin/env bash
# Spark GPU discovery script: prints the GPUs of this node in the JSON form of
# Spark's ResourceInformation, e.g.
#
#     {"name": "gpu", "addresses": ["0","1"]}
#
# from `nvidia-smi --query-gpu=index --format=csv,noheader` (like Spark's
# examples/src/main/scripts/getGpusResources.sh).  Point
# spark.worker.resource.gpu.discoveryScript (standalone workers) or
# spark.executor.resource.gpu.discoveryScript (YARN, Kubernetes) at this file;
# it must exist, executable, at the same path on every node (see
# conf/spark-gpu.conf).  Fails with a message on stderr when there is no
# nvidia-smi or no GPU, so the executor's error says why.
set -euo pipefail

if ! command -v nvidia-smi >/dev/null 2>&1; then
    echo "gpu-discovery.sh: nvidia-smi not found on ${HOSTNAME:-this node}; is the NVIDIA driver installed?" >&2
    exit 1
fi

indices="$(nvidia-smi --query-gpu=index --format=csv,noheader)"
addresses=""
while IFS= read -r index; do
    index="${index//[[:space:]]/}"
    [[ -z "$index" ]] && continue
    addresses+="${addresses:+,}\"${index}\""
done <<< "$indices"

if [[ -z "$addresses" ]]; then
    echo "gpu-discovery.sh: nvidia-smi lists no GPU on ${HOSTNAME:-this node}" >&2
    exit 1
fi
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
