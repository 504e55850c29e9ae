#!/usr/bin/env bash
# Stop what scripts/test-services.sh started (dockerd, Azurite, moto_server, and the
# single-node Slurm with its login sshd),
# each found by its pidfile and checked by its process name (pids get reused).
# Containers dockerd ran are stopped with it; images and state stay in the folder.
set -euo pipefail

D="${TES_SERVICES_DIR:-/tmp/tes-test-services}"

# stop NAME PIDFILE COMM: SIGTERM the process if it is still COMM, SIGKILL after 30 s.
stop() {
    local name="$1" pidfile="$2" comm="$3" pid
    if [[ ! -s "$pidfile" ]]; then
        echo "[test-services] no $name pidfile in $D; nothing to stop" >&2
        return 0
    fi
    pid="$(cat "$pidfile")"
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "[test-services] $name $pid is not running" >&2
        rm -f "$pidfile"
        return 0
    fi
    if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != "$comm" ]]; then
        echo "[test-services] pid $pid is not $name; leaving it alone" >&2
        return 0
    fi
    kill -TERM "$pid"
    for _ in $(seq 1 150); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$pid" 2>/dev/null; then
        echo "[test-services] $name $pid ignored SIGTERM for 30 s; killing it" >&2
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
    echo "[test-services] $name $pid stopped"
}

stop azurite "$D/azurite.pid" node
stop moto_server "$D/moto.pid" moto_server
stop dockerd "$D/dockerd.pid" dockerd
S="$D/slurm"
stop slurmd "$S/run/slurmd.pid" slurmd
stop slurmctld "$S/run/slurmctld.pid" slurmctld
stop slurmdbd "$S/run/slurmdbd.pid" slurmdbd
stop munged "$S/munge/munged.pid" munged
stop sshd "$S/ssh/sshd.pid" sshd
