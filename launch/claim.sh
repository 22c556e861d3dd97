#!/usr/bin/env bash
# The claim, measured (needs root): AlexNet and SqueezeNet at 1, 2 and 4 nodes of an emulated cluster
# whose links are shaped to 100 Mbit/s and to 1 Gbit/s; then communication time per step and scaling
# efficiency side by side (commbench scaling). AlexNet moves ~49x SqueezeNet's bytes per step.
#   RESULTS=results/claim launch/claim.sh            (STEPS=5 by default: AlexNet at 100 Mbit/s
#                                                      spends ~20-30 s per step on the wire)
set -euo pipefail
RESULTS=${RESULTS:-results/claim}
for bandwidth in ${BANDWIDTHS:-100mbit 1gbit}; do
  python -m commbench -m model=alexnet,squeezenet nodes=${NODES:-1,2,4} cluster=emulated \
    "network.bandwidth=${bandwidth}" "steps=${STEPS:-5}" warmup=1 "results_dir=${RESULTS}" "$@"
done
python -m commbench scaling "results_dir=${RESULTS}"
