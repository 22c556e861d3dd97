#!/usr/bin/env bash
# The step timeline, validated (needs root): on emulated clusters at each link rate, the predicted
# timeline vs the trace replayed with compute as sleep vs the fully trained run, per model and N.
#   1. nodes=1 runs: each model's trace (compute profile and buckets) on this machine, one thread;
#   2. busbw at each N per link: the alpha-beta fits the predictions use (FIT=0: the link rate instead);
#   3. full runs at N=2 per link (two nodes, one worker each: not CPU-bound);
#   4. trace replays at N=2, 4, 8 per link, every model in one cluster per N;
#   5. replays of the N=2 runs' own traces (trace=run: their compute as measured, contention included);
#   6. commbench validate.
#   RESULTS=results/timeline launch/validate_timeline.sh
set -euo pipefail
RESULTS=${RESULTS:-results/timeline}
MODELS=${MODELS:-alexnet,squeezenet,mobilenet_v2,resnet50}
RATES=${RATES:-100mbit 200mbit}
STEPS=${STEPS:-4}
ITERS=${ITERS:-3}
common=("results_dir=${RESULTS}" batch_size=8)  # one torch thread per worker: the default here

if [ "${TRACES:-1}" = 1 ]; then  # TRACES=0: keep the traces already recorded
  python -m commbench -m "model=${MODELS}" nodes=1 "steps=${STEPS}" warmup=1 "${common[@]}"
fi
for rate in $RATES; do
  if [ "${FIT:-1}" = 1 ]; then
    for n in ${NODES:-2 4 8}; do
      python -m commbench busbw cluster=emulated "nodes=$n" "network.bandwidth=${rate}" min_bytes=1MiB max_bytes=64MiB \
        iters=3 warmup_iters=1 "results_dir=${RESULTS}"
    done
  fi
  python -m commbench -m "model=${MODELS}" nodes=2 cluster=emulated "network.bandwidth=${rate}" \
    "steps=${STEPS}" warmup=1 "${common[@]}"
  for n in ${NODES:-2 4 8}; do
    python -m commbench replay "models=${MODELS}" "nodes=$n" cluster=emulated "network.bandwidth=${rate}" \
      "iters=${ITERS}" warmup_iters=1 "${common[@]}"
  done
  python -m commbench replay "models=${MODELS}" nodes=2 trace=run cluster=emulated "network.bandwidth=${rate}" \
    "iters=${ITERS}" warmup_iters=1 "${common[@]}"
done
python -m commbench validate "results_dir=${RESULTS}"
