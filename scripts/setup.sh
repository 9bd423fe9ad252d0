#!/usr/bin/env bash
# Everything a fresh machine needs, idempotent: Debian packages, the project's virtualenv, and the
# toolchain (Pulumi CLI, providers, kube-apiserver, etcd, helm) built from pinned Go modules.
#   scripts/setup.sh            all of it
#   scripts/setup.sh --no-toolchain   skip the Go builds (unit and integration tests only)
set -euo pipefail
cd "$(dirname "$0")/.."

want_toolchain=1
[[ "${1:-}" == "--no-toolchain" ]] && want_toolchain=0

log() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages: sshd for the integration tests and the lab's hosts, plus what the lab lists.
packages=(openssh-server openssh-client iproute2 openssl python3-venv)
if [[ -f lab/requirements-apt.txt ]]; then
  while read -r pkg; do [[ -n "$pkg" && "$pkg" != \#* ]] && packages+=("$pkg"); done < lab/requirements-apt.txt
fi
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The virtualenv named in Pulumi.yaml; rebuilt when the requirements change.
stamp=.venv/.requirements.sha256
sum=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [[ ! -x .venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "$sum" ]]; then
  log "creating .venv"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$sum" > "$stamp"
fi

if ((want_toolchain)); then
  log "toolchain (cached builds are skipped)"
  bash scripts/toolchain.sh
fi
log "ready"
