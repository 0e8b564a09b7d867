#!/usr/bin/env bash
# Build the WordPress site images from Debian's packages, FROM local/debian-py:bookworm (deploy/build-image.sh
# makes it), without a registry:
#   erp/wordpress-fpm:local   php8.2-fpm + php8.2-mysql + wordpress, FPM on 0.0.0.0:9000
#   erp/mariadb:local         mariadb-server, one database/user from the environment
# Idempotent: each image carries a label with a hash of its inputs; an image whose label matches is kept.
# Usage: deploy/images/build-wordpress.sh [--force]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONTEXT="$HERE/wordpress"
DOCKER=${DOCKER:-docker}
BASE_IMAGE=${BASE_IMAGE:-local/debian-py:bookworm}
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

if command -v flock >/dev/null 2>&1 && [[ -z "${ERP_WP_IMAGES_LOCKED:-}" ]]; then
  export ERP_WP_IMAGES_LOCKED=1
  exec flock /tmp/.erp-wordpress-images.lock "$0" "$@"
fi

if ! "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  echo "build-wordpress.sh: base image $BASE_IMAGE missing (deploy/build-image.sh builds it)" >&2
  exit 1
fi

label_of() { "$DOCKER" image inspect -f '{{index .Config.Labels "erp.build-hash"}}' "$1" 2>/dev/null || true; }

build_one() { # $1 = tag, $2 = Dockerfile, rest = the files it copies
  local tag=$1 dockerfile=$2 hash file
  shift 2
  hash=$( { "$DOCKER" image inspect -f '{{.Id}}' "$BASE_IMAGE"; cat "$CONTEXT/$dockerfile";
    for file in "$@"; do cat "$CONTEXT/$file"; done; } | sha256sum | cut -c1-16)
  if [[ $FORCE == 0 && "$(label_of "$tag")" == "$hash" ]]; then
    echo "build-wordpress.sh: $tag is up to date ($hash)"
    return
  fi
  "$DOCKER" build -q --build-arg "BASE_IMAGE=$BASE_IMAGE" --label "erp.build-hash=$hash" \
    -f "$CONTEXT/$dockerfile" -t "$tag" "$CONTEXT" >/dev/null
  echo "build-wordpress.sh: built $tag ($hash)"
}

build_one erp/wordpress-fpm:local Dockerfile.fpm wp-config.php static.php fpm-pool.conf fpm-entrypoint \
  mu-plugins/erp-site-title.php
build_one erp/mariadb:local Dockerfile.mariadb mariadb-entrypoint
