#!/usr/bin/env bash
# Installs what dsr needs on a Debian 12 machine (as root) and builds it: the Debian packages
# the lab and tests use, the npm dependencies, and the TypeScript build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" -eq 0 ] || { echo "setup: run as root (the lab creates network namespaces and users)" >&2; exit 1; }

# Node 20.19 or newer (the machine image ships it; Debian 12's own nodejs is 18).
if ! command -v node >/dev/null || ! node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'; then
  echo "setup: Node.js >= 20.19 is required (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi

# Debian packages: Samba servers and clients for the lab, netns/bridge/nft tooling, and
# impacket (an independent NTLM/SPNEGO/DCE-RPC implementation the tests cross-check against),
# python3 (test/offload/tcp-rewind.py rebuilds a TCP connection with TCP_REPAIR),
# HAProxy (the bench's L4 peer), and the kernel fast path's toolchain: clang/llvm for the BPF
# programs, libbpf and gcc for the shim, bpftool for vmlinux.h and the layout checks.
packages=(samba smbclient samba-testsuite iproute2 nftables util-linux procps passwd python3 python3-impacket haproxy
  clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config gcc make)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # Debian's samba package would start a system smbd on port 445; the lab runs its own
  # servers inside namespaces, so keep services from starting during the install.
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1; fi
  apt-get install -y -qq "${missing[@]}" >/dev/null
  [ "$created_policy" -eq 1 ] && rm -f "$policy"
fi

# npm dependencies exactly as locked; install scripts run only where package.json allows.
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
echo "setup: ready"
