#!/usr/bin/env bash
# The GPU path on a machine with CUDA, in a few minutes: the gpu-marked tests (CUDA-event clocks, the
# device Ray assigns), then a one-GPU run whose record shows the step split. Usage: launch/gpu_check.sh [results_dir]
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-results/gpu_check}"
timeout 240 python -m pytest -q -m gpu tests/test_gpu.py
timeout 240 python -m commbench model=squeezenet nodes=1 use_gpu=true steps=20 logging=none resume=false \
  "results_dir=$out"
python - "$out" <<'PY'
import json, sys
r = json.loads(open(f"{sys.argv[1]}/runs.jsonl").read().splitlines()[-1])
print({k: r[k] for k in ("device", "step_time_s", "compute_time_s", "codec_time_s", "exposed_comm_s",
                         "optimizer_time_s")})
PY
