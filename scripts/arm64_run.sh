#!/usr/bin/env bash
# Run a command inside an arm64 Debian userland (from scripts/arm64_rootfs.sh) under qemu user-mode emulation,
# through proot: no root, no mounts and no binfmt_misc needed, and child processes are emulated too.
#
#   scripts/arm64_run.sh ROOTFS [-b HOST[:GUEST]]... [-e VAR=VALUE]... [-w DIR] -- CMD [ARG]...
#
# -b binds a host path into the userland (GUEST defaults to the same path); -e sets a variable of the
# command's otherwise empty environment (PATH, HOME and LANG are set); -w is the working directory.
# The host's network namespace is shared: 127.0.0.1 inside is the host's loopback.
#
# /proc/cpuinfo is replaced by an ARM Cortex-A72 one (tests/arm64/cpuinfo_cortex_a72.txt): under Debian 12's
# qemu 7.2 the host's x86 /proc/cpuinfo shows through, and `import onnxruntime` segfaults on it.
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
CPUINFO="${FMFL_ARM64_CPUINFO:-$here/tests/arm64/cpuinfo_cortex_a72.txt}"
QEMU_CPU_MODEL="${FMFL_ARM64_QEMU_CPU:-cortex-a72}"

usage() { sed -n '2,12p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
rootfs="$1"; shift
if [ ! -x "$rootfs/usr/bin/python3" ]; then
  echo "arm64_run.sh: $rootfs is not an arm64 userland (no usr/bin/python3)" >&2
  exit 2
fi

binds=() envs=() workdir=/
while [ $# -gt 0 ]; do
  case "$1" in
    -b) binds+=(-b "$2"); shift 2 ;;
    -e) envs+=("$2"); shift 2 ;;
    -w) workdir="$2"; shift 2 ;;
    --) shift; break ;;
    *) usage ;;
  esac
done
[ $# -ge 1 ] || usage

for tool in proot qemu-aarch64-static; do
  command -v "$tool" >/dev/null || {
    echo "arm64_run.sh: $tool is missing (apt-get install proot qemu-user-static;" \
         "scripts/install.sh does it as root)" >&2
    exit 127
  }
done

# The name resolver files are the host's, so pip and MQTT resolve names the way the host does.
host_files=()
for f in /etc/resolv.conf /etc/hosts; do [ -e "$f" ] && host_files+=(-b "$f"); done

exec proot -q "qemu-aarch64-static -cpu $QEMU_CPU_MODEL" -r "$rootfs" \
  -b /dev -b /proc -b /sys -b "$CPUINFO:/proc/cpuinfo" "${host_files[@]}" "${binds[@]}" -w "$workdir" \
  /usr/bin/env -i PATH=/opt/fmfl-venv/bin:/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 "${envs[@]}" "$@"
