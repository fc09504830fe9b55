#!/bin/bash
# End-to-end test of sharded runs under a real Slurm: starts a single-node cluster on this machine
# (munged, slurmctld, slurmd, all in a temp directory), submits the example pipeline of
# examples/cluster/slurm (calibration and compression as job arrays of 4 tasks, the merges as
# dependent jobs), waits for it, and checks the merged statistics and compressed model byte for
# byte against one-process runs. Needs root and Debian's slurm-wlm + munge
# (`apt-get install slurm-wlm munge`). Exit 0 = identical; the time taken is printed.
#
# Usage: scripts/slurm-test.sh [model-dir …]   (default: every model in examples/models)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
started=$(date +%s)
for tool in munged slurmctld slurmd sbatch squeue; do
  command -v "$tool" >/dev/null || { echo "slurm-test: $tool not found; install with: apt-get install slurm-wlm munge" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "slurm-test: needs root (it starts munged and slurmd)" >&2; exit 2; }
[ -f "$repo/dist/cli/main.js" ] || { echo "slurm-test: build first (npm run build)" >&2; exit 2; }

tmp=$(mktemp -d /tmp/rfid-slurm.XXXXXX)
host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/MemTotal/ { print int($2 / 1024) - 1024 }' /proc/meminfo)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 1
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

# --- munge: its own key and socket, so a system munged is left alone
mkdir -p "$tmp/munge"
dd if=/dev/urandom bs=1 count=1024 of="$tmp/munge/munge.key" status=none
chmod 400 "$tmp/munge/munge.key"
munged --force --key-file="$tmp/munge/munge.key" --socket="$tmp/munge/socket" --pid-file="$tmp/munge/pid" --log-file="$tmp/munge/log" --seed-file="$tmp/munge/seed"
pids+=("$(cat "$tmp/munge/pid")")

# --- slurm: one node, one partition, root as SlurmUser, no cgroups (containers lack them)
mkdir -p "$tmp/state" "$tmp/spool"
cat > "$tmp/slurm.conf" <<CONF
ClusterName=rfid-test
SlurmctldHost=$host
SlurmUser=root
AuthType=auth/munge
AuthInfo=socket=$tmp/munge/socket
CredType=cred/munge
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldPort=$((20000 + RANDOM % 20000))
SlurmdPort=$((40000 + RANDOM % 20000))
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SwitchType=switch/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmctldLogFile=$tmp/slurmctld.log
SlurmdLogFile=$tmp/slurmd.log
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$tmp/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >"$tmp/slurmctld.out" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" >"$tmp/slurmd.out" 2>&1 &
pids+=($!)
for i in $(seq 1 60); do
  if sinfo -h -o %T 2>/dev/null | grep -qE 'idle|mixed'; then break; fi
  sleep 1
  if [ "$i" = 60 ]; then echo "slurm-test: the cluster did not come up" >&2; tail -20 "$tmp"/slurm*.log >&2 || true; exit 1; fi
done
echo "slurm-test: cluster up ($host, $cpus CPUs) in $(($(date +%s) - started)) s"

# deterministic calibration text (no external data needed)
python3 - "$tmp/calib.txt" <<'PY'
import random, sys
random.seed(7)
words = "the king said and then a river of light ran through old town where we stood long ago in silence".split()
open(sys.argv[1], "w").write("\n".join(" ".join(random.choice(words) for _ in range(12)) + "." for _ in range(400)))
PY

cli="node $repo/dist/cli/main.js"
models=("$@")
if [ ${#models[@]} = 0 ]; then
  for m in "$repo"/examples/models/*/; do [ -f "$m/config.json" ] && models+=("${m%/}"); done
fi
status=0
for model in "${models[@]}"; do
  model=$(cd "$model" && pwd)
  name=$(basename "$model")
  work="$tmp/$name"
  mkdir -p "$work"
  export MODEL="$model" DATASET="$tmp/calib.txt" WORK="$work/jobs" OUT="$work/merged" TASKS=4 RFID_MOE="$cli"
  export SAMPLES=8 SEQ_LEN=64 SEED=0 RETAIN=0.6 COMPRESS_ARGS="--engine ts" MERGE_ARGS="--engine ts --eval-sequences 2 --quiet" CALIBRATE_ARGS="--engine ts --quiet"
  t0=$(date +%s)
  last=$("$repo/examples/cluster/slurm/submit.sh")
  # wait for the merge job (and so every job before it) to leave the queue; a failed job leaves
  # its dependants pending forever (DependencyNeverSatisfied): stop at that, or after 15 minutes
  waited=0
  while squeue -h -j "$last" 2>/dev/null | grep -q .; do
    if squeue -h -o %r 2>/dev/null | grep -q DependencyNeverSatisfied || [ $waited -gt 900 ]; then
      scancel --user=root 2>/dev/null || true
      break
    fi
    sleep 1
    waited=$((waited + 1))
  done
  state=$(sacct -n -X -j "$last" -o State 2>/dev/null | head -1 | tr -d ' ' || true)
  if [ ! -f "$OUT/config.json" ]; then
    echo "slurm-test: $name: the pipeline did not produce $OUT (merge job $last ${state:-gone}); job logs:" >&2
    tail -n 20 "$WORK"/*.log >&2 || true
    status=1
    continue
  fi
  echo "slurm-test: $name: sharded pipeline done in $(($(date +%s) - t0)) s"

  # the same work in one process
  # (the statistics file keeps its name: the config block records it; one thread, as the shard
  # tasks ran: the run fingerprint records the engine and its settings)
  mkdir -p "$work/single"
  $cli calibrate "$model" --dataset "$DATASET" --samples 8 --seq-len 64 --seed 0 --out "$work/single/stats.json" --engine ts --threads 1 --quiet >/dev/null
  $cli compress "$model" --stats "$work/single/stats.json" --retain 0.6 --out "$work/one" --engine ts --threads 1 --eval-sequences 2 --quiet >/dev/null
  cmp "$work/single/stats.json" "$WORK/stats.json" || { echo "slurm-test: $name: merged statistics differ from a one-process run" >&2; status=1; }
  for f in "$work/one"/*; do
    b=$(basename "$f")
    case "$b" in rfid-moe-report.json | rfid-moe-report.md) continue ;; esac
    cmp "$f" "$OUT/$b" || { echo "slurm-test: $name: $b differs from a one-process run" >&2; status=1; }
  done
  [ "$(ls "$work/one" | wc -l)" = "$(ls "$OUT" | wc -l)" ] || { echo "slurm-test: $name: different file lists" >&2; status=1; }
  [ $status = 0 ] && echo "slurm-test: $name: merged statistics and compressed model are byte-identical to one-process runs"
done
echo "slurm-test: $( [ $status = 0 ] && echo passed || echo FAILED ) in $(($(date +%s) - started)) s"
exit $status
