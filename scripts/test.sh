#!/usr/bin/env bash
# One command from a fresh clone: build .venv, then run every test (unit and system, real server and client).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/install-orthanc.sh  # the DICOMweb tests run a real Orthanc
scripts/install-browser.sh  # the OHIF test drives Debian's chromium through playwright-core (tests/browser)
export MONAI_LABEL_TRACKING_ENABLED=false
exec .venv/bin/python -m pytest --timeout 1500 "$@"
