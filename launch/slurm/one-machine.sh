#!/usr/bin/env bash
# A one-machine SLURM cluster: munge, slurmctld and slurmd on this host, their config and state in one
# folder. For trying commbench.sbatch without a cluster, and for tests/test_slurm.py. Needs root and
# Debian's slurmctld, slurmd, slurm-client and munge packages.
#
#   launch/slurm/one-machine.sh start DIR   # then: export SLURM_CONF=DIR/slurm.conf
#   launch/slurm/one-machine.sh stop DIR
#
# Its one node is this machine (slurmd -C: its CPUs and memory), reached at 127.0.0.1; one partition.
# Process tracking without cgroups (proctrack/linuxproc): works in containers, and `scancel` still
# signals a job's whole process tree.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[ $# -eq 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi  # already running
  [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null && chown munge: /etc/munge/munge.key; }
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
}

write_conf() {
  local node
  node=$(slurmd -C | head -1)  # NodeName=<host> CPUs=... RealMemory=...
  cat > "$dir/slurm.conf" <<CONF
ClusterName=commbench
SlurmctldHost=$(hostname -s)(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
  mkdir -p "$dir/state" "$dir/spool"
}

wait_idle() {  # the node registers with slurmctld a moment after slurmd starts
  for _ in $(seq 60); do
    if SLURM_CONF="$dir/slurm.conf" sinfo -h -o %T 2>/dev/null | grep -qx idle; then return; fi
    sleep 1
  done
  echo "$0: the node did not come up idle within 60 s; see $dir/slurmctld.log and $dir/slurmd.log" >&2
  exit 1
}

stop_daemon() {
  local pid
  pid=$(cat "$dir/$1.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  rm -f "$dir/$1.pid"
}

case $action in
  start)
    [ "$(id -u)" = 0 ] || { echo "$0: needs root (slurmd runs jobs as their users)" >&2; exit 2; }
    command -v slurmctld >/dev/null || { echo "$0: no slurmctld: apt-get install slurmctld slurmd slurm-client munge" >&2; exit 2; }
    start_munge
    write_conf
    slurmctld -f "$dir/slurm.conf"
    slurmd -f "$dir/slurm.conf"
    wait_idle
    echo "export SLURM_CONF=$dir/slurm.conf"
    ;;
  stop)
    stop_daemon slurmd
    stop_daemon slurmctld
    ;;
  *) usage ;;
esac
