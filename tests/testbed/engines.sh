#!/usr/bin/env bash
# Three local Docker engines for fleetctl's integration tests.
#
#   tests/testbed/engines.sh up       start engines a, b and c (no-op for any already answering)
#   tests/testbed/engines.sh down     stop the engines this script started (by pidfile only)
#   tests/testbed/engines.sh status   show each engine and whether it answers
#   tests/testbed/engines.sh env      print the export lines for the engine addresses
#
# Each engine is its own dockerd with its own data root, exec root, pidfile and
# unix socket, and no bridge network: test containers use host networking and
# listen on 127.0.0.1 only.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"
START_TIMEOUT_S="${FLEETCTL_TESTBED_START_TIMEOUT_S:-60}"

log() { printf '[engines] %s\n' "$*" >&2; }
die() { printf '[engines] error: %s\n' "$*" >&2; exit 1; }

answers() {
    local sock
    sock="$(socket_of "$1")"
    [[ -S "$sock" ]] || return 1
    timeout 10 docker -H "unix://$sock" info --format '{{.ServerVersion}}' >/dev/null 2>&1
}

ensure_docker() {
    if command -v dockerd >/dev/null 2>&1 && command -v docker >/dev/null 2>&1; then
        return 0
    fi
    log "dockerd not found; installing docker.io"
    apt_install docker.io || die "cannot install docker.io"
    command -v dockerd >/dev/null 2>&1 || die "docker.io installed but dockerd not found"
}

write_env() {
    mkdir -p "$RUN_DIR"
    local tmp="$RUN_DIR/env.tmp.$$" e
    {
        for e in "${ENGINES[@]}"; do
            printf 'export FLEETCTL_TESTBED_HOST_%s=%s\n' "${e^^}" "$(host_of "$e")"
        done
        printf 'export FLEETCTL_TESTBED_DIR=%s\n' "$TESTBED_DIR"
    } >"$tmp"
    mv -f "$tmp" "$RUN_DIR/env"
}

start_engine() {
    local e="$1" sock pidfile logfile data exec_root cfg pid
    sock="$(socket_of "$e")"
    pidfile="$(pidfile_of "$e")"
    logfile="$(logfile_of "$e")"
    data="$TESTBED_DIR/$e/data"
    exec_root="$RUN_DIR/$e"
    cfg="$TESTBED_DIR/$e/daemon.json"

    if answers "$e"; then
        log "engine $e already answers on $sock"
        return 0
    fi

    # A stale pidfile from a daemon that died: dockerd refuses to start while
    # the pidfile names a live process, so only clear it when the process is gone.
    if [[ -f "$pidfile" ]]; then
        pid="$(cat "$pidfile" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            log "engine $e: dockerd pid $pid is running but not answering yet; waiting"
            wait_for "$e" || die "engine $e (pid $pid) does not answer; see $logfile"
            return 0
        fi
        rm -f "$pidfile"
    fi
    rm -f "$sock"

    mkdir -p "$data" "$exec_root" "$(dirname "$logfile")"
    # Own config file so that a host-wide /etc/docker/daemon.json (hosts,
    # bridge settings) does not leak into the test engines, and an own key
    # file: the engine ID derives from it, and /etc/docker/key.json would give
    # all three engines the same ID.
    printf '{\n  "deprecated-key-path": "%s"\n}\n' "$TESTBED_DIR/$e/key.json" >"$cfg"

    log "starting engine $e on $sock (log: $logfile)"
    setsid dockerd \
        --config-file "$cfg" \
        --bridge=none --iptables=false --ip-masq=false \
        --data-root "$data" \
        --exec-root "$exec_root" \
        --pidfile "$pidfile" \
        --containerd-namespace "fleetctl-testbed-$e" \
        --containerd-plugins-namespace "fleetctl-testbed-$e-plugins" \
        -H "unix://$sock" \
        </dev/null >>"$logfile" 2>&1 9>&- &
    disown || true
}

wait_for() {
    local e="$1" deadline
    deadline=$(( $(date +%s) + START_TIMEOUT_S ))
    until answers "$e"; do
        if (( $(date +%s) >= deadline )); then
            log "engine $e did not answer within ${START_TIMEOUT_S}s; last log lines:"
            tail -n 20 "$(logfile_of "$e")" >&2 || true
            return 1
        fi
        sleep 0.3
    done
}

cmd_up() {
    [[ "$(id -u)" -eq 0 ]] || die "the test bed engines need root"
    ensure_docker
    mkdir -p "$RUN_DIR" "$TESTBED_DIR"
    local e t0
    t0=$(now_ms)
    for e in "${ENGINES[@]}"; do start_engine "$e"; done
    for e in "${ENGINES[@]}"; do
        wait_for "$e" || die "engine $e failed to start"
    done
    write_env
    log "engines up in $(( $(now_ms) - t0 )) ms; env file: $RUN_DIR/env"
}

cmd_down() {
    local e pidfile pid
    for e in "${ENGINES[@]}"; do
        pidfile="$(pidfile_of "$e")"
        if [[ ! -f "$pidfile" ]]; then
            log "engine $e: no pidfile, nothing to stop"
            continue
        fi
        pid="$(cat "$pidfile" 2>/dev/null || true)"
        if [[ -z "$pid" ]] || ! kill -0 "$pid" 2>/dev/null; then
            log "engine $e: pid ${pid:-?} not running; removing stale pidfile"
            rm -f "$pidfile"
            continue
        fi
        log "stopping engine $e (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        if kill -0 "$pid" 2>/dev/null; then
            log "engine $e (pid $pid) did not stop within 30s; sending KILL"
            kill -KILL "$pid" || true
        fi
        rm -f "$pidfile" "$(socket_of "$e")"
        # dockerd leaves its default network namespace bind-mounted in the exec root.
        { awk '{print $2}' /proc/mounts | grep -E "^$RUN_DIR/$e/" || true; } | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done
    done
    rm -f "$RUN_DIR/env"
}

cmd_status() {
    local e rc=0 pid version
    for e in "${ENGINES[@]}"; do
        pid="$(cat "$(pidfile_of "$e")" 2>/dev/null || echo -)"
        if answers "$e"; then
            version="$(docker -H "$(host_of "$e")" version --format '{{.Server.Version}}' 2>/dev/null || echo '?')"
            printf '%s  up    pid=%s  engine=%s  %s\n' "$e" "$pid" "$version" "$(host_of "$e")"
        else
            printf '%s  down  pid=%s  %s\n' "$e" "$pid" "$(host_of "$e")"
            rc=1
        fi
    done
    return "$rc"
}

cmd_env() {
    local e
    for e in "${ENGINES[@]}"; do
        printf 'export FLEETCTL_TESTBED_HOST_%s=%s\n' "${e^^}" "$(host_of "$e")"
    done
}

case "${1:-}" in
    up)     with_lock engines; cmd_up; cmd_env ;;
    down)   with_lock engines; cmd_down ;;
    status) cmd_status ;;
    env)    cmd_env ;;
    *)      echo "usage: $0 {up|down|status|env}" >&2; exit 2 ;;
esac
