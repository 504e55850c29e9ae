#!/usr/bin/env bash
# Install and start the container engines the test suite runs real tasks on,
# and the storage services: Azurite (Azure Blob) and moto_server (S3).
#
# Idempotent: safe to run again; it only installs what is missing, starts
# dockerd, Azurite and moto_server only if the ones it started before are gone,
# and imports the test images only if they are not there yet.
#
# Afterwards:  source "${TES_SERVICES_DIR:-/tmp/tes-test-services}/env.sh"
# which exports DOCKER_HOST, CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
# TES_TEST_AZURITE_ACCOUNT_URL, TES_TEST_AZURITE_CONNECTION_STRING,
# TES_TEST_AZURITE_CONNECTION_STRING_2 (a second Azurite account) and
# TES_TEST_S3_ENDPOINT, and SLURM_CONF with the TES_TEST_SLURM_* names.
# Stop with scripts/stop-test-services.sh (stops only what was started here).
set -euo pipefail

D="${TES_SERVICES_DIR:-/tmp/tes-test-services}"
T0=$(date +%s.%N)
mkdir -p "$D"

log() { printf '[test-services] %s\n' "$*" >&2; }
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- 1. packages
pkg_installed() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

WANTED=(docker.io podman runc bubblewrap busybox-static uidmap util-linux chromium chromium-driver)
MISSING=()
for p in "${WANTED[@]}"; do
    pkg_installed "$p" || MISSING+=("$p")
