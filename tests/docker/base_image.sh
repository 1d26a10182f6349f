#!/usr/bin/env bash
# Print the name of a base image for the Dockerfile's BASE_IMAGE build argument.
#
# The default base (python:3.12-slim) when the engine has it or can pull it; otherwise a local
# Debian bookworm made with debootstrap from Debian's own packages: python3 (3.11, which
# tensorflow 2.21 has wheels for), python3-venv and ca-certificates, imported as
# babysitter-base:local (built once, reused). Progress goes to stderr, the image name to stdout.
# Needs root and debootstrap for the fallback.
set -euo pipefail

DOCKER=${BABYSITTER_DOCKER:-docker}
DEFAULT=${1:-python:3.12-slim}
LOCAL=babysitter-base:local
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if "$DOCKER" image inspect "$DEFAULT" >/dev/null 2>&1 \
  || timeout 300 "$DOCKER" pull -q "$DEFAULT" >/dev/null 2>&1; then
  echo "$DEFAULT"
  exit 0
fi
if "$DOCKER" image inspect "$LOCAL" >/dev/null 2>&1; then
  echo "base_image.sh: $DEFAULT cannot be pulled; reusing $LOCAL" >&2
  echo "$LOCAL"
  exit 0
fi

echo "base_image.sh: $DEFAULT cannot be pulled; building $LOCAL with debootstrap ($SUITE)" >&2
command -v debootstrap >/dev/null || { echo "base_image.sh: debootstrap is missing" >&2; exit 1; }
ROOTFS=$(mktemp -d /tmp/babysitter-rootfs.XXXXXX)
trap 'rm -rf "$ROOTFS"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 \
  || { tail -n 20 "$ROOTFS.log" >&2; exit 1; }
rm -f "$ROOTFS.log"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | "$DOCKER" import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["/bin/bash"]' \
  - "$LOCAL" >/dev/null
echo "$LOCAL"
