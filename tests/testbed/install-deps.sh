#!/usr/bin/env bash
# Install the Debian packages the test bed needs (Slurm 22.05 with slurmrestd and the JWT
# plugin, munge, Prometheus, openssl, curl, python3 for smoke.sh, faketime for the lease fault checks). A quick no-op when everything is present.
# Needs root (or sudo). Non-interactive.
set -euo pipefail

PKGS=(slurmctld slurmd slurmrestd slurm-client munge slurm-wlm-jwt-plugin prometheus openssl curl python3 faketime)

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }

missing=()
for p in "${PKGS[@]}"; do installed "$p" || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all packages present"
  exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
t0=$(date +%s)
echo "install-deps: installing ${missing[*]}"
# apt-get update only when the package lists are missing or older than a day, or when a
# package is unknown to them.
lists=/var/lib/apt/lists
need_update=0
if [ -z "$(find "$lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  need_update=1
else
  for p in "${missing[@]}"; do
    apt-cache show "$p" >/dev/null 2>&1 || { need_update=1; break; }
  done
fi
[ $need_update = 1 ] && $SUDO apt-get update -qq
# Do not let the packages' own services start (the test bed runs private instances).
policy=/usr/sbin/policy-rc.d
added_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
  $SUDO chmod +x "$policy"
  added_policy=1
fi
rc=0
$SUDO apt-get install -y -qq --no-install-recommends -o Dpkg::Options::=--force-confdef \
  -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null || rc=$?
[ $added_policy = 1 ] && $SUDO rm -f "$policy"
[ $rc -eq 0 ] || { echo "install-deps: apt-get install failed ($rc)" >&2; exit $rc; }
echo "install-deps: done in $(( $(date +%s) - t0 )) s"
