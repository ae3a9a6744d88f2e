#!/usr/bin/env bash
# Builds the kernel fast path into dist/: the BPF objects (dist/bpf/*.bpf.o, clang against the
# running kernel's BTF) and the libbpf shim the TypeScript side loads (dist/native/libdsrbpf.so).
# `npm run build` runs it. vmlinux.h is generated here, from this machine's kernel, and never
# committed: the objects are compiled for the kernel they will run on.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian installs bpftool in /usr/sbin, which a user's PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

missing=()
for c in clang bpftool gcc pkg-config; do command -v "$c" >/dev/null || missing+=("$c"); done
pkg-config --exists libbpf 2>/dev/null || missing+=(libbpf)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "build-native: missing ${missing[*]}; install: apt-get install -y clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config gcc make" >&2
  exit 1
fi
if [ ! -r /sys/kernel/btf/vmlinux ]; then
  echo "build-native: /sys/kernel/btf/vmlinux is missing: the kernel has no BTF (CONFIG_DEBUG_INFO_BTF)" >&2
  exit 1
fi

mkdir -p dist/bpf dist/native
bpftool btf dump file /sys/kernel/btf/vmlinux format c > dist/bpf/vmlinux.h.tmp
mv dist/bpf/vmlinux.h.tmp dist/bpf/vmlinux.h

for src in bpf/*.bpf.c; do
  clang -O2 -g -target bpf -Wall -Werror -Idist/bpf -Ibpf/include \
    -c "$src" -o "dist/bpf/$(basename "$src" .c).o"
done

# shellcheck disable=SC2046 # pkg-config prints several words on purpose
gcc -O2 -g -Wall -Wextra -Werror -fPIC -shared native/dsrbpf.c \
  $(pkg-config --cflags --libs libbpf) -o dist/native/libdsrbpf.so
