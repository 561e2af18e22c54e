#!/usr/bin/env bash
# One command: the demo CT served through a local Orthanc. Builds .venv and the demo studies, installs
# Orthanc (Debian), writes the CT sub-volumes as DICOM series, starts Orthanc on 127.0.0.1:28042 and
# uploads them, then serves apps/radiology on http://127.0.0.1:8000 with --studies
# http://127.0.0.1:28042/dicom-web (OHIF: http://127.0.0.1:8000/ohif/). Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
scripts/install-orthanc.sh
.venv/bin/python -m medlabel.demo --out demo-data
exec .venv/bin/python -m medlabel.demo.dicomweb --data demo-data --port "${PORT:-8000}" \
  --orthanc-port "${ORTHANC_PORT:-28042}" --conf models liver_ct "$@"
