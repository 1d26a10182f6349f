#!/usr/bin/env bash
# Make sure a Docker engine answers, the way it can run on a machine without a container registry
# or a network bridge (this project's dev and CI machines): Debian's docker.io, started by hand with
# no bridge and no iptables, so builds and containers use `--network host` and traffic stays on
# loopback or goes where the host's own traffic goes. Idempotent; run as root. Prints nothing but
# progress on stderr; exits non-zero if no engine answers in the end.
set -euo pipefail

LOG=${BABYSITTER_DOCKERD_LOG:-/tmp/babysitter-dockerd.log}
# Debian's 20.10 client: it builds with BuildKit (RUN --mount, --secret) without the buildx plugin.
DOCKER=${BABYSITTER_DOCKER:-$(command -v /usr/bin/docker docker | head -n1 || true)}

if [ -n "$DOCKER" ] && "$DOCKER" info >/dev/null 2>&1; then
  echo "engine.sh: a Docker engine already answers" >&2
  exit 0
fi

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! command -v dockerd >/dev/null 2>&1; then
  echo "engine.sh: installing Debian's docker.io" >&2
  apt_install docker.io
fi
if ! command -v debootstrap >/dev/null 2>&1; then
  # The smoke test builds its base image with it when no registry serves python:3.12-slim.
  apt_install debootstrap
fi
DOCKER=${BABYSITTER_DOCKER:-/usr/bin/docker}

if ! pgrep -x dockerd >/dev/null 2>&1; then
  echo "engine.sh: starting dockerd (log: $LOG)" >&2
  setsid nohup dockerd --bridge=none --iptables=false >"$LOG" 2>&1 </dev/null &
fi
for _ in $(seq 1 60); do
  if "$DOCKER" info >/dev/null 2>&1; then
    echo "engine.sh: Docker engine is up" >&2
    exit 0
  fi
  sleep 1
done
echo "engine.sh: dockerd did not answer within 60 s; last lines of $LOG:" >&2
tail -n 20 "$LOG" >&2 || true
exit 1
