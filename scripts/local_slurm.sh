#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the `slurm` tests and for trying the submitit launcher.
#
#   scripts/local_slurm.sh start [STATE_DIR]    install slurm-wlm + munge if missing (apt-get, needs root),
#                                               start munged, slurmctld and slurmd, wait until the node is idle
#   scripts/local_slurm.sh stop [STATE_DIR]     stop exactly the daemons `start` started, delete STATE_DIR
#   scripts/local_slurm.sh status [STATE_DIR]   exit 0 and print `sinfo` while the cluster answers
#
# Everything lives in STATE_DIR ($AGEBENCH_SLURM_DIR or /tmp/agebench-slurm): slurm.conf, its own munge
# key and socket, spool and state dirs, logs and pid files; nothing under /etc is changed, and a munged
# or Slurm the machine already runs is left alone. Slurm's clients (sbatch, sinfo, submitit) find this
# cluster through SLURM_CONF: `start` prints `export SLURM_CONF=... PATH=...` on stdout (progress goes to
# stderr; PATH gains the sacct stand-in described at write_sacct), so
#
#   eval "$(scripts/local_slurm.sh start)"
#
# sets it in your shell. The node is `localhost` with this machine's CPU count and memory, in partition
# `cpu`; daemons talk on 127.0.0.1 on free ports; process tracking is proctrack/linuxproc and no cgroup
# plugin is used, so it runs in a container.
set -euo pipefail

