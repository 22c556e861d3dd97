#!/usr/bin/env bash
# A SLURM cluster of N nodes on one machine, for trying commbench.sbatch without a cluster and for
# tests/test_slurm.py. Each node is a network namespace with a host name of its own (n0, n1, ...) and
# its slurmd; n0 also runs slurmctld; munge is shared. The nodes reach each other, and this machine
# reaches them, over a bridge on 10.232.0.0/24. Config, state and logs live in DIR. Needs root, iproute2
# and Debian's slurmctld, slurmd, slurm-client and munge packages.
#
#   launch/slurm/one-machine.sh start DIR [NODES]   # NODES: 2 by default; then export SLURM_CONF=DIR/slurm.conf
#   launch/slurm/one-machine.sh stop DIR
#
# Every node offers this machine's CPUs and memory (slurmd -C): they share them. Process tracking
# without cgroups (proctrack/linuxproc) works in containers, and `scancel` still signals a job's tree.
set -Eeuo pipefail  # -E: the ERR trap of `start` holds inside its functions too

usage() { echo "usage: $0 start DIR [NODES] | stop DIR" >&2; exit 2; }
[ $# -ge 2 ] || usage
action=$1
dir=$(mkdir -p "$2" && cd "$2" && pwd)
nodes=${3:-2}
prefix=cbslurm subnet=10.232.0
bridge=${prefix}br

ip_of() { echo "$subnet.$(( $1 + 1 ))"; }

start_munge() {
  if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi  # already running
  [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null && chown munge: /etc/munge/munge.key; }
  install -d -o munge -g munge -m 0755 /run/munge
  runuser -u munge -- /usr/sbin/munged
}

build_network() {  # a bridge with an address here (clients reach slurmctld), one namespace per node
  ip link add "$bridge" type bridge
  ip link set "$bridge" up
  ip addr add "$subnet.254/24" dev "$bridge"
  # Bridged frames pass iptables' FORWARD chain, whose policy Docker sets to DROP.
  if command -v iptables >/dev/null; then iptables -I FORWARD -i "$bridge" -o "$bridge" -j ACCEPT; fi
  printf '127.0.0.1 localhost\n' > "$dir/hosts"
  for ((i = 0; i < nodes; i++)); do
    ip netns add "$prefix$i"
    ip link add "${prefix}v$i" type veth peer name eth0 netns "$prefix$i"
    ip link set "${prefix}v$i" master "$bridge" up
    ip -n "$prefix$i" addr add "$(ip_of "$i")/24" dev eth0
    ip -n "$prefix$i" link set eth0 up
    ip -n "$prefix$i" link set lo up
    printf '%s n%d\n' "$(ip_of "$i")" "$i" >> "$dir/hosts"
  done
}

write_conf() {
  local hw
  hw=$(slurmd -C | head -1 | cut -d' ' -f2-)  # CPUs=... RealMemory=... of this machine
  cat > "$dir/slurm.conf" <<CONF
ClusterName=commbench
SlurmctldHost=n0($(ip_of 0))
SlurmUser=root
AuthType=auth/munge
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool-%n
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd-%n.pid
SlurmctldLogFile=$dir/slurmctld.log
SlurmdLogFile=$dir/slurmd-%n.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
CONF
  for ((i = 0; i < nodes; i++)); do
    echo "NodeName=n$i NodeAddr=$(ip_of "$i") $hw State=UNKNOWN" >> "$dir/slurm.conf"
    mkdir -p "$dir/spool-n$i"
  done
  echo "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP" >> "$dir/slurm.conf"
  mkdir -p "$dir/state"
}

on_node() {  # node index, command: run in the node's namespace, under its host name and hosts file
  # nsenter, not `ip netns exec`: that mounts a fresh /sys without the cgroup tree slurmd reads.
  nsenter --net="/run/netns/$prefix$1" unshare --uts --mount \
    sh -c "mount --bind '$dir/hosts' /etc/hosts && hostname n$1 && exec $2"
}

wait_idle() {  # the nodes register with slurmctld a moment after their slurmd starts
  for _ in $(seq 60); do
    if [ "$(SLURM_CONF="$dir/slurm.conf" sinfo -h -t idle -o %D 2>/dev/null)" = "$nodes" ]; then return; fi
    sleep 1
  done
  echo "$0: the $nodes node(s) did not come up idle within 60 s; see $dir/*.log" >&2
  stop_all
  exit 1
}

stop_daemon() {
  local pid
  pid=$(cat "$1" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  rm -f "$1"
}

stop_all() {  # whatever of the cluster is there; also what a failed start left
  trap - ERR
  set +e
  for ((i = 0; i < nodes; i++)); do stop_daemon "$dir/slurmd-n$i.pid"; done
  stop_daemon "$dir/slurmctld.pid"
  for ((i = 0; i < nodes; i++)); do
    ip netns pids "$prefix$i" 2>/dev/null | xargs -r kill -9 2>/dev/null  # a job's processes that outlived it
    ip netns del "$prefix$i" 2>/dev/null
  done
  if ip link show "$bridge" >/dev/null 2>&1; then
    ip link del "$bridge"
    command -v iptables >/dev/null && iptables -D FORWARD -i "$bridge" -o "$bridge" -j ACCEPT 2>/dev/null
  fi
  return 0
}

case $action in
  start)
    [ "$(id -u)" = 0 ] || { echo "$0: needs root (namespaces; slurmd runs jobs as their users)" >&2; exit 2; }
    command -v slurmctld >/dev/null || { echo "$0: no slurmctld: apt-get install slurmctld slurmd slurm-client munge" >&2; exit 2; }
    [[ $nodes =~ ^[1-9][0-9]?$ ]] || { echo "$0: NODES must be 1 to 99, got $nodes" >&2; exit 2; }
    ! ip link show "$bridge" >/dev/null 2>&1 || { echo "$0: a one-machine SLURM runs already (stop it first)" >&2; exit 2; }
    echo "$nodes" > "$dir/nodes"
    trap 'stop_all; exit 1' ERR  # a start that fails halfway leaves nothing running
    start_munge
    build_network
    write_conf
    on_node 0 "slurmctld -f '$dir/slurm.conf'"
    for ((i = 0; i < nodes; i++)); do on_node "$i" "slurmd -f '$dir/slurm.conf' -N n$i"; done
    wait_idle
    echo "export SLURM_CONF=$dir/slurm.conf"
    ;;
  stop)
    nodes=$(cat "$dir/nodes" 2>/dev/null || echo 0)
    stop_all
    ;;
  *) usage ;;
esac
