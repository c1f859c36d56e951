#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the `slurm` tests and for trying the submitit launcher.
#
#   scripts/local_slurm.sh start [STATE_DIR]    install slurm-wlm, munge, slurmdbd and mariadb-server if missing
#                                               (apt-get, needs root), start munged, a MariaDB server and slurmdbd
#                                               (real job accounting: sacct answers as on a site cluster),
#                                               slurmctld and slurmd, wait until the node is idle
#   scripts/local_slurm.sh stop [STATE_DIR]     stop exactly the daemons `start` started, delete STATE_DIR
#   scripts/local_slurm.sh status [STATE_DIR]   exit 0 and print `sinfo` while the cluster answers
#
# Everything lives in STATE_DIR ($AGEBENCH_SLURM_DIR or /tmp/agebench-slurm): slurm.conf, its own munge
# key and socket, spool and state dirs, logs and pid files; nothing under /etc is changed, and a munged
# or Slurm the machine already runs is left alone. Slurm's clients (sbatch, sinfo, submitit) find this
# cluster through SLURM_CONF: `start` prints `export SLURM_CONF=... AGEBENCH_SLURM_ACCOUNTING=...` on stdout
# (progress goes to stderr), so
#
#   eval "$(scripts/local_slurm.sh start)"
#
# sets it in your shell. The node is `localhost` with this machine's CPU count and memory, in partition
# `cpu`; daemons talk on 127.0.0.1 on free ports; process tracking is proctrack/linuxproc and no cgroup
# plugin is used, so it runs in a container.
#
# Accounting: slurmctld reports every job to slurmdbd, which stores it in its own MariaDB (datadir, socket and
# a TCP port on 127.0.0.1, all in STATE_DIR); the real `sacct` reads it back, as submitit's state polls do on
# a site cluster. AGEBENCH_SLURM_ACCOUNTING=slurmdbd says so. Only where slurmdbd or MariaDB is missing and
# cannot be installed (not root) does `start` fall back to the sacct stand-in of write_sacct (PATH gains it,
# AGEBENCH_SLURM_ACCOUNTING=standin, and one stderr line says why); docs/sweeps.md compares the two.
set -euo pipefail

