#!/usr/bin/env bash
# Installs what the app's browser test needs: Debian's chromium (driven by Playwright through
# executable_path=/usr/bin/chromium) and the playwright Python package. Never downloads Playwright's own browsers.
# Idempotent: does nothing when both are already there. Needs root (or sudo) for apt-get.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

if [ ! -x /usr/bin/chromium ]; then
    export DEBIAN_FRONTEND=noninteractive
    # Another apt run (e.g. unattended upgrades) may hold the lock: wait for it rather than fail.
    $SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
    $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends \
        chromium chromium-driver fonts-dejavu-core >/dev/null
fi
/usr/bin/chromium --version

PY="${PYTHON:-python}"
if ! "$PY" -c "import playwright" 2>/dev/null; then
    "$PY" -m pip install -q "playwright>=1.45"   # the Python package only: never `playwright install`
fi
"$PY" -c "import importlib.metadata as m; print('playwright', m.version('playwright'))"
