#!/usr/bin/env bash
# Two remote Docker hosts for fleetctl's integration tests, each in its own network
# namespace with its own dockerd, reached the way a real remote host is:
#
#   fleetctl-ssh  10.201.0.2  ssh://root@10.201.0.2   (a real sshd; the docker CLI on the
#                                                       far side runs `docker system dial-stdio`)
#   fleetctl-tls  10.201.0.6  tcp://10.201.0.6:2376   (dockerd --tlsverify: client certificates)
#
#   tests/testbed/netns.sh up       create what is missing (no-op for what already answers)
#   tests/testbed/netns.sh down     stop the daemons it started (by pid) and remove the
#                                   namespaces, links and the ssh client drop-in
#   tests/testbed/netns.sh status   show each host and whether it answers
#   tests/testbed/netns.sh env      print the export lines for the hosts
#
# Each namespace is joined to this machine by a veth pair (/30 each, the machine's end is
# .1 / .5) and routes the rest of 10.201.0.0/24 through it, so the two hosts reach each
# other through this machine and nothing else: no default route, no NAT. Their dockerd runs
# with --bridge=none --iptables=false, so containers use host networking inside the
# namespace and listen on its address. The test bed's small images and its Triton image
# are copied into both engines (docker save | docker load, through each engine's unix
# socket on this machine).
#
# Keys and certificates are generated here: an ed25519 host key, client key and
# known_hosts for ssh (the client settings go to /etc/ssh/ssh_config.d/fleetctl-testbed.conf,
# for 10.201.0.2 only); a CA, a server certificate for 10.201.0.6 and a client certificate
# for TLS (openssl). They live in $FLEETCTL_TESTBED_DIR/netns.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"

NET="${FLEETCTL_TESTBED_NETNS_NET:-10.201.0}"
SSH_ADDR="$NET.2"
TLS_ADDR="$NET.6"
TLS_PORT=2376
DIR="$TESTBED_DIR/netns"
SSH_DROPIN=/etc/ssh/ssh_config.d/fleetctl-testbed.conf
HOSTS=(ssh tls)
START_TIMEOUT_S="${FLEETCTL_TESTBED_START_TIMEOUT_S:-60}"
HOST_A="$(host_of a)"
# The Triton image too, so that the demo fleet runs on these hosts: loaded once per test
# bed (an image whose id matches is skipped), like the others.
IMAGES=(fleetctl-testbed/tiny:1 fleetctl-testbed/nim-standin:1 fleetctl-testbed/nim-standin:2
        fleetctl-testbed/front-door:1 fleetctl-testbed/tritonserver:2.51)

log() { printf '[netns] %s\n' "$*" >&2; }
die() { printf '[netns] error: %s\n' "$*" >&2; exit 1; }

ns_of()      { printf 'fleetctl-%s' "$1"; }
veth_of()    { printf 'flt-%s0' "$1"; }       # this machine's end
peer_of()    { printf 'flt-%s1' "$1"; }       # the namespace's end
host_ip()    { [[ "$1" == ssh ]] && echo "$NET.1" || echo "$NET.5"; }
ns_ip()      { [[ "$1" == ssh ]] && echo "$SSH_ADDR" || echo "$TLS_ADDR"; }
sock_of()    { printf '%s/ns-%s.sock' "$RUN_DIR" "$1"; }
dpid_of()    { printf '%s/ns-%s.pid' "$RUN_DIR" "$1"; }
url_of()     { [[ "$1" == ssh ]] && echo "ssh://root@$SSH_ADDR" || echo "tcp://$TLS_ADDR:$TLS_PORT"; }
SSHD_PID="$RUN_DIR/ns-ssh-sshd.pid"

dk_local() { timeout 20 docker -H "unix://$(sock_of "$1")" "${@:2}"; }
local_answers() { [[ -S "$(sock_of "$1")" ]] && dk_local "$1" info --format '{{.ServerVersion}}' >/dev/null 2>&1; }

