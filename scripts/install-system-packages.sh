#!/usr/bin/env bash
# Install the Debian packages Sluice's demo and tests run for real, only if they are missing.
# Safe to run twice. Uses sudo when not root.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# Redis Sentinel (high availability): the tests run a master, a replica and 3 sentinels.
command -v redis-sentinel >/dev/null 2>&1 || need+=(redis-sentinel)
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || need+=(prometheus)
{ command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ]; } || need+=(haproxy)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# tests/deploy/test_compose.py checks docker-compose.yml with Compose itself (`docker-compose config`;
# no Docker daemon needed).
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# Extra Debian packages named on the command line: `chromium` for `make test` (the dashboard's
# browser tests drive Debian's headless Chromium, never `playwright install`), and `debootstrap
# buildah podman` for its image test (tests/ship: a Debian base by debootstrap, imported by podman,
# the Dockerfile built and run by buildah); `hey nginx-light` for `make bench`.
for pkg in "$@"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "missing: ${need[*]} — install them with your package manager (Sluice needs redis-server, redis-sentinel, prometheus, haproxy; its tests docker-compose)" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "missing: ${need[*]}; run as root or install sudo" >&2; exit 1; }
  sudo="sudo"
fi
echo "installing Debian packages: ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
# Sluice starts its own Redis / Prometheus / HAProxy on 127.0.0.1 when it needs them: keep the
# packages from starting system-wide services (Debian's Prometheus would listen on 0.0.0.0:9090).
if [ ! -e /usr/sbin/policy-rc.d ]; then
  $sudo sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
  trap '$sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