action=${1:-}
state=${2:-${AGEBENCH_SLURM_DIR:-/tmp/agebench-slurm}}
conf="$state/slurm.conf"
say() { echo "local_slurm: $*" >&2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

have_accounting() {
  command -v slurmdbd > /dev/null && command -v mariadbd > /dev/null && command -v mariadb-install-db > /dev/null
}

install_if_missing() {
  if command -v slurmctld > /dev/null && command -v slurmd > /dev/null && command -v munged > /dev/null \
      && have_accounting; then
    return
  fi
  if [[ $(id -u) -ne 0 ]] && command -v slurmctld > /dev/null && command -v munged > /dev/null; then
    return  # Slurm is there; accounting is not and cannot be installed here: the stand-in (see the header)
  fi
  if [[ $(id -u) -ne 0 ]]; then
    say "slurmctld/slurmd/munged are not installed; run as root (apt-get install slurm-wlm munge) first"
    exit 1
  fi
  say "installing slurm-wlm, munge, slurmdbd and mariadb-server with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  if ! { apt-get update -q && apt-get install -y -q --no-install-recommends slurm-wlm munge; } > "$state/apt.log" 2>&1; then
    tail -20 "$state/apt.log" >&2
    say "apt-get install slurm-wlm munge failed (log: $state/apt.log)"
    exit 1
  fi
  # the packages' own services stay down (policy-rc.d in containers); we start our own daemons anyway
  if ! apt-get install -y -q --no-install-recommends slurmdbd mariadb-server >> "$state/apt.log" 2>&1; then
    say "apt-get install slurmdbd mariadb-server failed (log: $state/apt.log): accounting falls back to the stand-in"
  fi
}

# MariaDB in STATE_DIR for slurmdbd: its own datadir, socket and pid file, TCP on 127.0.0.1 only, and a
# `slurm` user that may use only slurm_acct_db. The buffer pool and lock timeout slurmdbd asks for (it warns below).
start_mariadb() {
  local port=$1 user
  user=$(id -un)
  if ! mariadb-install-db --no-defaults --datadir="$state/mysql" --user="$user" \
      --auth-root-authentication-method=socket --skip-test-db > "$state/mariadb-install.log" 2>&1; then
    tail -5 "$state/mariadb-install.log" >&2; return 1
  fi
  launch mariadbd mariadbd --no-defaults --datadir="$state/mysql" --socket="$state/mysql.sock" --port="$port" \
    --bind-address=127.0.0.1 --skip-name-resolve --pid-file="$state/mariadbd.pid" --user="$user" \
    --log-error="$state/mariadbd.log" --innodb-buffer-pool-size=1G --innodb-lock-wait-timeout=900
  for _ in $(seq 100); do
    mariadb --no-defaults --socket="$state/mysql.sock" -u root -e 'select 1' > /dev/null 2>&1 && break
    sleep 0.2
  done
  mariadb --no-defaults --socket="$state/mysql.sock" -u root -e "
    CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$db_pass';
    GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';" 2>> "$state/mariadbd.log"
}

write_slurmdbd_conf() {
  local db_port=$1
  # slurmdbd reads slurmdbd.conf from SLURM_CONF's directory; it holds the DB password: owner-only
  ( umask 077
    cat > "$state/slurmdbd.conf" <<EOF_DBD
# written by scripts/local_slurm.sh: accounting for the one-node cluster, stored in $state/mysql
AuthType=auth/munge
AuthInfo=socket=$state/munge/munge.socket
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$dbd_port
SlurmUser=$(id -un)
DebugLevel=info
LogFile=$state/slurmdbd.log
PidFile=$state/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$db_port
StorageUser=slurm
StoragePass=$db_pass
StorageLoc=slurm_acct_db
EOF_DBD
  )
}

# slurmdbd up and the cluster registered (before slurmctld, which then reports its jobs there)
start_accounting() {
  local db_port
  db_port=$(free_port)
  db_pass=$(head -c 18 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')
  start_mariadb "$db_port" || { say "MariaDB did not start (log: $state/mariadbd.log)"; return 1; }
  write_slurmdbd_conf "$db_port"
  SLURM_CONF="$conf" launch slurmdbd slurmdbd -D
  for _ in $(seq 50); do
    SLURM_CONF="$conf" timeout 5 sacctmgr -n -P show cluster > /dev/null 2>&1 && break
    kill -0 "$(cat "$state/slurmdbd.started")" 2>/dev/null || break
    sleep 0.3
  done
  if ! SLURM_CONF="$conf" timeout 20 sacctmgr -i add cluster agebench > "$state/sacctmgr.out" 2>&1; then
    tail -5 "$state/sacctmgr.out" "$state/slurmdbd.log" >&2 2>/dev/null
    say "slurmdbd did not answer sacctmgr (logs in $state)"; return 1
  fi
}

accounting_lines() {
  if [[ "$accounting" == slurmdbd ]]; then
    # AccountingStoragePass: the munge socket clients (sacct, sacctmgr, slurmctld) authenticate to slurmdbd with
    printf 'AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=localhost\nAccountingStoragePort=%s\nAccountingStoragePass=%s\n' \
      "$dbd_port" "$state/munge/munge.socket"
  else
    echo "AccountingStorageType=accounting_storage/none"
  fi
}

write_conf() {
  local cpus mem_mb ctld_port d_port user
  cpus=$(nproc)
  # RealMemory a little under the machine's, so that slurmd never finds less than it was promised
  mem_mb=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  ctld_port=$(free_port)
  while [[ "$ctld_port" == "$dbd_port" ]]; do ctld_port=$(free_port); done
  d_port=$(free_port)
  while [[ "$d_port" == "$ctld_port" || "$d_port" == "$dbd_port" ]]; do d_port=$(free_port); done
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
$(accounting_lines)
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

# The fallback where slurmdbd or MariaDB cannot be installed: the real sacct then answers "Slurm accounting
# storage is disabled". submitit polls job states with `sacct -o JobID,State,NodeList --parsable2 -j <id>`
# and, without an answer, waits forever for a job that ended without a result (cancelled, killed, exited).
# This stand-in answers that one query from slurmctld, which keeps finished jobs for MinJobAge seconds;
# `start` puts it first on PATH only in that fallback.
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

# what a shell evals: the cluster's config, its accounting kind and (fallback only) the stand-in's PATH
exports() {
  echo "$accounting" > "$state/accounting"
  if [[ "$accounting" == slurmdbd ]]; then
    echo "export SLURM_CONF=$conf AGEBENCH_SLURM_ACCOUNTING=slurmdbd"
  else
    echo "export SLURM_CONF=$conf AGEBENCH_SLURM_ACCOUNTING=standin PATH=$state/bin:\$PATH"
  fi
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
  for name in slurmd slurmctld slurmdbd mariadbd munged; do
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
      accounting=$(cat "$state/accounting" 2>/dev/null || echo standin)
      exports; exit 0
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
    accounting=standin dbd_port=0
    if have_accounting; then
      dbd_port=$(free_port)
      accounting=slurmdbd
      write_conf  # sacctmgr finds slurmdbd through slurm.conf
      if ! start_accounting; then
        stop_all; say "accounting (MariaDB + slurmdbd) did not start (logs in $state)"; exit 1
      fi
    else
      say "accounting: slurmdbd or MariaDB is not installed (as root: apt-get install slurmdbd mariadb-server); sacct is a stand-in that reads scontrol (docs/sweeps.md)"
    fi
    write_conf
    write_sacct
    launch slurmctld slurmctld -D -i -f "$conf"
    launch slurmd slurmd -D -N localhost -f "$conf"
    for _ in $(seq 90); do
      if is_up; then
        say "cluster up: $(SLURM_CONF="$conf" sinfo -h -o '%P %D %c %T' | head -1) (conf $conf; accounting: $accounting)"
        exports
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
