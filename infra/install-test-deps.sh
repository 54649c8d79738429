#!/usr/bin/env bash
# Install the Debian packages listed in infra/apt-test-packages.txt that are not installed yet.
# Real services in tests (Prometheus, Mosquitto, ...) come from Debian, never from a download.
set -euo pipefail
cd "$(dirname "$0")"
missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done < apt-test-packages.txt
[ ${#missing[@]} -eq 0 ] && exit 0
echo "sf: installing test services with apt: ${missing[*]}" >&2
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
