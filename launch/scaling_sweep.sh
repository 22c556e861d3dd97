#!/usr/bin/env bash
# Issue 4's scaling sweep: four models at 1, 2, 4 and 8 workers, then the scaling table.
# Resumable: cells already in ${RESULTS}/runs.jsonl are skipped. Extra arguments go to every run.
#   RESULTS=results launch/scaling_sweep.sh steps=20
set -euo pipefail
RESULTS=${RESULTS:-results}
MODELS=${MODELS:-alexnet,squeezenet,mobilenet_v2,shufflenet_v2}
NODES=${NODES:-1,2,4,8}
python -m commbench -m "model=${MODELS}" "nodes=${NODES}" "results_dir=${RESULTS}" "$@"
python -m commbench scaling "results_dir=${RESULTS}"
