#!/usr/bin/env bash
# Build the reconciler's image without a registry:
#   1. a Debian 12 base with python3 bootstrapped from Debian's packages (debootstrap) and `docker import`ed
#      as local/debian-py:bookworm; skipped when that image exists (it takes ~45 s and changes rarely);
#   2. wheels of the project and its dependencies built on the host (PyPI is not reachable from inside
#      `docker build`: the image's CA store fails the TLS check);
#   3. `docker build -f deploy/Dockerfile` FROM that base, installing with `pip install --no-index`.
# The docker CLI (python-on-whales calls it) is Debian's, copied from the host's docker.io package.
# Usage: deploy/build-image.sh [TAG]        (default local/tenant-reconciler:latest)
# Env:   BASE_IMAGE, DEBIAN_MIRROR, PYTHON (python used for `pip wheel`), DOCKER, REBUILD_BASE=1
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
TAG=${1:-local/tenant-reconciler:latest}
BASE_IMAGE=${BASE_IMAGE:-local/debian-py:bookworm}
DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
DOCKER=${DOCKER:-docker}
PYTHON=${PYTHON:-python3}
DOCKER_CLI=${DOCKER_CLI:-/usr/bin/docker}

log() { printf '[build-image] %s\n' "$*"; }
seconds() { echo $(($(date +%s) - $1)); }

# One builder at a time on this machine: concurrent test sessions share the base image.
if command -v flock >/dev/null 2>&1 && [[ -z "${RECONCILER_IMAGE_LOCKED:-}" ]]; then
  export RECONCILER_IMAGE_LOCKED=1
  exec flock /tmp/.tenant-reconciler-image.lock "$0" "$@"
fi

work=$(mktemp -d /tmp/reconciler-image.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT

# ------------------------------------------------------------------ 1. base image
if [[ -z "${REBUILD_BASE:-}" ]] && "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  log "base $BASE_IMAGE exists (REBUILD_BASE=1 rebuilds it)"
else
  command -v debootstrap >/dev/null || { echo "build-image.sh: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
  began=$(date +%s)
  log "bootstrapping Debian bookworm from $DEBIAN_MIRROR into $work/root"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$work/root" "$DEBIAN_MIRROR" \
    >"$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
  # Package lists and caches only make the image bigger; nothing inside the image installs from apt.
  rm -rf "$work/root/var/cache/apt/archives/"*.deb "$work/root/var/lib/apt/lists/"*
  tar --numeric-owner -C "$work/root" -c . | "$DOCKER" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
  log "base $BASE_IMAGE imported in $(seconds "$began") s"
fi

# ------------------------------------------------------------------ 2. wheels and the build context
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
  echo "build-image.sh: $PYTHON has no pip; set PYTHON to a venv's python (python3 -m venv /some/dir)" >&2
  exit 1
fi
began=$(date +%s)
context=$work/context
mkdir -p "$context/wheels/deps" "$context/wheels/app"
cp "$HERE/Dockerfile" "$context/Dockerfile"
if [[ ! -x "$DOCKER_CLI" ]] || ! ldd "$DOCKER_CLI" >/dev/null 2>&1; then
  echo "build-image.sh: $DOCKER_CLI is not a dynamically linked docker CLI (apt-get install docker.io)" >&2
  exit 1
fi
install -m 0755 "$DOCKER_CLI" "$context/docker"
# Dependencies and the project in separate layers: the dependency layer stays cached while the code changes.
"$PYTHON" -m pip wheel -q --wheel-dir "$context/wheels/app" --no-deps "$REPO"
"$PYTHON" -m pip wheel -q --wheel-dir "$context/wheels/deps" "$REPO"
rm -f "$context/wheels/deps/"tenant_reconciler-*.whl
log "wheels built in $(seconds "$began") s ($(ls "$context/wheels/deps" | wc -l) dependencies)"

# ------------------------------------------------------------------ 3. docker build
began=$(date +%s)
"$DOCKER" build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$TAG" "$context" >/dev/null
log "built $TAG in $(seconds "$began") s"