action=${1:-}
state=${2:-${AGEBENCH_SLURM_DIR:-/tmp/agebench-slurm}}
conf="$state/slurm.conf"
say() { echo "local_slurm: $*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

install_if_missing() {
  if command -v slurmctld > /dev/null && command -v slurmd > /dev/null && command -v munged > /dev/null; then
    return
  fi
  if [[ $(id -u) -ne 0 ]]; then
    say "slurmctld/slurmd/munged are not installed; run as root (apt-get install slurm-wlm munge) first"
    exit 1
  fi
  say "installing slurm-wlm and munge with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -q && apt-get install -y -q --no-install-recommends slurm-wlm munge; } > "$state/apt.log" 2>&1; then
    tail -20 "$state/apt.log" >&2
    say "apt-get install slurm-wlm munge failed (log: $state/apt.log)"
    exit 1
  fi
}

write_conf() {
  local cpus mem_mb ctld_port d_port user
  cpus=$(nproc)
  # RealMemory a little under the machine's, so that slurmd never finds less than it was promised
  mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  ctld_port=$(free_port)
  d_port=$(free_port)
  while [[ "$d_port" == "$ctld_port" ]]; do d_port=$(free_port); done
  user=$(id -un)
  cat > "$conf" <<EOF
# written by scripts/local_slurm.sh: a one-node cluster on 127.0.0.1
ClusterName=agebench
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
# bind to 127.0.0.1 (SlurmctldHost's and NodeAddr's address), not to every interface
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
MailProg=/bin/true
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
CredType=cred/munge
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/slurmctld.log
SlurmdLogFile=$state/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups: they are not writable in most containers
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# the node's configured size is what counts (a container may see other hardware numbers)
SlurmdParameters=config_overrides
ReturnToService=2
# fast turnaround for tests: scancel's SIGTERM→SIGKILL wait, finished jobs kept for sacct-less queries
KillWait=10
MinJobAge=600
SlurmdTimeout=60
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=cpu Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
}

# This cluster has no slurmdbd (a database server just for tests), so the real sacct answers "Slurm
# accounting storage is disabled". submitit polls job states with `sacct -o JobID,State,NodeList
# --parsable2 -j <id>` and, without an answer, waits forever for a job that ended without a result
# (cancelled, killed, exited). This stand-in answers that one query from slurmctld, which keeps
# finished jobs for MinJobAge seconds; `start` puts it first on PATH.
write_sacct() {
  mkdir -p "$state/bin"
  cat > "$state/bin/sacct" <<'EOF_SACCT'
#!/usr/bin/env bash
# sacct stand-in of scripts/local_slurm.sh: JobID|State|NodeList of the -j jobs, from `scontrol show job`
ids=()
while [[ $# -gt 0 ]]; do
  case $1 in
    -j|--jobs) ids+=(${2//,/ }); shift 2 ;;
    --jobs=*) v=${1#--jobs=}; ids+=(${v//,/ }); shift ;;
    *) shift ;;
  esac
done
echo "JobID|State|NodeList"
for id in "${ids[@]}"; do
  scontrol -o show job "$id" 2>/dev/null | awk '{
    delete f
    for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v }
    id = f["JobId"]
    if (("ArrayJobId" in f) && ("ArrayTaskId" in f)) {
      id = (f["ArrayTaskId"] ~ /^[0-9]+$/) ? f["ArrayJobId"] "_" f["ArrayTaskId"] : f["ArrayJobId"] "_[" f["ArrayTaskId"] "]"
    }
    node = ("NodeList" in f && f["NodeList"] != "(null)") ? f["NodeList"] : "None assigned"
    print id "|" f["JobState"] "|" node
  }'
done
EOF_SACCT
  chmod +x "$state/bin/sacct"
}

# start a daemon in the foreground flag mode, in its own session, and record its pid
launch() {
  local name=$1; shift
  setsid "$@" > "$state/$name.out" 2>&1 < /dev/null &
  echo $! > "$state/$name.started"
}

is_up() {
  [[ -f "$conf" ]] && SLURM_CONF="$conf" timeout 10 sinfo -h -N -o '%T' 2>/dev/null | grep -q -E '^(idle|mixed|allocated)'
}

stop_all() {
  local name pid
  # jobs still running on this cluster first: their slurmstepd processes outlive slurmd
  if [[ -f "$state/slurmctld.started" ]] && kill -0 "$(cat "$state/slurmctld.started")" 2>/dev/null; then
    SLURM_CONF="$conf" timeout 10 scancel --partition=cpu 2>/dev/null || true
    for _ in $(seq 30); do
      [[ -z "$(SLURM_CONF="$conf" timeout 5 squeue -h -o %i 2>/dev/null)" ]] && break
      sleep 0.5
    done
  fi
  for name in slurmd slurmctld munged; do
    [[ -f "$state/$name.started" ]] || continue
    pid=$(cat "$state/$name.started")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$state/$name.started"
  done
}

case "$action" in
  start)
    if is_up; then
      echo "export SLURM_CONF=$conf PATH=$state/bin:\$PATH"; exit 0
    fi
    [[ -d "$state" ]] && { stop_all; rm -rf "$state"; }
    mkdir -p "$state/munge" "$state/ctld" "$state/spool"
    chmod 700 "$state" "$state/munge"
    install_if_missing
    # an own munge key and socket: independent of (and invisible to) any munged the machine runs
    if command -v mungekey > /dev/null; then
      mungekey --create --keyfile="$state/munge/munge.key" --force > /dev/null
    else
      dd if=/dev/urandom of="$state/munge/munge.key" bs=1024 count=1 status=none
    fi
    chmod 400 "$state/munge/munge.key"
    launch munged munged --foreground --force --socket="$state/munge/munge.socket" \
      --key-file="$state/munge/munge.key" --pid-file="$state/munge/munged.pid" \
      --log-file="$state/munge/munged.log" --seed-file="$state/munge/munged.seed"
    for _ in $(seq 50); do [[ -S "$state/munge/munge.socket" ]] && break; sleep 0.2; done
    if [[ ! -S "$state/munge/munge.socket" ]]; then
      cat "$state/munged.out" "$state/munge/munged.log" 2>/dev/null | tail -5 >&2
      stop_all; say "munged did not start"; exit 1
    fi
    write_conf
    write_sacct
    launch slurmctld slurmctld -D -i -f "$conf"
    launch slurmd slurmd -D -N localhost -f "$conf"
    for _ in $(seq 90); do
      if is_up; then
        say "cluster up: $(SLURM_CONF="$conf" sinfo -h -o '%P %D %c %T' | head -1) (conf $conf)"
        echo "export SLURM_CONF=$conf PATH=$state/bin:\$PATH"
        exit 0
      fi
      for name in slurmctld slurmd; do
        if ! kill -0 "$(cat "$state/$name.started")" 2>/dev/null; then
          tail -5 "$state/$name.log" "$state/$name.out" 2>/dev/null >&2
          stop_all; say "$name exited during start (logs in $state)"; exit 1
        fi
      done
      sleep 1
    done
    SLURM_CONF="$conf" sinfo -N -l >&2 || true
    tail -5 "$state/slurmctld.log" "$state/slurmd.log" >&2 || true
    stop_all
    say "the node did not become idle within 90 s (logs in $state)"
    exit 1
    ;;
  stop)
    if [[ -d "$state" ]]; then
      stop_all
      rm -rf "$state"
    fi
    ;;
  status)
    if is_up; then SLURM_CONF="$conf" sinfo; else say "not running (state dir $state)"; exit 1; fi
    ;;
  *)
    echo "usage: $0 start|stop|status [STATE_DIR]" >&2
    exit 2
    ;;
esac
