#!/bin/bash
# Submits the whole sharded pipeline as four dependent jobs:
#   calibrate (array of TASKS) → merge-stats → compress (array of TASKS) → merge
# Usage: MODEL=… DATASET=… WORK=/shared/run OUT=/shared/model-rfid TASKS=4 ./submit.sh [sbatch options…]
# Every job reads and writes under $WORK, which all nodes must see (NFS, Lustre, …).
# Prints the job id of the final merge; `sbatch --wait`-style waiting is left to the caller.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
: "${MODEL:?}" "${DATASET:?}" "${WORK:?}" "${OUT:?}"
TASKS=${TASKS:-4}
export MODEL DATASET WORK OUT TASKS
mkdir -p "$WORK"
cd "$WORK"
last=$((TASKS - 1))
cal=$(sbatch --parsable --export=ALL "$@" --array=0-$last "$here/calibrate.sbatch")
mst=$(sbatch --parsable --export=ALL "$@" --dependency=afterok:$cal "$here/merge-stats.sbatch")
cmp=$(sbatch --parsable --export=ALL "$@" --dependency=afterok:$mst --array=0-$last "$here/compress.sbatch")
mrg=$(sbatch --parsable --export=ALL "$@" --dependency=afterok:$cmp "$here/merge.sbatch")
echo "$mrg"
