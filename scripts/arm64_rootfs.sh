#!/usr/bin/env bash
# Build, once, the arm64 Debian userland the arm64 tests (tests/arm64/) run a real `fmfl client` in, under
# qemu user-mode emulation: Debian minbase + python3, and a venv (/opt/fmfl-venv) holding fmfl's device
# dependencies (the core dependencies + the `edge` extra of pyproject.toml) as aarch64 wheels from PyPI.
# fmfl itself is not in it: the test installs the checkout's wheel into it on each run.
#
#   scripts/arm64_rootfs.sh [--ensure]   build it unless already built; print its directory (default)
#   scripts/arm64_rootfs.sh --print      print the directory the current inputs map to; exit 3 if not built
#
# The cache lives outside the clone, in ${FMFL_ARM64_CACHE:-${FMFL_CACHE:-/var/cache/fmfl}/arm64}/KEY, KEY
# a hash of this script, the Debian suite, the package list, the dependency specs from pyproject.toml and
# the versions of those packages in the project's .venv (the arm64 venv gets the same versions, so the test
# compares like with like). A build goes into a temporary folder renamed into place when complete, so a
# killed build never leaves a half userland that looks valid. Other entries unused for 14 days are removed.
#
# Needs root (mmdebstrap's root mode) and: qemu-user-static binfmt-support mmdebstrap arch-test proot
# (scripts/install.sh installs them as root). mmdebstrap runs the arm64 maintainer scripts through
# binfmt_misc: when it is not mounted/enabled, this script mounts it and enables qemu-aarch64 for the
# build, and puts both back as they were afterwards (a build killed with SIGKILL leaves them enabled). A cold
# build takes about 5 minutes (downloads, then emulated dpkg and pip); a warm call well under a second.
set -euo pipefail
self="$(realpath "$0")"
cd "$(dirname "$self")/.."

SUITE=bookworm  # python3 3.11: within requires-python, and the cp311 aarch64 wheels exist
PACKAGES=python3,python3-venv,python3-pip,ca-certificates
VENV=/opt/fmfl-venv
mode="${1:---ensure}"
case "$mode" in --ensure|--print) ;; *) sed -n '2,9p' "$self" >&2; exit 2 ;; esac

log() { echo "arm64_rootfs.sh: $*" >&2; }

if [ -n "${FMFL_ARM64_CACHE:-}" ]; then
  cache="$FMFL_ARM64_CACHE"
else
  cache="${FMFL_CACHE:-/var/cache/fmfl}/arm64"
fi

# The device's requirements: [project] dependencies + the `edge` extra, each pinned to the version the
# project's .venv has (when it has it), so the emulated device runs the same numpy/onnxruntime as the host.
# Without a .venv (scripts/install.sh makes it) nothing is pinned: the system's packages are no reference.
py=python3 pin=0
if [ -x .venv/bin/python ]; then py=.venv/bin/python pin=1; fi
requirements="$(PIN="$pin" "$py" - <<'EOF'
import os, re, tomllib
from importlib import metadata
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for spec in [*project["dependencies"], *project["optional-dependencies"]["edge"]]:
    name = re.match(r"[A-Za-z0-9._-]+", spec).group(0)
    try:
        pin = f" ; pinned to the .venv's: {name}=={metadata.version(name)}" if os.environ["PIN"] == "1" else ""
    except metadata.PackageNotFoundError:
        pin = ""
    print(f"{spec}{pin}")
EOF
)"
key="$( { sha256sum < "$self"; echo "$SUITE"; echo "$PACKAGES"; echo "$VENV"; echo "$requirements"; } \
        | sha256sum | cut -c1-16)"
dest="$cache/$key"

if [ -f "$dest/COMPLETE" ]; then
  touch "$dest/COMPLETE"  # last used: see the pruning below
  echo "$dest/rootfs"
  exit 0
fi
if [ "$mode" = --print ]; then
  echo "$dest/rootfs"
  exit 3
fi

# --- build -----------------------------------------------------------------------------------------------
[ "$(id -u)" = 0 ] || { log "building the arm64 userland needs root (mmdebstrap's root mode)"; exit 1; }
missing=()
for tool in mmdebstrap arch-test proot qemu-aarch64-static update-binfmts; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "missing: ${missing[*]} (apt-get install qemu-user-static binfmt-support mmdebstrap arch-test proot;" \
      "scripts/install.sh does it as root)"
  exit 1
fi
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9  # one build at a time; a second caller waits, then finds it built
if [ -f "$dest/COMPLETE" ]; then echo "$dest/rootfs"; exit 0; fi

# Remove a folder that may hold a killed mmdebstrap's mounts (proc, sys, dev): unmount them first, and never
# cross into another file system.
safe_remove() {
  local dir="$1" m
  [ -e "$dir" ] || return 0
  dir="$(realpath "$dir")"
  while read -r m; do
    umount -l "$m" || true
  done < <(findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0 "/", d) == 1' | sort -r)
  if findmnt -rn -o TARGET | awk -v d="$dir/" 'index($0 "/", d) == 1' | grep -q .; then
    log "refusing to delete $dir: something is still mounted under it"
    return 1
  fi
  rm -rf --one-file-system "$dir"
}
for stale in "$cache"/.build-*; do
  if [ -e "$stale" ]; then log "removing an unfinished build: $stale"; safe_remove "$stale"; fi
