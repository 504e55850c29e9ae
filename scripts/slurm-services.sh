#!/usr/bin/env bash
# Install and start a single-node Slurm for the tests of the tes-slurm plugin:
# munged (its own socket and key), slurmdbd (accounting on the local MariaDB, so
# `sacct` works), slurmctld, slurmd, and an sshd on a loopback port with generated
# keys (the "login node" the SSH path of the backend reaches).
#
# Called once per run by scripts/test-services.sh. Idempotent: installs only what
# is missing, writes the configuration once, starts a daemon only if the one it
# started before is gone. State, configuration and logs: $TES_SERVICES_DIR/slurm.
# Writes $TES_SERVICES_DIR/slurm/env.sh (SLURM_CONF and the TES_TEST_SLURM_* names),
# which scripts/test-services.sh sources into its env.sh.
#
# The facts this relies on are in TEST-SERVICES.md ("Slurm"): short host name for
# SlurmctldHost/NodeName/DbdHost with NodeAddr=127.0.0.1, AuthInfo=socket=... in
# both files, proctrack/linuxproc, task/none, cons_tres with CR_Core_Memory.
set -euo pipefail

D="${TES_SERVICES_DIR:-/tmp/tes-test-services}"
S="$D/slurm"
T0=$(date +%s.%N)
mkdir -p "$S"
chmod 755 "$S"

log() { printf '[slurm-services] %s\n' "$*" >&2; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_for() { # WHAT LOGFILE COMMAND...: retry COMMAND for 60 s
    local what="$1" logfile="$2" deadline=$((SECONDS + 60))
    shift 2
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            log "$what did not come up within 60 s; last lines of $logfile:"
            tail -n 40 "$logfile" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
}

# Ports of our own, so a Slurm of the machine (if any) is left alone.
CTLD_PORT=16817
SLURMD_PORT=16818
DBD_PORT=16819
SSH_PORT=16822
HOST="$(hostname -s)"
DB_NAME=tes_slurm_acct

# ---------------------------------------------------------------- 1. packages
pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}
MISSING=()
for p in slurm-wlm munge slurmdbd openssh-server openssh-client; do
    pkg_installed "$p" || MISSING+=("$p")
