#!/usr/bin/env bash
# Install the test dependencies and run the whole test suite (what CI runs). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install.sh dev
# The emulated arm64 device's userland (tests/arm64): built once (about 5 minutes) and cached outside the
# clone, before pytest, so no test spends its timeout on it. A failure here is not fatal: the arm64 test
# then tries the build itself and fails with the build's log. FMFL_SKIP_ARM64_BUILD=1 skips this step.
if [ -z "${FMFL_SKIP_ARM64_BUILD:-}" ] && [ "$(id -u)" = 0 ]; then
  scripts/arm64_rootfs.sh >/dev/null || echo "test.sh: scripts/arm64_rootfs.sh failed; the arm64 test will fail" >&2
fi
set +e
.venv/bin/python -m pytest "$@"
code=$?
set -e
# pytest's 5 means "no tests collected": not a failure of the code under test.
if [ "$code" = 5 ]; then exit 0; fi
exit "$code"
