#!/usr/bin/env bash
# Installs the servers and tools the tests start on loopback from Debian's packages: Redis, and
# Chromium (headless, for the page tests in tests/frontends/test_pages.py).
# Idempotent: does nothing when they are already there.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || need+=(chromium)
((${#need[@]})) || exit 0
if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
  echo "install-services: need root or sudo to install: ${need[*]}" >&2; exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package starts a system-wide server; the tests start their own on a free port.
if [[ " ${need[*]} " == *" redis-server "* ]] && command -v systemctl >/dev/null 2>&1; then $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
$sudo service redis-server stop >/dev/null 2>&1 || true
echo "install-services: installed ${need[*]}"
