#!/usr/bin/env bash
# A one-node Slurm cluster on this machine (Debian's slurm-wlm: munged, slurmctld, slurmd), for CI and for
# trying scripts/slurm_workers.sh before a real cluster. CPU-only: the node has no GPUs (no gres), so submit
# the array script with --gres=none.
#
#   scripts/slurm_local_cluster.sh up        # install if missing (apt-get, needs root), write configs, start (idempotent)
#   export SLURM_CONF=/tmp/spcl-slurm/slurm.conf
#   sinfo; sbatch --gres=none --export=ALL,SPEC=... scripts/slurm_workers.sh
#   scripts/slurm_local_cluster.sh status    # exit 0 when the node takes jobs
#   scripts/slurm_local_cluster.sh down      # stop the daemons (the state dir stays)
#
# Everything lives in one state directory ($SPCL_SLURM_STATE, default /tmp/spcl-slurm): slurm.conf, its own
# munge key and socket, daemon logs, spool and pid files. Nothing under /etc is changed, so the machine's own
# munge/Slurm setup (if any) is left alone; clients find the cluster through SLURM_CONF.
#
# The node advertises SLOTS CPU slots (default 8, however many cores the machine has: the test workers
# mostly sleep) with SlurmdParameters=config_overrides, so a 2-core CI machine still runs several tasks at once.
# Runs the daemons as root (SlurmUser=root) on Slurm's usual ports 6817/6818: a CI box or a workstation, not a
# machine that already runs Slurm daemons.
set -euo pipefail

STATE="${SPCL_SLURM_STATE:-/tmp/spcl-slurm}"
SLOTS="${SPCL_SLURM_SLOTS:-8}"
CONF="$STATE/slurm.conf"
NODE="$(hostname -s)"
export SLURM_CONF="$CONF"

log() { echo "slurm_local_cluster: $*" >&2; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null; then
    return
  fi
  if [[ $(id -u) -ne 0 ]]; then
    log "slurmctld/slurmd/munged/sbatch missing and not root: install slurmctld slurmd slurm-client munge"; exit 1
  fi
  log "installing slurmctld slurmd slurm-client munge (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
}

node_ready() {
  # the node answers and takes jobs (idle, mixed or allocated; not down, drained or unknown)
  local state
  state="$(timeout 10 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -n1)" || return 1
  [[ "$state" =~ ^(idle|mixed|allocated|completing)$ ]]
}

running() {  # running PID_FILE: the daemon whose pid is in PID_FILE is alive
  [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

write_config() {
  local mem
  mem=$(( $(awk '/^MemTotal:/ {print $2}' /proc/meminfo) / 1024 ))
  cat <<EOF
# written by scripts/slurm_local_cluster.sh: a one-node, CPU-only test cluster
ClusterName=spcl-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$STATE/munge/munge.socket
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=10
MinJobAge=300
MaxArraySize=1001
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$SLOTS RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
}

start_munge() {
  mkdir -p "$STATE/munge"
  chmod 711 "$STATE/munge"  # clients need to reach the socket; the key itself stays 0600
  if [[ ! -s "$STATE/munge/munge.key" ]]; then
    dd if=/dev/urandom of="$STATE/munge/munge.key" bs=1024 count=1 status=none
    chmod 600 "$STATE/munge/munge.key"
  fi
  if running "$STATE/munge/munged.pid"; then
    return
  fi
  munged --force --key-file="$STATE/munge/munge.key" --socket="$STATE/munge/munge.socket" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/log/munged.log" --seed-file="$STATE/munge/munged.seed"
}

stop() {
  local pid
  for f in "$STATE/slurmd.pid" "$STATE/slurmctld.pid" "$STATE/munge/munged.pid"; do
    if running "$f"; then
      pid="$(cat "$f")"
      kill "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    fi
    rm -f "$f"
  done
}

up() {
  install_packages
  mkdir -p "$STATE" "$STATE/ctld" "$STATE/spool" "$STATE/log"
  chmod 755 "$STATE"
  local new="$STATE/slurm.conf.new"
  write_config >"$new"
  if [[ -f "$CONF" ]] && cmp -s "$new" "$CONF" && running "$STATE/slurmctld.pid" && running "$STATE/slurmd.pid" && node_ready; then
    rm -f "$new"
    log "up (already running): SLURM_CONF=$CONF"
    return
  fi
  if [[ -f "$CONF" ]] && ! cmp -s "$new" "$CONF"; then
    log "configuration changed: restarting the daemons"
    stop
  fi
  mv "$new" "$CONF"
  start_munge
  running "$STATE/slurmctld.pid" || slurmctld -f "$CONF"
  running "$STATE/slurmd.pid" || slurmd -f "$CONF" -N "$NODE"
  for _ in $(seq 1 60); do
    node_ready && break
    # a node left down or drained by an earlier run: put it back in service
    scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 || true
    sleep 0.5
  done
  if ! node_ready; then
    log "the node did not come up; see $STATE/log/"
    tail -n 20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
    exit 1
  fi
  log "up: node $NODE with $SLOTS CPU slots, no GPUs; SLURM_CONF=$CONF"
}

case "${1:-up}" in
  up) up ;;
  down) stop; log "down" ;;
  status) node_ready && log "up: SLURM_CONF=$CONF" || { log "not running (SLURM_CONF=$CONF)"; exit 1; } ;;
  *) echo "usage: $0 [up|down|status]" >&2; exit 2 ;;
esac
