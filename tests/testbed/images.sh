#!/usr/bin/env bash
# Build the fleetctl test bed images locally (no registry is needed or used).
#
#   tests/testbed/images.sh build [--all-engines]   build into engine a; with --all-engines
#                                             also copy the small images into b and c
#   tests/testbed/images.sh list                    show the test bed images on each engine
#
# Images (all built here, never pulled):
#   fleetctl-testbed/base:bookworm        debootstrap minbase + python3, numpy
#   fleetctl-testbed/tritonserver:2.51    Triton 2.51 (CPU) from the nvidia-pytriton wheel
#   fleetctl-testbed/nim-standin:1, :2    the NIM stand-in server (tests/testbed/nim_standin)
#   fleetctl-testbed/tiny:1               FROM scratch, busybox httpd
#   fleetctl-testbed/front-door:1         the front door server (fleetctl/frontdoor) + aiohttp wheels
#
# Each image carries the label fleetctl-testbed.input-hash; an image whose tag
# already exists with the same hash is not rebuilt. Expensive inputs (the
# debootstrap root filesystem, the wheels) are cached under $FLEETCTL_CACHE_DIR.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=common.sh
. "$HERE/common.sh"

export DOCKER_BUILDKIT=0   # the legacy builder talks to every engine version

BASE_IMAGE="fleetctl-testbed/base:bookworm"
TRITON_IMAGE="fleetctl-testbed/tritonserver:2.51"
STANDIN_REPO="fleetctl-testbed/nim-standin"
STANDIN_TAGS=(1 2)
TINY_IMAGE="fleetctl-testbed/tiny:1"
FRONT_DOOR_IMAGE="fleetctl-testbed/front-door:1"
HASH_LABEL="fleetctl-testbed.input-hash"

DEBIAN_SUITE="bookworm"
DEBIAN_MIRROR="${FLEETCTL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
BASE_PACKAGES="python3,python3-numpy,libpython3.11"
# Bump when the way the root filesystem is made changes.
BASE_RECIPE_VERSION=1

PYTRITON_VERSION="0.7.0"
PYTRITON_WHEEL="nvidia_pytriton-${PYTRITON_VERSION}-py3-none-manylinux_2_35_x86_64.whl"
PYTRITON_SHA256="21f063ff93bb426d0c06b7a55e7eb9efcfe62c0dddd9a908e9877e18710128df"

# The front door runs on aiohttp: the wheels of aiohttp 3.14.5 and of everything it needs
# on CPython 3.11 (the base image's python3), pinned and sha256-checked. Their union is the
# closure pip resolves for "aiohttp==3.14.5" on manylinux x86_64, so they are fetched with
# --no-deps. Format: "file sha256".
FRONT_DOOR_WHEELS=(
    "aiohttp-3.14.5-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl 50a195903119008fe9cc68710535eb37f556ffffd6a7759afe70a2c145587045"
    "aiohappyeyeballs-2.7.1-py3-none-any.whl 9243213661e29250eb41368e5daa826fc017156c3b8a11440826b2e3ed376472"
    "aiosignal-1.4.0-py3-none-any.whl 053243f8b92b990551949e63930a839ff0cf0b0ebbe0597b0f3fb19e1a0fe82e"
    "attrs-26.1.0-py3-none-any.whl c647aa4a12dfbad9333ca4e71fe62ddc36f4e63b2d260a37a8b83d2f043ac309"
    "frozenlist-1.8.0-cp311-cp311-manylinux1_x86_64.manylinux_2_28_x86_64.manylinux_2_5_x86_64.whl 2552f44204b744fba866e573be4c1f9048d6a324dfe14475103fd51613eb1d1f"
    "idna-3.20-py3-none-any.whl ab7ae7122974553370f0bdb919e1a960b2cd1bc1ef0276416d896db81c14582c"
    "multidict-7.2.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl 3b7542fad2706595c1b1853b46f2c3c4ae5cc5a6252b7225f294d607a29e1bdf"
    "propcache-0.5.4-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl 6e9368e87a3efc285e559131092c5db643eb8e56de4ee42064d5baec22ef2bb5"
    "typing_extensions-4.16.0-py3-none-any.whl 481caa481374e813c1b176ada14e97f1f67a4539ce9cfeb3f350d78d6370c2e8"
    "yarl-1.25.1-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.manylinux_2_28_x86_64.whl d5add7b4ca7afeea91d52e4d4e4db3b1fe9885b71f07054560d8c4296b7441a2"
)
FRONT_DOOR_SRC="$HERE/../../fleetctl/frontdoor"

