#!/usr/bin/env bash
# An image registry on loopback for fleetctl's integration tests, so that pulls are
# tested without any traffic leaving the machine.
#
#   tests/testbed/registry.sh up       start the registry (no-op when it already answers)
#                                      and push the small test bed images to it
#   tests/testbed/registry.sh down     stop the registry this script started (by its pid only)
#   tests/testbed/registry.sh status   show whether it answers and what it holds
#   tests/testbed/registry.sh env      print the export line for its address
#
# The registry is Debian's docker-registry (distribution 2.8), serving plain HTTP on
# 127.0.0.1:$FLEETCTL_TESTBED_REGISTRY_PORT (default 17500: outside every port range
# the tests hand out). Docker engines treat 127.0.0.0/8 registries as insecure
# registries without configuration, so the engines pull from it as they are.
# Images are pushed from engine a as 127.0.0.1:PORT/fleetctl-testbed/NAME:TAG; the
# registry names are untagged on engine a again afterwards, so that no engine holds
# them until a test pulls them.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"

PORT="${FLEETCTL_TESTBED_REGISTRY_PORT:-17500}"
ADDR="127.0.0.1:$PORT"
DIR="$TESTBED_DIR/registry"
CONFIG="$DIR/config.yml"
PIDFILE="$RUN_DIR/registry.pid"
LOGFILE="$TESTBED_DIR/logs/registry.log"
START_TIMEOUT_S="${FLEETCTL_TESTBED_START_TIMEOUT_S:-60}"
HOST_A="$(host_of a)"
# What the tests pull (the Triton image is large and never pulled by a test).
PUSHED=(fleetctl-testbed/tiny:1 fleetctl-testbed/nim-standin:1 fleetctl-testbed/nim-standin:2
        fleetctl-testbed/front-door:1)

log() { printf '[registry] %s\n' "$*" >&2; }
die() { printf '[registry] error: %s\n' "$*" >&2; exit 1; }

answers() { curl -fsS -m 2 -o /dev/null "http://$ADDR/v2/" 2>/dev/null; }

write_config() {
    mkdir -p "$DIR/data" "$(dirname "$LOGFILE")"
    cat >"$CONFIG.tmp" <<YAML
# Written by tests/testbed/registry.sh: the test bed's registry on loopback.
version: 0.1
log:
  level: warn
  fields:
    service: fleetctl-testbed-registry
storage:
  filesystem:
    rootdirectory: $DIR/data
  delete:
    enabled: true
http:
  addr: $ADDR
  headers:
    X-Content-Type-Options: [nosniff]
YAML
    mv -f "$CONFIG.tmp" "$CONFIG"
}

start() {
    local pid deadline
    if answers; then
        log "registry already answers on $ADDR"
        return 0
    fi
    command -v docker-registry >/dev/null 2>&1 || apt_install_no_start docker-registry \
        || die "cannot install docker-registry"
    if [[ -f "$PIDFILE" ]]; then
        pid="$(cat "$PIDFILE" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            die "registry pid $pid is running but does not answer on $ADDR; see $LOGFILE"
        fi
        rm -f "$PIDFILE"
    fi
    write_config
    log "starting the registry on $ADDR (log: $LOGFILE)"
    # Not a process group leader here, so setsid execs in place: $! is the registry.
    setsid docker-registry serve "$CONFIG" </dev/null >>"$LOGFILE" 2>&1 9>&- &
    pid=$!
    disown || true
    printf '%s\n' "$pid" >"$PIDFILE"
    deadline=$(( $(date +%s) + START_TIMEOUT_S ))
    until answers; do
        if ! kill -0 "$pid" 2>/dev/null || (( $(date +%s) >= deadline )); then
            tail -n 20 "$LOGFILE" >&2 || true
            die "the registry did not answer on $ADDR"
        fi
        sleep 0.1
    done
}

# The digest the registry holds for REPO:TAG (empty when it has none).
registry_digest() {
    local repo="${1%:*}" tag="${1##*:}"
    curl -fsS -m 5 -I \
        -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
        "http://$ADDR/v2/$repo/manifests/$tag" 2>/dev/null \
        | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" {print $2}'
}

push_images() {
    local img id marker t0 target
    timeout 10 docker -H "$HOST_A" info >/dev/null 2>&1 \
        || die "engine a does not answer at $HOST_A (run tests/testbed/engines.sh up)"
    mkdir -p "$DIR/pushed"
    for img in "${PUSHED[@]}"; do
        id="$(docker -H "$HOST_A" image inspect --format '{{.Id}}' "$img" 2>/dev/null)" \
            || die "$img is not on engine a (run tests/testbed/images.sh build)"
        marker="$DIR/pushed/$(tr '/:' '__' <<<"$img")"
        if [[ "$(cat "$marker" 2>/dev/null || true)" == "$id" && -n "$(registry_digest "$img")" ]]; then
            continue
        fi
        t0=$(now_ms)
        target="$ADDR/$img"
        docker -H "$HOST_A" tag "$img" "$target"
        docker -H "$HOST_A" push -q "$target" >/dev/null || die "pushing $target failed"
        docker -H "$HOST_A" image rm "$target" >/dev/null  # untags only: $img still names it
        printf '%s\n' "$id" >"$marker"
        log "pushed $target in $(( $(now_ms) - t0 )) ms"
    done
}

cmd_up() {
    [[ "$(id -u)" -eq 0 ]] || die "the test bed registry needs root"
    start
    push_images
    env_set registry FLEETCTL_TESTBED_REGISTRY "$ADDR"
}

cmd_down() {
    local pid
    if [[ ! -f "$PIDFILE" ]]; then
        log "no pidfile, nothing to stop"
        return 0
    fi
    pid="$(cat "$PIDFILE" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        log "stopping the registry (pid $pid)"
        kill -TERM "$pid"
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$PIDFILE"
}

cmd_status() {
    local img
    if ! answers; then
        printf 'registry  down  %s\n' "$ADDR"
        return 1
    fi
    printf 'registry  up    pid=%s  %s\n' "$(cat "$PIDFILE" 2>/dev/null || echo -)" "$ADDR"
    for img in "${PUSHED[@]}"; do
        printf '  %s/%s  %s\n' "$ADDR" "$img" "$(registry_digest "$img" || true)"
    done
}

case "${1:-}" in
    up)     with_lock registry; cmd_up; printf 'export FLEETCTL_TESTBED_REGISTRY=%s\n' "$ADDR" ;;
    down)   with_lock registry; cmd_down ;;
    status) cmd_status ;;
    env)    printf 'export FLEETCTL_TESTBED_REGISTRY=%s\n' "$ADDR" ;;
    *)      echo "usage: $0 {up|down|status|env}" >&2; exit 2 ;;
esac