done
if ((${#MISSING[@]})); then
    log "installing: ${MISSING[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >"$S/apt.log" 2>&1 || {
        tail -n 30 "$S/apt.log" >&2
        exit 1
    }
fi

# ---------------------------------------------------------------- 2. munge
MUNGE_SOCKET="$S/munge/munge.socket"
mkdir -p "$S/munge"
chmod 700 "$S/munge"
if [[ ! -s "$S/munge/munge.key" ]]; then
    dd if=/dev/urandom of="$S/munge/munge.key.part" bs=1024 count=1 status=none
    chmod 400 "$S/munge/munge.key.part"
    mv "$S/munge/munge.key.part" "$S/munge/munge.key"
fi
if pid_alive "$S/munge/munged.pid"; then
    log "munged already running"
else
    rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
    munged --force --socket="$MUNGE_SOCKET" --key-file="$S/munge/munge.key" \
        --pid-file="$S/munge/munged.pid" --log-file="$S/munge/munged.log" \
        --seed-file="$S/munge/munged.seed" >>"$S/munge/munged.out" 2>&1
fi
wait_for munged "$S/munge/munged.log" munge -n -S "$MUNGE_SOCKET"

# ---------------------------------------------------------------- 3. configuration
mkdir -p "$S/state" "$S/spool" "$S/log" "$S/run" "$S/tmp"
CHANGED=()
write_if_changed() { # FILE: stdin replaces FILE only when different (noted in CHANGED)
    local part="$1.part"
    cat >"$part"
    if cmp -s "$part" "$1"; then rm -f "$part"; else mv "$part" "$1"; CHANGED+=("$1"); fi
}
stop_pidfile() { # PIDFILE: stop the daemon this script started, if it runs
    if pid_alive "$1"; then
        local pid
        pid="$(cat "$1")"
        kill "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
}
write_if_changed "$S/slurmdbd.conf" <<EOF
# written by scripts/slurm-services.sh
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$HOST
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
PidFile=$S/run/slurmdbd.pid
LogFile=$S/log/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=root
StorageLoc=$DB_NAME
EOF
chmod 600 "$S/slurmdbd.conf"

write_if_changed "$S/slurm.conf" <<EOF
# written by scripts/slurm-services.sh
ClusterName=tes
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
CredType=cred/munge
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=256
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
# The node offers more CPUs than the machine has, so several test jobs run at once.
SlurmdParameters=config_overrides
ReturnToService=2
# Refuse at sbatch what could never run (as most sites do), rather than leave it pending.
EnforcePartLimits=ALL
MinJobAge=300
KillWait=5
InactiveLimit=0
TmpFS=$S/tmp
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$HOST
AccountingStoragePort=$DBD_PORT
AccountingStoragePass=$MUNGE_SOCKET
MpiDefault=none
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=8 RealMemory=8000 TmpDisk=100000 State=UNKNOWN
# Jobs of debug preempt (cancel) those of spot, the partition of preemptible tasks.
PreemptType=preempt/partition_prio
PreemptMode=CANCEL
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP PriorityTier=10
PartitionName=spot Nodes=$HOST MaxTime=INFINITE State=UP PriorityTier=1
# A partition that takes jobs but never starts them: a job there waits, with a reason.
PartitionName=closed Nodes=$HOST MaxTime=INFINITE State=DOWN PriorityTier=1
EOF
export SLURM_CONF="$S/slurm.conf"
if [[ " ${CHANGED[*]} " == *" $S/slurm.conf "* ]]; then
    # A new configuration: the daemons started with the old one start again.
    stop_pidfile "$S/run/slurmd.pid"
    stop_pidfile "$S/run/slurmctld.pid"
fi

# ---------------------------------------------------------------- 4. daemons
T1=$(date +%s.%N)
if pid_alive "$S/run/slurmdbd.pid"; then
    log "slurmdbd already running"
else
    # MariaDB runs on every machine of ours; start it again if it was stopped.
    if ! mysql -h 127.0.0.1 -u root -e 'SELECT 1' >/dev/null 2>&1 && [[ -x /etc/init.d/mariadb ]]; then
        log "starting MariaDB"
        /etc/init.d/mariadb start >>"$S/log/mariadb-start.log" 2>&1 || true
    fi
    mysql -h 127.0.0.1 -u root -e "CREATE DATABASE IF NOT EXISTS $DB_NAME" ||
        { log "MariaDB on 127.0.0.1:3306 (root, empty password) does not answer"; exit 1; }
    # slurmdbd reads slurmdbd.conf next to $SLURM_CONF.
    slurmdbd >>"$S/log/slurmdbd.out" 2>&1
    wait_for slurmdbd "$S/log/slurmdbd.log" port_open "$DBD_PORT"
    # The cluster must exist in the accounting database before slurmctld registers.
    sacctmgr -i add cluster tes >>"$S/log/sacctmgr.log" 2>&1 || true
fi
if pid_alive "$S/run/slurmctld.pid"; then
    log "slurmctld already running"
else
    slurmctld -f "$S/slurm.conf" >>"$S/log/slurmctld.out" 2>&1
fi
wait_for slurmctld "$S/log/slurmctld.log" scontrol ping
if pid_alive "$S/run/slurmd.pid"; then
    log "slurmd already running"
else
    slurmd -f "$S/slurm.conf" >>"$S/log/slurmd.out" 2>&1
fi
node_idle() { sinfo -h -n "$HOST" -p debug -o %t | grep -Eq '^(idle|mix|alloc)'; }
wait_for "slurmd (node $HOST idle)" "$S/log/slurmd.log" node_idle
T_DAEMONS=$(elapsed "$T1")

# ---------------------------------------------------------------- 5. sshd
mkdir -p "$S/ssh" /run/sshd
chmod 700 "$S/ssh"
[[ -s "$S/ssh/host_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -f "$S/ssh/host_ed25519"
[[ -s "$S/ssh/client_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -f "$S/ssh/client_ed25519"
cp "$S/ssh/client_ed25519.pub" "$S/ssh/authorized_keys"
chmod 600 "$S/ssh/authorized_keys"
printf '[127.0.0.1]:%s %s\n' "$SSH_PORT" "$(cut -d' ' -f1,2 "$S/ssh/host_ed25519.pub")" \
    >"$S/ssh/known_hosts"
write_if_changed "$S/ssh/sshd_config" <<EOF
# written by scripts/slurm-services.sh: a login node on loopback, key login only
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $S/ssh/host_ed25519
AuthorizedKeysFile $S/ssh/authorized_keys
PidFile $S/ssh/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
SetEnv SLURM_CONF=$S/slurm.conf
MaxStartups 50:30:100
MaxSessions 50
EOF
if pid_alive "$S/ssh/sshd.pid"; then
    log "sshd already running"
else
    "$(command -v sshd || echo /usr/sbin/sshd)" -f "$S/ssh/sshd_config" -E "$S/log/sshd.log"
    wait_for sshd "$S/log/sshd.log" port_open "$SSH_PORT"
fi

# ---------------------------------------------------------------- 6. env.sh
{
    printf '# written by scripts/slurm-services.sh\n'
    printf 'export SLURM_CONF=%q\n' "$S/slurm.conf"
    printf 'export TES_TEST_SLURM=1\n'
    printf 'export TES_TEST_SLURM_SSH=%q\n' "root@127.0.0.1"
    printf 'export TES_TEST_SLURM_SSH_PORT=%q\n' "$SSH_PORT"
    printf 'export TES_TEST_SLURM_SSH_KEY=%q\n' "$S/ssh/client_ed25519"
    printf 'export TES_TEST_SLURM_SSH_KNOWN_HOSTS=%q\n' "$S/ssh/known_hosts"
} >"$S/env.sh.part"
mv "$S/env.sh.part" "$S/env.sh"
log "slurm ready in $(elapsed "$T0") s (daemons ${T_DAEMONS} s); node $HOST, SLURM_CONF=$S/slurm.conf"
