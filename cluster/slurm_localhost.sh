#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the Slurm launcher's tests (tests/coordinator_slurm.cmake).
#
#   cluster/slurm_localhost.sh start    install slurm-wlm and munge if missing, write the
#                                       configuration, start munged, slurmctld and slurmd, wait
#                                       until the node is idle
#   cluster/slurm_localhost.sh stop     stop the three daemons (the configuration stays)
#   cluster/slurm_localhost.sh status   sinfo's view of the node; exit 1 when the cluster is down
#
# Idempotent: `start` on a running cluster only waits for the node. Needs root (apt-get, daemons).
# No cgroups (containers rarely delegate them): processes are tracked through /proc
# (proctrack/linuxproc) and not confined (task/none); no accounting daemon, so finished jobs are
# read from slurmctld's memory, where they stay for MinJobAge seconds.
#
# Files live in ISOFLOP_SLURM_DIR (default /run/isoflop-slurm). Clients find the configuration
# through /etc/slurm/slurm.conf, a link made here when that file does not exist, or through
# SLURM_CONF=$ISOFLOP_SLURM_DIR/slurm.conf.
set -euo pipefail

DIR=${ISOFLOP_SLURM_DIR:-/run/isoflop-slurm}
CONF=$DIR/slurm.conf
NODE=localhost
# More CPUs than the machine has (config_overrides lets slurmd accept it): the tests' jobs sleep
# more than they compute, and several must run at once on a two-core machine.
CPUS=${ISOFLOP_SLURM_CPUS:-8}
export SLURM_CONF=$CONF

log() { echo "slurm_localhost: $*" >&2; }

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null &&
    command -v sbatch >/dev/null; then
    return
  fi
  log "installing slurm-wlm and munge"
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slurm-wlm munge >/dev/null ||
    { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y \
      --no-install-recommends slurm-wlm munge >/dev/null; }
}

write_config() {
  mkdir -p "$DIR/state" "$DIR/spool" "$DIR/log"
  local memory_mb
  memory_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  cat >"$CONF.tmp" <<EOF
# Written by cluster/slurm_localhost.sh: a one-node cluster for tests.
ClusterName=isoflop-local
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# Job credentials live 10 s, not 120: a requeued job waits that long before it may start again.
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
MpiDefault=none
ReturnToService=2
MinJobAge=600
KillWait=10
# Frequent scheduling passes: the tests' jobs start within a second of sbatch.
SchedulerParameters=sched_interval=1
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$memory_mb State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
  if [[ ! -e /etc/slurm/slurm.conf ]]; then
    mkdir -p /etc/slurm
    ln -sfn "$CONF" /etc/slurm/slurm.conf
  fi
}

running() { [[ -f $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { sinfo --noheader --nodes=$NODE --format=%T 2>/dev/null | head -n1; }

start() {
  install_packages
  write_config
  mkdir -p /run/munge
  chown munge:munge /run/munge 2>/dev/null || true
  if ! running /run/munge/munged.pid; then
    log "starting munged"
    munged --force
  fi
  if ! running "$DIR/slurmctld.pid"; then
    log "starting slurmctld"
    slurmctld -f "$CONF"
  fi
  if ! running "$DIR/slurmd.pid"; then
    log "starting slurmd"
    slurmd -f "$CONF" -N $NODE
  fi
  local state=""
  for _ in $(seq 1 60); do
    state=$(node_state)
    case $state in
      idle | mixed | allocated) log "node $NODE is $state"; return 0 ;;
      down* | drain*) scontrol update nodename=$NODE state=resume 2>/dev/null || true ;;
    esac
    sleep 1
  done
  log "node $NODE did not become idle (state '$state'); logs in $DIR/log"
  return 1
}

stop() {
  local pid_file
  for pid_file in "$DIR/slurmd.pid" "$DIR/slurmctld.pid" /run/munge/munged.pid; do
    if running "$pid_file"; then
      kill "$(cat "$pid_file")"
      for _ in $(seq 1 50); do running "$pid_file" || break; sleep 0.1; done
    fi
  done
  log "stopped"
}

status() {
  if ! running "$DIR/slurmctld.pid" || ! running "$DIR/slurmd.pid"; then
    log "not running"
    return 1
  fi
  sinfo --nodes=$NODE
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