HOST_A="$(host_of a)"
WORK=""

log() { printf '[images] %s\n' "$*" >&2; }
die() { printf '[images] error: %s\n' "$*" >&2; exit 1; }

cleanup() { [[ -n "$WORK" && -d "$WORK" ]] && rm -rf "$WORK"; return 0; }
trap cleanup EXIT

dk() { docker -H "$HOST_A" "$@"; }

# quietly CMD...: run CMD with its output kept aside; show it only when CMD fails
# (hides the docker client's legacy-builder notice and pip's chatter).
quietly() {
    local out rc=0
    out="$(mktemp "${TMPDIR:-/tmp}/fleetctl-images-out.XXXXXX")"
    "$@" >"$out" 2>&1 || rc=$?
    if (( rc != 0 )); then
        log "command failed (rc=$rc): $*"
        tail -n 40 "$out" >&2
    fi
    rm -f "$out"
    return "$rc"
}

sha() { sha256sum | cut -c1-64; }

image_label() {  # image_label HOST IMAGE LABEL
    docker -H "$1" image inspect --format "{{index .Config.Labels \"$3\"}}" "$2" 2>/dev/null || true
}

image_id() {  # image_id HOST IMAGE
    docker -H "$1" image inspect --format '{{.Id}}' "$2" 2>/dev/null || true
}

# drop_if_dangling OLD_ID [HOST]: remove a replaced image that no tag names any more.
drop_if_dangling() {
    local host="${2:-$HOST_A}"
    [[ -n "$1" ]] || return 0
    if [[ "$(docker -H "$host" image inspect --format '{{len .RepoTags}}' "$1" 2>/dev/null)" == 0 ]]; then
        docker -H "$host" image rm "$1" >/dev/null 2>&1 || true
    fi
}

up_to_date() {  # up_to_date IMAGE HASH
    [[ "$(image_label "$HOST_A" "$1" "$HASH_LABEL")" == "$2" ]]
}

# Unmount anything left mounted below a directory (a debootstrap that failed
# half-way can leave /proc or /sys mounted inside its target).
umount_under() {
    local dir m
    dir="$(readlink -f "$1")"
    { awk '{print $2}' /proc/mounts | grep -E "^${dir}/" || true; } | sort -r | while read -r m; do
        umount -l "$m" || true
    done
}

# ---------------------------------------------------------------- base image
base_hash() {
    printf 'base v%s %s %s %s\n' "$BASE_RECIPE_VERSION" "$DEBIAN_SUITE" "$BASE_PACKAGES" "minbase" | sha
}