# ------------------------------------------------------------------ network
make_link() {
    local h="$1" ns veth peer
    ns="$(ns_of "$h")"; veth="$(veth_of "$h")"; peer="$(peer_of "$h")"
    [[ -e "/run/netns/$ns" ]] || ip netns add "$ns"
    if ! ip link show "$veth" >/dev/null 2>&1; then
        ip link add "$veth" type veth peer name "$peer"
        ip link set "$peer" netns "$ns"
    fi
    ip addr replace "$(host_ip "$h")/30" dev "$veth"
    ip link set "$veth" up
    ip netns exec "$ns" ip link set lo up
    ip netns exec "$ns" ip addr replace "$(ns_ip "$h")/30" dev "$peer"
    ip netns exec "$ns" ip link set "$peer" up
    ip netns exec "$ns" ip route replace "$NET.0/24" via "$(host_ip "$h")"
}

# -------------------------------------------------------------------- keys
make_keys() {
    mkdir -p "$DIR/ssh" "$DIR/tls"
    chmod 0700 "$DIR/ssh" "$DIR/tls"
    local s="$DIR/ssh" t="$DIR/tls"
    [[ -s "$s/ssh_host_ed25519_key" ]] || ssh-keygen -q -t ed25519 -N '' -C fleetctl-testbed-host -f "$s/ssh_host_ed25519_key"
    [[ -s "$s/id_ed25519" ]] || ssh-keygen -q -t ed25519 -N '' -C fleetctl-testbed-client -f "$s/id_ed25519"
    cp "$s/id_ed25519.pub" "$s/authorized_keys"
    printf '%s %s\n' "$SSH_ADDR" "$(cut -d' ' -f1,2 "$s/ssh_host_ed25519_key.pub")" >"$s/known_hosts"
    if [[ ! -s "$t/client-key.pem" ]]; then
        log "generating a CA, a server certificate for $TLS_ADDR and a client certificate"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=fleetctl-testbed-ca" \
            -keyout "$t/ca-key.pem" -out "$t/ca.pem" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$TLS_ADDR" \
            -keyout "$t/server-key.pem" -out "$t/server.csr" 2>/dev/null
        printf 'subjectAltName=IP:%s\nextendedKeyUsage=serverAuth\n' "$TLS_ADDR" >"$t/server.ext"
        openssl x509 -req -in "$t/server.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" -CAcreateserial \
            -days 3650 -extfile "$t/server.ext" -out "$t/server-cert.pem" 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=fleetctl-testbed-client" \
            -keyout "$t/client-key.pem.tmp" -out "$t/client.csr" 2>/dev/null
        printf 'extendedKeyUsage=clientAuth\n' >"$t/client.ext"
        openssl x509 -req -in "$t/client.csr" -CA "$t/ca.pem" -CAkey "$t/ca-key.pem" -CAcreateserial \
            -days 3650 -extfile "$t/client.ext" -out "$t/client-cert.pem" 2>/dev/null
        rm -f "$t"/*.csr "$t"/*.ext
        chmod 0600 "$t"/*-key.pem*
        mv -f "$t/client-key.pem.tmp" "$t/client-key.pem"
    fi
    mkdir -p "$(dirname "$SSH_DROPIN")"
    cat >"$SSH_DROPIN.tmp" <<CONF
# Written by tests/testbed/netns.sh: the test bed's ssh-reached Docker host.
Host $SSH_ADDR
    User root
    IdentityFile $s/id_ed25519
    IdentitiesOnly yes
    UserKnownHostsFile $s/known_hosts
    StrictHostKeyChecking yes
    BatchMode yes
CONF
    mv -f "$SSH_DROPIN.tmp" "$SSH_DROPIN"
}

# ----------------------------------------------------------------- daemons
start_dockerd() {
    local h="$1" ns pidfile pid args=()
    ns="$(ns_of "$h")"; pidfile="$(dpid_of "$h")"
    if local_answers "$h"; then
        return 0
    fi
    if [[ -f "$pidfile" ]]; then
        pid="$(cat "$pidfile" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            wait_local "$h" && return 0
            die "dockerd of $ns (pid $pid) does not answer; see $TESTBED_DIR/logs/dockerd-ns-$h.log"
        fi
        rm -f "$pidfile"
    fi
    rm -f "$(sock_of "$h")"
    mkdir -p "$TESTBED_DIR/ns-$h/data" "$RUN_DIR/ns-$h" "$TESTBED_DIR/logs"
    printf '{\n  "deprecated-key-path": "%s"\n}\n' "$TESTBED_DIR/ns-$h/key.json" >"$TESTBED_DIR/ns-$h/daemon.json"
    args=(-H "unix://$(sock_of "$h")")
    if [[ "$h" == tls ]]; then
        args+=(-H "tcp://$TLS_ADDR:$TLS_PORT" --tlsverify --tlscacert "$DIR/tls/ca.pem"
               --tlscert "$DIR/tls/server-cert.pem" --tlskey "$DIR/tls/server-key.pem")
    fi
    log "starting dockerd in $ns"
    # nsenter, not `ip netns exec`: that also remounts /sys in a mount namespace of its
    # own, which hides the cgroup mounts dockerd needs. Only the network is the namespace's.
    nsenter --net="/run/netns/$ns" setsid dockerd \
        --config-file "$TESTBED_DIR/ns-$h/daemon.json" \
        --bridge=none --iptables=false --ip-masq=false \
        --data-root "$TESTBED_DIR/ns-$h/data" \
        --exec-root "$RUN_DIR/ns-$h" \
        --pidfile "$pidfile" \
        --containerd-namespace "fleetctl-testbed-ns-$h" \
        --containerd-plugins-namespace "fleetctl-testbed-ns-$h-plugins" \
        "${args[@]}" \
        </dev/null >>"$TESTBED_DIR/logs/dockerd-ns-$h.log" 2>&1 9>&- &
    disown || true
}

wait_local() {
    local deadline=$(( $(date +%s) + START_TIMEOUT_S ))
    until local_answers "$1"; do
        if (( $(date +%s) >= deadline )); then
            tail -n 20 "$TESTBED_DIR/logs/dockerd-ns-$1.log" >&2 || true
            return 1
        fi
        sleep 0.3
    done
}

start_sshd() {
    local cfg="$DIR/ssh/sshd_config" pid
    if [[ -f "$SSHD_PID" ]]; then
        pid="$(cat "$SSHD_PID" 2>/dev/null || true)"
        if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
            return 0
        fi
        rm -f "$SSHD_PID"
    fi
    [[ -x /usr/sbin/sshd ]] || apt_install_no_start openssh-server || die "cannot install openssh-server"
    mkdir -p /run/sshd
    cat >"$cfg" <<CONF
# Written by tests/testbed/netns.sh: sshd of the test bed's ssh-reached Docker host.
ListenAddress $SSH_ADDR:22
HostKey $DIR/ssh/ssh_host_ed25519_key
PidFile $SSHD_PID
AuthorizedKeysFile $DIR/ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
StrictModes no
PrintMotd no
# The far side of ssh:// runs \`docker system dial-stdio\`: point it at this host's engine.
SetEnv DOCKER_HOST=unix://$(sock_of ssh)
CONF
    log "starting sshd in $(ns_of ssh) on $SSH_ADDR:22"
    nsenter --net="/run/netns/$(ns_of ssh)" /usr/sbin/sshd -f "$cfg" -E "$TESTBED_DIR/logs/sshd-ns-ssh.log" 9>&-
}

# ------------------------------------------------------------------ images
copy_images() {
    local h="$1" img missing=() t0
    for img in "${IMAGES[@]}"; do
        [[ "$(dk_local "$h" image inspect --format '{{.Id}}' "$img" 2>/dev/null || true)" == \
           "$(docker -H "$HOST_A" image inspect --format '{{.Id}}' "$img")" ]] || missing+=("$img")
    done
    (( ${#missing[@]} )) || return 0
    t0=$(now_ms)
    docker -H "$HOST_A" save "${missing[@]}" | docker -H "unix://$(sock_of "$h")" load -q >/dev/null
    log "$(ns_of "$h"): loaded ${missing[*]} in $(( $(now_ms) - t0 )) ms"
}

remote_answers() {
    local h="$1"
    if [[ "$h" == ssh ]]; then
        timeout 20 docker -H "$(url_of ssh)" info --format '{{.ServerVersion}}' >/dev/null 2>&1
    else
        timeout 20 docker -H "$(url_of tls)" --tlsverify --tlscacert "$DIR/tls/ca.pem" \
            --tlscert "$DIR/tls/client-cert.pem" --tlskey "$DIR/tls/client-key.pem" \
            info --format '{{.ServerVersion}}' >/dev/null 2>&1
    fi
}

cmd_up() {
    [[ "$(id -u)" -eq 0 ]] || die "the namespace hosts need root"
    command -v sshd >/dev/null 2>&1 || [[ -x /usr/sbin/sshd ]] || apt_install_no_start openssh-server \
        || die "cannot install openssh-server"
    command -v openssl >/dev/null 2>&1 || apt_install openssl || die "cannot install openssl"
    # ip (namespaces, veth) and iptables (the tests' dropped-network fault)
    apt_install iproute2 iptables || die "cannot install iproute2 and iptables"
    local h
    make_keys
    for h in "${HOSTS[@]}"; do make_link "$h"; done
    for h in "${HOSTS[@]}"; do start_dockerd "$h"; done
    for h in "${HOSTS[@]}"; do wait_local "$h" || die "dockerd in $(ns_of "$h") did not answer"; done
    start_sshd
    for h in "${HOSTS[@]}"; do copy_images "$h"; done
    for h in "${HOSTS[@]}"; do
        remote_answers "$h" || die "$(url_of "$h") does not answer"
    done
    env_set netns FLEETCTL_TESTBED_SSH_HOST "$(url_of ssh)"
    env_set netns FLEETCTL_TESTBED_TLS_HOST "$(url_of tls)"
    env_set netns FLEETCTL_TESTBED_TLS_DIR "$DIR/tls"
}

stop_pid() {  # stop_pid PIDFILE WHAT
    local pid
    [[ -f "$1" ]] || return 0
    pid="$(cat "$1" 2>/dev/null || true)"
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
        log "stopping $2 (pid $pid)"
        kill -CONT "$pid" 2>/dev/null || true
        kill -TERM "$pid"
        for _ in $(seq 1 150); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.2
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$1"
}

cmd_down() {
    local h m
    stop_pid "$SSHD_PID" "sshd of $(ns_of ssh)"
    for h in "${HOSTS[@]}"; do
        stop_pid "$(dpid_of "$h")" "dockerd of $(ns_of "$h")"
        rm -f "$(sock_of "$h")"
        { awk '{print $2}' /proc/mounts | grep -E "^$RUN_DIR/ns-$h/" || true; } | sort -r | while read -r m; do
            umount -l "$m" 2>/dev/null || true
        done
        ip link del "$(veth_of "$h")" 2>/dev/null || true
        ip netns del "$(ns_of "$h")" 2>/dev/null || true
    done
    rm -f "$SSH_DROPIN"
}

cmd_status() {
    local h rc=0
    for h in "${HOSTS[@]}"; do
        if remote_answers "$h"; then
            printf '%s  up    %s\n' "$(ns_of "$h")" "$(url_of "$h")"
        else
            printf '%s  down  %s\n' "$(ns_of "$h")" "$(url_of "$h")"
            rc=1
        fi
    done
    return "$rc"
}

cmd_env() {
    printf 'export FLEETCTL_TESTBED_SSH_HOST=%s\n' "$(url_of ssh)"
    printf 'export FLEETCTL_TESTBED_TLS_HOST=%s\n' "$(url_of tls)"
    printf 'export FLEETCTL_TESTBED_TLS_DIR=%s\n' "$DIR/tls"
}

case "${1:-}" in
    up)     with_lock netns; cmd_up; cmd_env ;;
    down)   with_lock netns; cmd_down ;;
    status) cmd_status ;;
    env)    cmd_env ;;
    *)      echo "usage: $0 {up|down|status|env}" >&2; exit 2 ;;
esac