done
if ((${#MISSING[@]})); then
    log "installing: ${MISSING[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >"$D/apt.log" 2>&1 || {
        tail -n 30 "$D/apt.log" >&2
        exit 1
    }
else
    log "packages already installed"
fi
T_APT=$(elapsed "$T0")

# ---------------------------------------------------------------- 2. dockerd
T1=$(date +%s.%N)
export DOCKER_HOST="unix://$D/docker.sock"
mkdir -p "$D/docker-data" "$D/docker-exec"

dockerd_alive() {
    [[ -s "$D/dockerd.pid" ]] && kill -0 "$(cat "$D/dockerd.pid")" 2>/dev/null
}

if dockerd_alive; then
    log "dockerd already running (pid $(cat "$D/dockerd.pid"))"
else
    rm -f "$D/dockerd.pid" "$D/docker.sock"
    log "starting dockerd (state in $D)"
    # setsid: dockerd must outlive this script and not get its terminal's signals.
    setsid dockerd -H "$DOCKER_HOST" \
        --data-root "$D/docker-data" --exec-root "$D/docker-exec" \
        --pidfile "$D/dockerd.pid" --bridge=none --iptables=false --ip6tables=false \
        --ip-masq=false --storage-driver=overlay2 \
        </dev/null >"$D/dockerd.log" 2>&1 &
fi

deadline=$((SECONDS + 60))
until docker version --format '{{.Server.Version}}' >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
        log "dockerd did not answer within 60 s; last lines of $D/dockerd.log:"
        tail -n 40 "$D/dockerd.log" >&2 || true
        exit 1
    fi
    sleep 0.2
done
log "dockerd $(docker version --format '{{.Server.Version}}') answers at $DOCKER_HOST"
T_DOCKERD=$(elapsed "$T1")

# ------------------------------------------------------- 3. the busybox image
T2=$(date +%s.%N)
TAGS=(busybox:latest alpine:latest ubuntu:latest debian:latest)
ROOTFS_TAR="$D/busybox-rootfs.tar"

build_rootfs() {
    [[ -s "$ROOTFS_TAR" ]] && return 0
    local root="$D/busybox-rootfs"
    rm -rf "$root"
    mkdir -p "$root"/{bin,etc,tmp,root,home,proc,sys,dev,var,usr}
    chmod 1777 "$root/tmp"
    cp /bin/busybox "$root/bin/busybox"
    local applet
    for applet in $("$root/bin/busybox" --list); do
        [[ "$applet" == busybox ]] || ln -sf busybox "$root/bin/$applet"
    done
    # Scripts use /usr/bin/env, /usr/bin/..., /sbin/...: all are the one /bin.
    ln -s ../bin "$root/usr/bin"
    ln -s bin "$root/sbin"
    ln -s ../bin "$root/usr/sbin"
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        >"$root/etc/passwd"
    printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
    tar --numeric-owner --owner=0 --group=0 -C "$root" -cf "$ROOTFS_TAR.part" .
    mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
}

# import_images ENGINE: import the busybox rootfs under every tag it lacks.
import_images() {
    local engine="$1" tag
    if ! "$engine" image inspect busybox:latest >/dev/null 2>&1; then
        build_rootfs
        "$engine" import --change 'CMD ["/bin/sh"]' - busybox:latest \
            <"$ROOTFS_TAR" >/dev/null 2>"$D/$engine-import.log" || {
            cat "$D/$engine-import.log" >&2
            exit 1
        }
        log "$engine: imported busybox:latest"
    fi
    local tags=("${TAGS[@]:1}")
    if [[ "$engine" == podman ]]; then
        # podman keeps local images as localhost/NAME; fully qualified names in
        # task documents (docker.io/library/alpine:latest) need their own tag.
        for tag in "${TAGS[@]}"; do tags+=("docker.io/library/$tag"); done
    fi
    for tag in "${tags[@]}"; do
        if ! "$engine" image inspect "$tag" >/dev/null 2>&1; then
            "$engine" tag busybox:latest "$tag"
            log "$engine: tagged $tag"
        fi
    done
}

import_images docker
T_DOCKER_IMG=$(elapsed "$T2")

# ---------------------------------------------------------------- podman
T3=$(date +%s.%N)
export CONTAINERS_CONF="$D/containers.conf"
cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF

# Keep podman's images and containers in the state folder too, if overlay
# storage works there with runc; otherwise fall back to podman's default store.
export CONTAINERS_STORAGE_CONF="$D/storage.conf"
if [[ ! -s "$CONTAINERS_STORAGE_CONF" ]]; then
    mkdir -p "$D/podman-root" "$D/podman-run"
    cat >"$CONTAINERS_STORAGE_CONF.try" <<EOF
[storage]
driver = "overlay"
graphroot = "$D/podman-root"
runroot = "$D/podman-run"
EOF
    build_rootfs
    if CONTAINERS_STORAGE_CONF="$CONTAINERS_STORAGE_CONF.try" \
        podman import - tes-storage-probe:latest <"$ROOTFS_TAR" >/dev/null 2>"$D/podman-probe.log" &&
        CONTAINERS_STORAGE_CONF="$CONTAINERS_STORAGE_CONF.try" \
            podman run --rm --network none tes-storage-probe:latest true 2>>"$D/podman-probe.log"; then
        CONTAINERS_STORAGE_CONF="$CONTAINERS_STORAGE_CONF.try" \
            podman rmi tes-storage-probe:latest >/dev/null 2>&1 || true
        mv "$CONTAINERS_STORAGE_CONF.try" "$CONTAINERS_STORAGE_CONF"
        log "podman: storage in $D/podman-root"
    else
        log "podman: storage in $D does not work here ($(tail -n 1 "$D/podman-probe.log")); using the default store"
        rm -f "$CONTAINERS_STORAGE_CONF.try"
        : >"$CONTAINERS_STORAGE_CONF.default"
    fi
fi
if [[ -e "$CONTAINERS_STORAGE_CONF.default" ]]; then
    unset CONTAINERS_STORAGE_CONF
fi
import_images podman
T_PODMAN=$(elapsed "$T3")

# ------------------------------------------------ 4. storage: Azurite and moto
# Azure Blob (Azurite, checks SAS signatures) on 127.0.0.1:10000 and S3
# (moto_server) on 127.0.0.1:5000, for tes-filetransfer and the plugins that
# rewrite task URLs to blob URLs. Each is started only if its pid is gone.
T4=$(date +%s.%N)
AZURITE_VERSION=3.37.0
AZURITE_DIR="$D/azurite"
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
# A second account, for the tests of a server that signs for several accounts. Naming
# accounts in AZURITE_ACCOUNTS turns off the built-in devstoreaccount1, so it is listed
# too, with its well-known key. The second key is a test value, not a secret.
AZURITE_ACCOUNT2=tesrefs
AZURITE_KEY2='dGVzLWNvcmUgdGVzdCBhY2NvdW50IHRlc3JlZnMsIG5vdCBhIHNlY3JldA=='
AZURITE_ACCOUNTS_WANTED="devstoreaccount1:$AZURITE_KEY;$AZURITE_ACCOUNT2:$AZURITE_KEY2"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pid_alive() { [[ -s "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null; }
wait_port() { # NAME PORT LOGFILE
    local deadline=$((SECONDS + 60))
    until port_open "$2"; do
        if ((SECONDS >= deadline)); then
            log "$1 did not listen on 127.0.0.1:$2 within 60 s; last lines of $3:"
            tail -n 40 "$3" >&2 || true
            exit 1
        fi
        sleep 0.2
    done
}

if [[ ! -x "$AZURITE_DIR/node_modules/.bin/azurite-blob" ]] ||
    ! grep -q "\"version\": \"$AZURITE_VERSION\"" \
        "$AZURITE_DIR/node_modules/azurite/package.json" 2>/dev/null; then
    if ! command -v npm >/dev/null; then
        log "installing: nodejs npm"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq --no-install-recommends nodejs npm >>"$D/apt.log" 2>&1
    fi
    log "installing azurite@$AZURITE_VERSION into $AZURITE_DIR"
    mkdir -p "$AZURITE_DIR"
    npm install --prefix "$AZURITE_DIR" --no-audit --no-fund --loglevel=error \
        "azurite@$AZURITE_VERSION" >"$D/azurite-npm.log" 2>&1 || {
        tail -n 30 "$D/azurite-npm.log" >&2
        exit 1
    }
fi
if pid_alive "$D/azurite.pid"; then
    log "azurite already running (pid $(cat "$D/azurite.pid"))"
    grep -qx "$AZURITE_ACCOUNT2" "$D/azurite.accounts" 2>/dev/null ||
        log "that azurite has no account $AZURITE_ACCOUNT2: the tests of several accounts" \
            "will not run until it is restarted (scripts/stop-test-services.sh, then this)"
else
    if port_open 10000; then
        log "127.0.0.1:10000 is taken by a process this script did not start; using it as Azurite"
        rm -f "$D/azurite.accounts"
    else
        # A fresh, empty store at every start: tests create their own containers.
        rm -rf "$D/azurite-data"
        mkdir -p "$D/azurite-data"
        printf '%s\n' "$AZURITE_ACCOUNT2" >"$D/azurite.accounts"
        AZURITE_ACCOUNTS="$AZURITE_ACCOUNTS_WANTED" \
        setsid "$AZURITE_DIR/node_modules/.bin/azurite-blob" \
            --blobHost 127.0.0.1 --blobPort 10000 --location "$D/azurite-data" \
            --skipApiVersionCheck --loose --disableTelemetry --silent \
            </dev/null >"$D/azurite.log" 2>&1 &
        echo $! >"$D/azurite.pid"
        wait_port azurite 10000 "$D/azurite.log"
        log "azurite $AZURITE_VERSION on 127.0.0.1:10000 (pid $(cat "$D/azurite.pid"))"
    fi
fi

# moto_server comes with the test extra of tes-filetransfer (moto[server]);
# it is looked up in the test venv first, then on PATH.
MOTO_SERVER=""
for c in "${TES_VENV:-$(dirname "$0")/../.venv}/bin/moto_server" "$(command -v moto_server || true)"; do
    if [[ -n "$c" && -x "$c" ]]; then MOTO_SERVER="$c"; break; fi
done
if pid_alive "$D/moto.pid"; then
    log "moto_server already running (pid $(cat "$D/moto.pid"))"
elif port_open 5000; then
    log "127.0.0.1:5000 is taken by a process this script did not start; using it as moto_server"
elif [[ -z "$MOTO_SERVER" ]]; then
    log "moto_server not found (install tes-filetransfer[test]); S3 tests will not run"
else
    setsid "$MOTO_SERVER" -H 127.0.0.1 -p 5000 </dev/null >"$D/moto.log" 2>&1 &
    echo $! >"$D/moto.pid"
    wait_port moto_server 5000 "$D/moto.log"
    log "moto_server on 127.0.0.1:5000 (pid $(cat "$D/moto.pid"))"
fi
T_STORAGE=$(elapsed "$T4")

# ---------------------------------------------------------------- 5. Slurm
# A single-node Slurm (munge, slurmdbd, slurmctld, slurmd) and a loopback sshd as
# its login node, for the tes-slurm plugin: see scripts/slurm-services.sh.
T5=$(date +%s.%N)
bash "$(dirname "$0")/slurm-services.sh"
T_SLURM=$(elapsed "$T5")

# ---------------------------------------------------------------- 6. env.sh
{
    printf '# written by scripts/test-services.sh\n'
    printf 'export TES_SERVICES_DIR=%q\n' "$D"
    printf 'export DOCKER_HOST=%q\n' "$DOCKER_HOST"
    printf 'export CONTAINERS_CONF=%q\n' "$CONTAINERS_CONF"
    if [[ -n "${CONTAINERS_STORAGE_CONF:-}" ]]; then
        printf 'export CONTAINERS_STORAGE_CONF=%q\n' "$CONTAINERS_STORAGE_CONF"
    fi
    printf 'export TES_TEST_AZURITE_ACCOUNT_URL=%q\n' "http://127.0.0.1:10000/devstoreaccount1"
    printf 'export TES_TEST_AZURITE_CONNECTION_STRING=%q\n' \
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=$AZURITE_KEY;BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
    # Only when the running Azurite was started here with the second account.
    if grep -qx "$AZURITE_ACCOUNT2" "$D/azurite.accounts" 2>/dev/null; then
        printf 'export TES_TEST_AZURITE_CONNECTION_STRING_2=%q\n' \
            "DefaultEndpointsProtocol=http;AccountName=$AZURITE_ACCOUNT2;AccountKey=$AZURITE_KEY2;BlobEndpoint=http://127.0.0.1:10000/$AZURITE_ACCOUNT2;"
    fi
    printf 'export TES_TEST_S3_ENDPOINT=%q\n' "http://127.0.0.1:5000"
    cat "$D/slurm/env.sh"
} >"$D/env.sh.part"
mv "$D/env.sh.part" "$D/env.sh"

echo "test services ready in $(elapsed "$T0") s" \
    "(packages ${T_APT} s, dockerd ${T_DOCKERD} s, docker images ${T_DOCKER_IMG} s," \
    "podman ${T_PODMAN} s, storage ${T_STORAGE} s, slurm ${T_SLURM} s); source $D/env.sh"