base_rootfs_tar() {  # prints the path of the cached root filesystem tarball, making it if needed
    local h tar dir t0
    h="$(base_hash)"
    tar="$CACHE_DIR/rootfs-${DEBIAN_SUITE}-${h:0:16}.tar"
    if [[ -s "$tar" ]]; then
        log "root filesystem: cached $tar"
        printf '%s' "$tar"
        return 0
    fi
    command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap || die "cannot install debootstrap"
    dir="$CACHE_DIR/rootfs.build"
    if [[ -d "$dir" ]]; then
        umount_under "$dir"
        rm -rf --one-file-system "$dir"
    fi
    mkdir -p "$dir"
    t0=$(now_ms)
    log "debootstrap --variant=minbase --include=$BASE_PACKAGES $DEBIAN_SUITE (from $DEBIAN_MIRROR)"
    if ! debootstrap --variant=minbase --include="$BASE_PACKAGES" "$DEBIAN_SUITE" "$dir" "$DEBIAN_MIRROR" \
            >"$CACHE_DIR/debootstrap.log" 2>&1; then
        tail -n 30 "$CACHE_DIR/debootstrap.log" >&2 || true
        umount_under "$dir"
        die "debootstrap failed (full log: $CACHE_DIR/debootstrap.log)"
    fi
    umount_under "$dir"
    # Trim what a container never needs: package caches, apt lists, docs.
    rm -rf "${dir:?}"/var/cache/apt/archives/*.deb "${dir:?}"/var/cache/apt/*.bin \
        "${dir:?}"/var/lib/apt/lists/* "${dir:?}"/usr/share/doc/* "${dir:?}"/usr/share/man/* \
        "${dir:?}"/usr/share/locale/* "${dir:?}"/var/log/* "${dir:?}"/dev/*
    tar -C "$dir" -cf "$tar.partial" .
    mv -f "$tar.partial" "$tar"
    rm -rf --one-file-system "$dir"
    log "root filesystem made in $(( ($(now_ms) - t0) / 1000 )) s: $tar"
    printf '%s' "$tar"
}

build_base() {
    local h tar t0 old
    h="$(base_hash)"
    if up_to_date "$BASE_IMAGE" "$h"; then
        log "$BASE_IMAGE up to date"
        return 0
    fi
    tar="$(base_rootfs_tar)"
    old="$(image_id "$HOST_A" "$BASE_IMAGE")"
    t0=$(now_ms)
    dk import \
        -c "LABEL $HASH_LABEL=$h" \
        -c "LABEL org.opencontainers.image.title=fleetctl-testbed-base" \
        -c 'ENV LANG=C.UTF-8' \
        -c 'CMD ["/bin/bash"]' \
        - "$BASE_IMAGE" <"$tar" >/dev/null
    drop_if_dangling "$old"
    log "$BASE_IMAGE imported in $(( $(now_ms) - t0 )) ms"
}

# ------------------------------------------------------------ triton image
find_pip() {
    if python3 -m pip --version >/dev/null 2>&1; then
        echo "python3 -m pip"
    elif [[ -x "$HERE/../../.venv/bin/python" ]] && "$HERE/../../.venv/bin/python" -m pip --version >/dev/null 2>&1; then
        echo "$HERE/../../.venv/bin/python -m pip"
    else
        apt_install python3-pip >/dev/null || return 1
        echo "python3 -m pip"
    fi
}

pytriton_wheel() {  # prints the path of the cached, verified wheel
    local dir="$CACHE_DIR/wheels" whl pip
    whl="$dir/$PYTRITON_WHEEL"
    if [[ -s "$whl" ]] && [[ "$(sha <"$whl")" == "$PYTRITON_SHA256" ]]; then
        log "pytriton wheel: cached $whl"
        printf '%s' "$whl"
        return 0
    fi
    mkdir -p "$dir"
    rm -f "$whl"
    pip="$(find_pip)" || die "no pip available to download nvidia-pytriton"
    log "downloading nvidia-pytriton==$PYTRITON_VERSION (PyPI)"
    # shellcheck disable=SC2086
    quietly $pip download --no-deps --only-binary=:all: \
        --platform manylinux_2_35_x86_64 --python-version 3.11 \
        -d "$dir" "nvidia-pytriton==$PYTRITON_VERSION" || die "pip download failed"
    [[ -s "$whl" ]] || die "pip did not produce $whl"
    [[ "$(sha <"$whl")" == "$PYTRITON_SHA256" ]] || die "sha256 of $whl does not match"
    printf '%s' "$whl"
}

triton_dockerfile() {
    cat <<DOCKERFILE
FROM $BASE_IMAGE
COPY tritonserver /opt/tritonserver
COPY nvidia_pytriton.libs /opt/nvidia_pytriton.libs
COPY triton_python_backend_stub /opt/tritonserver/backends/python/triton_python_backend_stub
ENV LD_LIBRARY_PATH=/opt/nvidia_pytriton.libs \\
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="fleetctl-testbed-tritonserver" \\
      org.opencontainers.image.version="2.51.0" \\
      org.opencontainers.image.description="Triton Inference Server 2.51 (CPU) from the nvidia-pytriton $PYTRITON_VERSION wheel"
ENTRYPOINT ["/opt/tritonserver/bin/tritonserver"]
DOCKERFILE
}

build_triton() {
    local h whl ctx t0 old
    h="$( { image_id "$HOST_A" "$BASE_IMAGE"; echo "$PYTRITON_SHA256"; triton_dockerfile; } | sha)"
    if up_to_date "$TRITON_IMAGE" "$h"; then
        log "$TRITON_IMAGE up to date"
        return 0
    fi
    whl="$(pytriton_wheel)"
    command -v unzip >/dev/null 2>&1 || apt_install unzip || die "cannot install unzip"
    t0=$(now_ms)
    ctx="$WORK/triton"
    mkdir -p "$ctx/x"
    unzip -q "$whl" 'pytriton/tritonserver/*' 'nvidia_pytriton.libs/*' -d "$ctx/x"
    mv "$ctx/x/pytriton/tritonserver" "$ctx/tritonserver"
    mv "$ctx/x/nvidia_pytriton.libs" "$ctx/nvidia_pytriton.libs"
    cp "$ctx/tritonserver/python_backend_stubs/3.11/triton_python_backend_stub" "$ctx/triton_python_backend_stub"
    rm -rf "$ctx/x"
    chmod 0755 "$ctx/tritonserver/bin/tritonserver" "$ctx/triton_python_backend_stub"
    triton_dockerfile >"$ctx/Dockerfile"
    old="$(image_id "$HOST_A" "$TRITON_IMAGE")"
    quietly dk build --label "$HASH_LABEL=$h" -t "$TRITON_IMAGE" "$ctx" || die "building $TRITON_IMAGE failed"
    drop_if_dangling "$old"
    rm -rf "$ctx"
    log "$TRITON_IMAGE built in $(( $(now_ms) - t0 )) ms"
}

# ------------------------------------------------------- NIM stand-in image
standin_dockerfile() {
    cat <<DOCKERFILE
FROM $BASE_IMAGE
ARG STANDIN_VERSION=1
COPY server.py /opt/nim-standin/server.py
ENV PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1 \\
    STANDIN_IMAGE_VERSION=\${STANDIN_VERSION}
LABEL org.opencontainers.image.title="fleetctl-testbed-nim-standin" \\
      org.opencontainers.image.description="Stand-in for an NVIDIA NIM container (not NIM)" \\
      org.opencontainers.image.version="\${STANDIN_VERSION}"
EXPOSE 8000
ENTRYPOINT ["python3", "/opt/nim-standin/server.py"]
DOCKERFILE
}

build_standin() {
    local h ctx tag t0 old
    h="$( { image_id "$HOST_A" "$BASE_IMAGE"; sha <"$HERE/nim_standin/server.py"; standin_dockerfile; } | sha)"
    ctx="$WORK/standin"
    for tag in "${STANDIN_TAGS[@]}"; do
        if up_to_date "$STANDIN_REPO:$tag" "$h"; then
            log "$STANDIN_REPO:$tag up to date"
            continue
        fi
        t0=$(now_ms)
        mkdir -p "$ctx"
        cp "$HERE/nim_standin/server.py" "$ctx/server.py"
        standin_dockerfile >"$ctx/Dockerfile"
        # One image per tag (same files, different version label and env), so
        # that :1 -> :2 is a real image change for rollout tests.
        old="$(image_id "$HOST_A" "$STANDIN_REPO:$tag")"
        quietly dk build --build-arg "STANDIN_VERSION=$tag" --label "$HASH_LABEL=$h" \
            -t "$STANDIN_REPO:$tag" "$ctx" || die "building $STANDIN_REPO:$tag failed"
        drop_if_dangling "$old"
        log "$STANDIN_REPO:$tag built in $(( $(now_ms) - t0 )) ms"
    done
    rm -rf "$ctx"
}

# ------------------------------------------------------------- tiny image
tiny_dockerfile() {
    # scratch has no shell: busybox provides it. sh stays PID 1 with a TERM
    # trap so that `docker stop` ends the container at once instead of
    # waiting out the stop timeout.
    cat <<'DOCKERFILE'
FROM scratch
COPY busybox /bin/busybox
COPY www /www
ENV PORT=8080
LABEL org.opencontainers.image.title="fleetctl-testbed-tiny"
ENTRYPOINT ["/bin/busybox", "sh", "-c", "trap 'exit 0' TERM INT; /bin/busybox httpd -f -p 127.0.0.1:${PORT:-8080} -h /www & wait"]
DOCKERFILE
}

build_tiny() {
    local h ctx t0 bb old
    # Only the statically linked busybox runs FROM scratch.
    apt_install busybox-static || die "cannot install busybox-static"
    bb="$(dpkg -L busybox-static | grep -E '^(/usr)?/bin/busybox$' | head -n1)"
    [[ -x "$bb" ]] || die "busybox-static is installed but its busybox binary was not found"
    h="$( { sha <"$bb"; tiny_dockerfile; echo v1; } | sha)"
    if up_to_date "$TINY_IMAGE" "$h"; then
        log "$TINY_IMAGE up to date"
        return 0
    fi
    t0=$(now_ms)
    ctx="$WORK/tiny"
    mkdir -p "$ctx/www"
    cp "$bb" "$ctx/busybox"
    chmod 0755 "$ctx/busybox"
    printf '<!doctype html><title>fleetctl tiny</title><p>fleetctl-testbed tiny:1</p>\n' >"$ctx/www/index.html"
    printf 'ok\n' >"$ctx/www/healthz"
    tiny_dockerfile >"$ctx/Dockerfile"
    old="$(image_id "$HOST_A" "$TINY_IMAGE")"
    quietly dk build --label "$HASH_LABEL=$h" -t "$TINY_IMAGE" "$ctx" || die "building $TINY_IMAGE failed"
    drop_if_dangling "$old"
    rm -rf "$ctx"
    log "$TINY_IMAGE built in $(( $(now_ms) - t0 )) ms"
}

# ------------------------------------------------------- front door image
front_door_wheels() {  # prints the cached, verified wheel paths, one a line, downloading what is missing
    local dir="$CACHE_DIR/wheels" entry file want reqs=() pip
    mkdir -p "$dir"
    for entry in "${FRONT_DOOR_WHEELS[@]}"; do
        read -r file want <<<"$entry"
        if [[ ! -s "$dir/$file" ]] || [[ "$(sha <"$dir/$file")" != "$want" ]]; then
            rm -f "$dir/$file"
            # name-version-... -> name==version (wheel names use _ where the project uses -)
            reqs+=("$(cut -d- -f1 <<<"$file")==$(cut -d- -f2 <<<"$file")")
        fi
    done
    if (( ${#reqs[@]} > 0 )); then
        pip="$(find_pip)" || die "no pip available to download the front door's wheels"
        log "downloading ${reqs[*]} (PyPI)"
        # shellcheck disable=SC2086
        quietly $pip download --no-deps --only-binary=:all: \
            --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
            --python-version 3.11 --implementation cp \
            -d "$dir" "${reqs[@]}" || die "pip download failed"
    else
        log "front door wheels: cached in $dir"
    fi
    for entry in "${FRONT_DOOR_WHEELS[@]}"; do
        read -r file want <<<"$entry"
        [[ -s "$dir/$file" ]] || die "pip did not produce $dir/$file"
        [[ "$(sha <"$dir/$file")" == "$want" ]] || die "sha256 of $dir/$file does not match"
        printf '%s\n' "$dir/$file"
    done
}

front_door_dockerfile() {
    cat <<DOCKERFILE
FROM $BASE_IMAGE
COPY lib /opt/front-door/lib
COPY app/ /opt/front-door/
ENV PYTHONPATH=/opt/front-door/lib \\
    PYTHONUNBUFFERED=1 \\
    PYTHONDONTWRITEBYTECODE=1
LABEL org.opencontainers.image.title="fleetctl-testbed-front-door" \\
      org.opencontainers.image.description="The fleetctl front door server (fleetctl/frontdoor) on aiohttp"
ENTRYPOINT ["python3", "/opt/front-door/server.py"]
DOCKERFILE
}

build_front_door() {
    local h ctx t0 old whl
    h="$( { image_id "$HOST_A" "$BASE_IMAGE"; printf '%s\n' "${FRONT_DOOR_WHEELS[@]}";
            cat "$FRONT_DOOR_SRC"/*.py | sha; front_door_dockerfile; } | sha)"
    if up_to_date "$FRONT_DOOR_IMAGE" "$h"; then
        log "$FRONT_DOOR_IMAGE up to date"
        return 0
    fi
    command -v unzip >/dev/null 2>&1 || apt_install unzip || die "cannot install unzip"
    t0=$(now_ms)
    ctx="$WORK/front-door"
    mkdir -p "$ctx/lib" "$ctx/app"
    # A wheel is a zip of its site-packages entries: unzipped, it is installed.
    while read -r whl; do
        unzip -q -o "$whl" -d "$ctx/lib"
    done < <(front_door_wheels)
    cp "$FRONT_DOOR_SRC"/*.py "$ctx/app/"
    # Compile ahead (the base image's python is 3.11 too): the container then starts
    # without compiling aiohttp on every start (it writes no bytecode of its own).
    if python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
        python3 -m compileall -q --invalidation-mode unchecked-hash "$ctx/lib" "$ctx/app" >/dev/null
    fi
    front_door_dockerfile >"$ctx/Dockerfile"
    old="$(image_id "$HOST_A" "$FRONT_DOOR_IMAGE")"
    quietly dk build --label "$HASH_LABEL=$h" -t "$FRONT_DOOR_IMAGE" "$ctx" || die "building $FRONT_DOOR_IMAGE failed"
    drop_if_dangling "$old"
    rm -rf "$ctx"
    log "$FRONT_DOOR_IMAGE built in $(( $(now_ms) - t0 )) ms"
}

# -------------------------------------------------- copies into b and c
copy_small_images() {
    local e host img t0 missing old_ids old
    local small=("$BASE_IMAGE" "$TINY_IMAGE" "$FRONT_DOOR_IMAGE")
    for tag in "${STANDIN_TAGS[@]}"; do small+=("$STANDIN_REPO:$tag"); done
    for e in "${ENGINES[@]}"; do
        [[ "$e" == a ]] && continue
        host="$(host_of "$e")"
        missing=()
        old_ids=()
        for img in "${small[@]}"; do
            old="$(image_id "$host" "$img")"
            if [[ "$old" != "$(image_id "$HOST_A" "$img")" ]]; then
                missing+=("$img")
                [[ -n "$old" ]] && old_ids+=("$old")
            fi
        done
        if (( ${#missing[@]} == 0 )); then
            log "engine $e: images up to date"
            continue
        fi
        t0=$(now_ms)
        dk save "${missing[@]}" | docker -H "$host" load -q >/dev/null
        for old in "${old_ids[@]}"; do drop_if_dangling "$old" "$host"; done
        log "engine $e: loaded ${missing[*]} in $(( $(now_ms) - t0 )) ms"
    done
}

# -------------------------------------------------------------- commands
cmd_build() {
    local all_engines=0 arg t0
    for arg in "$@"; do
        case "$arg" in
            --all-engines) all_engines=1 ;;
            *) die "unknown option: $arg" ;;
        esac
    done
    [[ "$(id -u)" -eq 0 ]] || die "building the test bed images needs root"
    timeout 10 docker -H "$HOST_A" info >/dev/null 2>&1 \
        || die "engine a does not answer at $HOST_A (run tests/testbed/engines.sh up)"
    mkdir -p "$CACHE_DIR"
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/fleetctl-images.XXXXXX")"
    t0=$(now_ms)
    build_base
    build_tiny
    build_standin
    build_front_door
    build_triton
    if (( all_engines )); then
        copy_small_images
    fi
    log "images ready in $(( $(now_ms) - t0 )) ms"
}

cmd_list() {
    local e
    for e in "${ENGINES[@]}"; do
        echo "== engine $e ($(host_of "$e"))"
        docker -H "$(host_of "$e")" image ls --format '{{.Repository}}:{{.Tag}}\t{{.ID}}\t{{.Size}}' \
            | grep '^fleetctl-testbed/' || echo "(none)"
    done
}

case "${1:-}" in
    build) shift; with_lock images; cmd_build "$@" ;;
    list)  cmd_list ;;
    *)     echo "usage: $0 build [--all-engines] | list" >&2; exit 2 ;;
esac
