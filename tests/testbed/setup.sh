#!/usr/bin/env bash
# Make this machine ready for fleetctl's integration tests, from scratch or
# again (a rerun only checks and returns quickly):
#   1. install the Debian packages the test bed needs, when missing
#   2. start the three test Docker engines (tests/testbed/engines.sh up)
#   3. build the test images and copy the small ones to every engine
#      (tests/testbed/images.sh build --all-engines)
#   4. start the registry on loopback and push the small images to it
#      (tests/testbed/registry.sh up)
#   5. start the two remote hosts in network namespaces, reached over ssh:// and TLS
#      tcp:// (tests/testbed/netns.sh up)
# Afterwards `. /run/fleetctl-testbed/env` exports FLEETCTL_TESTBED_HOST_{A,B,C}
# and FLEETCTL_TESTBED_REGISTRY.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"

step() { printf '[setup] %s\n' "$*"; }

if [[ "$(id -u)" -ne 0 ]]; then
    echo "[setup] error: the test bed needs root (it runs its own Docker engines)" >&2
    exit 1
fi

T0=$(now_ms)
step "packages: docker.io debootstrap busybox-static unzip curl"
t=$(now_ms)
apt_install docker.io debootstrap debian-archive-keyring gpgv busybox-static unzip curl
step "packages ok ($(( $(now_ms) - t )) ms)"

step "engines: starting a, b, c"
t=$(now_ms)
"$HERE/engines.sh" up >/dev/null
step "engines ok ($(( $(now_ms) - t )) ms)"

step "images: building (cache: $CACHE_DIR)"
t=$(now_ms)
"$HERE/images.sh" build --all-engines
step "images ok ($(( $(now_ms) - t )) ms)"

step "registry: starting on loopback, pushing the small images"
t=$(now_ms)
"$HERE/registry.sh" up >/dev/null
step "registry ok ($(( $(now_ms) - t )) ms)"

step "namespace hosts: ssh:// and tls:// engines in their own network namespaces"
t=$(now_ms)
"$HERE/netns.sh" up >/dev/null
step "namespace hosts ok ($(( $(now_ms) - t )) ms)"

step "ready in $(( $(now_ms) - T0 )) ms"
"$HERE/engines.sh" env
"$HERE/registry.sh" env
"$HERE/netns.sh" env
