#!/usr/bin/env bash
# Build the demo images locally (no registry needed) from Debian's busybox-static via `docker import`:
#   erp/busybox:local   busybox with common applets, CMD sh
#   erp/demo-svc:1      /bin/erp-serve (PID 1) + /bin/erp-migrate, version 1
#   erp/demo-svc:2      the same, version 2
# Idempotent: each image carries a label with a hash of its inputs; an image whose label matches is kept.
# Usage: deploy/images/build.sh [--force]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BUSYBOX=${BUSYBOX:-/bin/busybox}
DOCKER=${DOCKER:-docker}
FORCE=0
[[ "${1:-}" == "--force" ]] && FORCE=1

APPLETS="sh ash httpd wget tar sleep cat echo kill date mkdir sha256sum ls rm cp mv ln gzip gunzip zcat hostname printf
touch test [ [[ true false env ps grep sed awk head tail wc cut tr sort uniq id whoami uname nc ping ip ifconfig
netstat nslookup timeout find xargs chmod chown du df stat basename dirname readlink seq expr mktemp sync pwd which"

if [[ ! -x "$BUSYBOX" ]]; then
  echo "build.sh: $BUSYBOX not found (apt-get install busybox-static)" >&2
  exit 1
fi
if ! "$BUSYBOX" --list >/dev/null 2>&1; then
  echo "build.sh: $BUSYBOX does not look like busybox" >&2
  exit 1
fi

# Serialise concurrent builds on this machine (several test sessions may call us at once).
if command -v flock >/dev/null 2>&1 && [[ -z "${ERP_IMAGES_LOCKED:-}" ]]; then
  export ERP_IMAGES_LOCKED=1
  exec flock /tmp/.erp-demo-images.lock "$0" "$@"
fi

inputs_hash=$( { sha256sum "$BUSYBOX" | cut -d' ' -f1; cat "$HERE/erp-serve" "$HERE/erp-migrate" "$HERE/build.sh"; } \
  | sha256sum | cut -c1-16)

label_of() { "$DOCKER" image inspect -f '{{index .Config.Labels "erp.build-hash"}}' "$1" 2>/dev/null || true; }

work=$(mktemp -d /tmp/erp-images.XXXXXX)
trap 'rm -rf "$work"' EXIT

make_rootfs() { # $1 = dir
  local root=$1
  mkdir -p "$root/bin" "$root/etc" "$root/www" "$root/data" "$root/tmp" "$root/root"
  chmod 1777 "$root/tmp"
  cp "$BUSYBOX" "$root/bin/busybox"
  local available applet
  available=" $("$BUSYBOX" --list | tr '\n' ' ') "
  for applet in $APPLETS; do
    if [[ "$available" == *" $applet "* ]]; then
      ln -sf busybox "$root/bin/$applet"
    fi
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'hosts: files dns\n' >"$root/etc/nsswitch.conf"
}

import_image() { # $1 = tag, $2 = rootfs, rest = extra --change values
  local tag=$1 root=$2
  shift 2
  local changes=(--change "ENV PATH=/bin" --change "LABEL erp.build-hash=$inputs_hash")
  local c
  for c in "$@"; do changes+=(--change "$c"); done
  tar --numeric-owner --owner=0 --group=0 -C "$root" -c . | "$DOCKER" import "${changes[@]}" - "$tag" >/dev/null
  echo "build.sh: built $tag ($inputs_hash)"
}

build_one() { # $1 = tag, $2 = kind (base|1|2)
  local tag=$1 kind=$2
  if [[ $FORCE == 0 && "$(label_of "$tag")" == "$inputs_hash" ]]; then
    echo "build.sh: $tag is up to date ($inputs_hash)"
    return
  fi
  local root="$work/$kind"
  make_rootfs "$root"
  if [[ $kind == base ]]; then
    import_image "$tag" "$root" 'CMD ["/bin/sh"]'
  else
    install -m 0755 "$HERE/erp-serve" "$root/bin/erp-serve"
    install -m 0755 "$HERE/erp-migrate" "$root/bin/erp-migrate"
    printf '%s\n' "$kind" >"$root/etc/erp-version"
    import_image "$tag" "$root" 'CMD ["/bin/erp-serve"]' 'EXPOSE 8080' 'WORKDIR /' \
      "LABEL erp.version=$kind"
  fi
}

build_one erp/busybox:local base
build_one erp/demo-svc:1 1
build_one erp/demo-svc:2 2
