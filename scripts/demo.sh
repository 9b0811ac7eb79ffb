#!/usr/bin/env bash
# Install everything and run the federated demo. Extra args go to `fmfl demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh demo
exec .venv/bin/fmfl demo "$@"
