#!/usr/bin/env bash
# Fit alpha-beta from all-reduce sweeps at N = 2, 4, 8, replay three models' gradient buckets at the
# same N with no compute, and compare the fit's predictions with the replays (commbench validate).
#   RESULTS=results launch/validate_alpha_beta.sh
set -euo pipefail
RESULTS=${RESULTS:-results}
MODELS=${MODELS:-alexnet squeezenet mobilenet_v2}
NODES=${NODES:-2 4 8}
for n in $NODES; do
  python -m commbench busbw "nodes=$n" "results_dir=${RESULTS}" "${BUSBW_ARGS:-max_bytes=256MiB}"
done
for m in $MODELS; do
  # A short run records the model's bucket layout (and nodes=1 its compute time) if no run has yet.
  python -m commbench layers "model=$m" "results_dir=${RESULTS}" >/dev/null 2>&1 ||
    python -m commbench -m "model=$m" nodes=1,2 steps=5 "results_dir=${RESULTS}"
  for n in $NODES; do
    python -m commbench replay "model=$m" "nodes=$n" mode=back_to_back "results_dir=${RESULTS}"
  done
done
python -m commbench validate "results_dir=${RESULTS}"
