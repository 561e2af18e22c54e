#!/usr/bin/env bash
# Installs what the OHIF browser test (tests/browser) needs: Debian's chromium (Playwright drives it through
# executablePath; no browser download) and the pinned Node packages (playwright-core, `npm ci`). Node.js and
# npm come from Debian when missing (its Node 18 is enough for the pinned playwright-core).
# Idempotent, and about a second when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {  # package... (as install-orthanc.sh: the package lists are fetched only when they lack $1)
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-cache show "$1" >/dev/null 2>&1; then $sudo apt-get update -qq; fi
  $sudo apt-get install -y -qq -o DPkg::Lock::Timeout=300 --no-install-recommends "$@" >/dev/null
}

if ! [ -x /usr/bin/chromium ]; then
  apt_install chromium fonts-liberation
  echo "installed: $(/usr/bin/chromium --version 2>/dev/null | head -1)"
fi
if ! command -v npm >/dev/null 2>&1; then apt_install npm nodejs; fi

lock=tests/browser/package-lock.json
stamp=tests/browser/node_modules/.medlabel-lock  # the lock file npm ci last installed
if ! [ -f "$stamp" ] || ! cmp -s "$lock" "$stamp"; then
  (cd tests/browser && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
  cp "$lock" "$stamp"
fi