done

# binfmt_misc, for mmdebstrap's emulated dpkg: enabled for the build only, put back as it was.
mounted_binfmt=0 enabled_aarch64=0
restore_binfmt() {
  if [ "$enabled_aarch64" = 1 ]; then update-binfmts --disable qemu-aarch64 >/dev/null 2>&1 || true; fi
  if [ "$mounted_binfmt" = 1 ]; then umount /proc/sys/fs/binfmt_misc || true; fi
}
tmp="$cache/.build-$key-$$"
cleanup() { restore_binfmt; safe_remove "$tmp" || true; }
trap cleanup EXIT
trap 'exit 130' INT TERM
if ! arch-test arm64 >/dev/null 2>&1; then
  if ! mountpoint -q /proc/sys/fs/binfmt_misc; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc && mounted_binfmt=1
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || ! grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-aarch64; then
    update-binfmts --enable qemu-aarch64 && enabled_aarch64=1
  fi
  arch-test arm64 >/dev/null || { log "arm64 binaries do not run through binfmt_misc + qemu-aarch64-static"; exit 1; }
fi

start=$(date +%s)
mkdir -p "$tmp"
printf '%s\n' "$requirements" > "$tmp/inputs.txt"
log "building the arm64 userland ($SUITE, $PACKAGES) in $tmp"
mmdebstrap --arch=arm64 --variant=minbase --include="$PACKAGES" "$SUITE" "$tmp/rootfs" >&2
restore_binfmt; mounted_binfmt=0 enabled_aarch64=0  # from here on, everything runs through proot
log "debian userland built in $(( $(date +%s) - start )) s"

mkdir -p "$tmp/rootfs/opt/fmfl-build"
sed -e 's/ ; pinned.*//' <<<"$requirements" > "$tmp/rootfs/opt/fmfl-build/requirements.txt"
sed -n -e 's/.* ; pinned to the .venv.s: //p' <<<"$requirements" > "$tmp/rootfs/opt/fmfl-build/constraints.txt"

# pip inside reaches PyPI the way the host's does: the host's CA bundle (a TLS-intercepting proxy may sign
# for PyPI), its index and proxy settings. Not the host's find-links or constraints: those are x86 files.
ca=""
for f in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
  if [ -n "$f" ] && [ -f "$f" ]; then ca="$f"; break; fi
done
run_args=()
[ -n "$ca" ] && run_args+=(-b "$ca:/etc/fmfl-host-ca.crt" -e PIP_CERT=/etc/fmfl-host-ca.crt)
for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  [ -n "${!var:-}" ] && run_args+=(-e "$var=${!var}")
done
run_args+=(-e PIP_DISABLE_PIP_VERSION_CHECK=1 -e PIP_DEFAULT_TIMEOUT=180 -e PIP_NO_INPUT=1)

scripts/arm64_run.sh "$tmp/rootfs" -- /usr/bin/python3 -m venv "$VENV" >&2
attempt=1
until scripts/arm64_run.sh "$tmp/rootfs" "${run_args[@]}" -- "$VENV/bin/python" -m pip install --no-cache-dir --progress-bar off \
        --only-binary=:all: -r /opt/fmfl-build/requirements.txt -c /opt/fmfl-build/constraints.txt >&2; do
  [ $attempt -lt 3 ] || { log "pip install failed $attempt times"; exit 1; }
  attempt=$((attempt + 1)); log "pip install failed; try $attempt in 10 s"; sleep 10
done
scripts/arm64_run.sh "$tmp/rootfs" -- "$VENV/bin/python" -m pip freeze > "$tmp/rootfs/opt/fmfl-build/freeze.txt"
# Smoke test: every native module imports on the emulated CPU (onnxruntime is the one that can crash).
scripts/arm64_run.sh "$tmp/rootfs" -- "$VENV/bin/python" -c '
import platform, numpy, onnxruntime, paho.mqtt.client, tokenizers, PIL.Image, zstandard, cryptography
assert platform.machine() == "aarch64", platform.machine()
print("arm64 userland ok:", platform.machine(), "numpy", numpy.__version__, "onnxruntime", onnxruntime.__version__)
' >&2

echo "built $(date -u +%FT%TZ) in $(( $(date +%s) - start )) s" > "$tmp/COMPLETE"
mv -T "$tmp" "$dest"
log "arm64 userland ready in $(( $(date +%s) - start )) s: $dest"

# Prune entries of other keys unused for 14 days (an in-use entry is touched on every call).
find "$cache" -mindepth 2 -maxdepth 2 -name COMPLETE -mtime +14 -print 2>/dev/null | while read -r old; do
  old="$(dirname "$old")"
  if [ "$old" != "$dest" ]; then log "removing $old (unused for 14 days)"; safe_remove "$old" || true; fi
done
echo "$dest/rootfs"
