#!/usr/bin/env bash
# Stop the dockerd that scripts/test-services.sh started (found by its pidfile).
# Containers it ran are stopped with it; images and state stay in the folder.
set -euo pipefail

D="${TES_SERVICES_DIR:-/tmp/tes-test-services}"
PIDFILE="$D/dockerd.pid"

if [[ ! -s "$PIDFILE" ]]; then
    echo "[test-services] no dockerd pidfile in $D; nothing to stop" >&2
    exit 0
fi
pid="$(cat "$PIDFILE")"
if ! kill -0 "$pid" 2>/dev/null; then
    echo "[test-services] dockerd $pid is not running" >&2
    rm -f "$PIDFILE"
    exit 0
fi
# Only stop the process if it really is a dockerd (pids get reused).
if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" != dockerd ]]; then
    echo "[test-services] pid $pid is not dockerd; leaving it alone" >&2
    exit 0
fi
kill -TERM "$pid"
for _ in $(seq 1 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
done
if kill -0 "$pid" 2>/dev/null; then
    echo "[test-services] dockerd $pid ignored SIGTERM for 30 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
fi
echo "[test-services] dockerd $pid stopped"
