#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Installs the Debian packages rcache needs, only those that are missing.
# Uses sudo when not root. Safe to run again.
set -euo pipefail

pkgs=(pkg-config libhiredis-dev libssl-dev openssl libjansson-dev libc-ares-dev libsqlite3-dev
      redis-server redis-tools clang libclang-rt-14-dev clang-format gnuplot-nox python3
      libuv1-dev libevent-dev)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep "install ok installed" >/dev/null || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's package starts a system redis on 6379 where init runs; the tests never use it.
