# Shared settings for the fleetctl test bed scripts (sourced, not run).
# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables are used by the scripts that source this

# Failures inside $(...) stop the script too.
shopt -s inherit_errexit

TESTBED_DIR="${FLEETCTL_TESTBED_DIR:-/var/lib/fleetctl-testbed}"
RUN_DIR="${FLEETCTL_TESTBED_RUN_DIR:-/run/fleetctl-testbed}"
CACHE_DIR="${FLEETCTL_CACHE_DIR:-/var/cache/fleetctl-testbed}"
ENGINES=(a b c)

socket_of()  { printf '%s/%s.sock' "$RUN_DIR" "$1"; }
pidfile_of() { printf '%s/%s.pid' "$RUN_DIR" "$1"; }
host_of()    { printf 'unix://%s' "$(socket_of "$1")"; }
logfile_of() { printf '%s/logs/dockerd-%s.log' "$TESTBED_DIR" "$1"; }

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# apt_install PKG... : install the Debian packages that are not installed yet.
# Runs `apt-get update` at most once per process.
_APT_UPDATED=0
apt_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
    done
    (( ${#missing[@]} )) || return 0
    if [[ "$(id -u)" -ne 0 ]]; then
        printf 'error: missing packages %s and not root\n' "${missing[*]}" >&2
        return 1
    fi
    command -v apt-get >/dev/null 2>&1 || { printf 'error: apt-get not available\n' >&2; return 1; }
    export DEBIAN_FRONTEND=noninteractive
    if (( ! _APT_UPDATED )); then
        apt-get update -qq
        _APT_UPDATED=1
    fi
    printf '[apt] installing %s\n' "${missing[*]}" >&2
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# with_lock NAME: hold an exclusive lock (on fd 9) for the rest of the calling
# script, so that two set-ups started at once (two test sessions) do not race.
# Long-lived children must not inherit it: start them with `9>&-`.
with_lock() {
    mkdir -p "$RUN_DIR"
    exec 9>"$RUN_DIR/$1.lock"
    if ! flock -n 9; then
        printf '[%s] waiting for another run to finish (lock %s)\n' "$1" "$RUN_DIR/$1.lock" >&2
        flock 9
    fi
}

# apt_install_no_start PKG...: apt_install, keeping the packages' own services from
# starting (Debian starts a system registry on :5000 and sshd on :22 on install; the
# test bed runs its own, on addresses of its choosing). A policy-rc.d that is already
# there is left as it is.
apt_install_no_start() {
    local made=0 rc=0
    if [[ ! -e /usr/sbin/policy-rc.d && "$(id -u)" -eq 0 ]]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        made=1
    fi
    apt_install "$@" || rc=$?
    if (( made )); then rm -f /usr/sbin/policy-rc.d; fi
    return "$rc"
}

# env_set FILE NAME VALUE: set one `export NAME=VALUE` line in $RUN_DIR/env and in
# $RUN_DIR/FILE.env, the part's own file, which `engines.sh up` (rewriting env) leaves
# alone. Each written atomically; the other lines stay as they are.
env_set() {
    local f tmp
    mkdir -p "$RUN_DIR"
    for f in "$RUN_DIR/env" "$RUN_DIR/$1.env"; do
        tmp="$f.tmp.$$"
        { grep -v "^export $2=" "$f" 2>/dev/null || true; printf 'export %s=%s\n' "$2" "$3"; } >"$tmp"
        mv -f "$tmp" "$f"
    done
}
